"""The explorers' logic and drawings, tested without a browser."""

import itertools
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnn_course import explorers  # noqa: E402

# ----------------------------------------------------------------------------- convolution arithmetic (lesson 03)

SETTINGS = list(itertools.product([1, 4, 7, 8], [1, 2, 3, 5], [0, 1, 2], [1, 2, 3], [1, 2]))


def _torch_length(size, kernel_size, padding, stride, dilation):
    try:
        with torch.no_grad():
            out = F.conv1d(torch.zeros(1, 1, size, dtype=torch.float64), torch.zeros(1, 1, kernel_size,
                           dtype=torch.float64), stride=stride, padding=padding, dilation=dilation)
    except RuntimeError:
        return None
    return out.shape[-1] or None


def test_geometry_matches_pytorch():
    for settings in SETTINGS:
        _check_geometry(settings)


def _check_geometry(settings):
    size, k, p, s, d = settings
    expected = _torch_length(*settings)
    if expected is None:
        with pytest.raises(ValueError, match="no output"):
            explorers.conv_geometry(*settings)
        return
    g = explorers.conv_geometry(*settings)
    assert g.output_size == expected
    assert g.effective_kernel == d * (k - 1) + 1
    assert g.padded_size == size + 2 * p
    assert len(g.starts) == expected and g.starts[0] == 0 and all(b - a == s for a, b in zip(g.starts, g.starts[1:]))
    # every window fits, and the cells left over are fewer than one stride
    last_end = g.starts[-1] + g.effective_kernel
    assert last_end <= g.padded_size and g.unused == g.padded_size - last_end and g.unused < s
    assert g.taps(len(g.starts) - 1)[-1] == last_end - 1
    assert len(g.taps(0)) == k and all(b - a == d for a, b in zip(g.taps(0), g.taps(0)[1:]))


def test_taps_are_the_pixels_pytorch_reads():
    """A one-hot input shows which padded positions each output reads."""
    size, k, p, s, d = 9, 3, 1, 2, 2
    g = explorers.conv_geometry(size, k, p, s, d)
    for pixel in range(size):
        x = torch.zeros(1, 1, size, dtype=torch.float64)
        x[0, 0, pixel] = 1.0
        out = F.conv1d(x, torch.ones(1, 1, k, dtype=torch.float64), stride=s, padding=p, dilation=d)[0, 0]
        reads = {i for i in range(g.output_size) if pixel + p in g.taps(i)}
        assert reads == {i for i in range(g.output_size) if out[i] != 0}


@pytest.mark.parametrize("bad", [dict(size=0, kernel_size=3), dict(size=5, kernel_size=0),
                                 dict(size=5, kernel_size=3, stride=0), dict(size=5, kernel_size=3, dilation=0),
                                 dict(size=5, kernel_size=3, padding=-1), dict(size=3, kernel_size=3, dilation=2),
                                 dict(size=5, kernel_size=2.5)])
def test_invalid_settings_raise_value_error_with_a_message(bad):
    with pytest.raises(ValueError) as info:
        explorers.conv_geometry(**bad)
    assert len(str(info.value)) > 20


def test_formula_text_fills_in_the_numbers():
    text = explorers.formula_text(size=8, kernel_size=3, padding=1, stride=3, dilation=2)
    assert "floor((8 + 2*1 - 2*(3-1) - 1) / 3) + 1" in text
    assert "floor(5 / 3) + 1 = 1 + 1 = 2" in text
    assert "effective kernel size d*(k-1)+1 = 5" in text
    assert "never read" in text  # 5 is not a multiple of 3
    assert "nothing is left over" in explorers.formula_text(7, 3, 1, 2, 1)


def test_formula_text_never_raises():
    text = explorers.formula_text(size=3, kernel_size=5)
    assert text.startswith("No output:") and "5" in text and "3" in text
    assert explorers.formula_text(size=5, kernel_size=3, stride=0).startswith("No output: stride")


@pytest.mark.parametrize("settings", [(7, 3, 1, 2, 1), (8, 3, 1, 3, 2), (1, 1, 0, 1, 1), (5, 5, 2, 1, 1),
                                      (3, 5, 0, 1, 1), (5, 3, 0, 0, 1)])
def test_drawings_work_for_valid_and_invalid_settings(settings):
    fig = explorers.draw_conv_arithmetic(*settings, position=(99, -3))  # out-of-range positions are clipped
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    try:
        explorers.conv_geometry(*settings)
        valid = True
    except ValueError:
        valid = False
    if valid:
        assert len(fig.axes) == 2 and not any(t.startswith("No output") for t in texts)
    else:
        assert any(t.startswith("No output") for t in texts)
    ax = explorers.draw_positions_1d(*settings)
    assert ax.figure is not None
    plt.close("all")


def test_drawing_highlights_the_taps_of_the_chosen_output():
    fig = explorers.draw_conv_arithmetic(7, 3, padding=1, stride=2, dilation=1, position=(1, 2))
    ax_in, ax_out = fig.axes
    blue = [p for p in ax_in.patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb(explorers._TAP_COLOUR)]
    corners = sorted((round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in blue)
    assert corners == [(r, c) for r in (2, 3, 4) for c in (4, 5, 6)]
    assert "output (1, 2)" in " ".join(t.get_text() for t in ax_out.texts)
    plt.close("all")


def test_explorer_widget_builds_and_survives_invalid_settings():
    pytest.importorskip("ipywidgets")
    box = explorers.conv_arithmetic_explorer(size=7, kernel_size=3, padding=1, stride=2, dilation=1)
    controls = box.controls
    controls["kernel_size"].value = 9      # larger than the padded input: a message, no exception
    controls["size"].value = 2
    controls["kernel_size"].value = 3
    controls["padding"].value = 2
    controls["row"].value = 20             # clipped to the output
    assert controls["row"].max == explorers.conv_geometry(2, 3, 2, 2, 1).output_size - 1
    plt.close("all")
