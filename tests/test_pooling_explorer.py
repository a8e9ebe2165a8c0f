"""The lesson 04 pooling-shift explorer: its numbers match PyTorch, bad settings give messages."""

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnn_course import pooling_explorer as pe  # noqa: E402


def _torch_pool(a, k):
    return F.max_pool2d(torch.from_numpy(a)[None, None], k)[0, 0].numpy()


@pytest.mark.parametrize("shape", [(4, 4), (8, 8), (7, 9), (5, 3)])
def test_pooling_and_shift_match_pytorch(shape):
    rng = np.random.default_rng(sum(shape))
    fmap = rng.random(shape)
    for k in range(1, min(shape) + 1):
        for dy in range(-shape[0] + 1, shape[0]):
            for dx in (-1, 0, 2):
                if abs(dx) >= shape[1]:
                    continue
                result = pe.pooling_shift(fmap, dy, dx, k)
                shifted = F.pad(torch.from_numpy(fmap), (dx, -dx, dy, -dy)).numpy()
                np.testing.assert_array_equal(result.shifted, shifted)
                np.testing.assert_array_equal(result.pooled, _torch_pool(fmap, k))
                np.testing.assert_array_equal(result.pooled_shifted, _torch_pool(shifted, k))
                np.testing.assert_array_equal(result.unchanged, result.pooled == result.pooled_shifted)


def test_lesson_example():
    fmap = np.array([[1.0, 3, 2, 0], [5, 9, 4, 7], [2, 0, 8, 1], [6, 3, 2, 5]])
    result = pe.pooling_shift(fmap, 0, 1, 2)
    np.testing.assert_array_equal(result.pooled, [[9, 7], [6, 8]])
    np.testing.assert_array_equal(result.pooled_shifted, [[5, 9], [6, 8]])
    assert pe.shift_text(result).endswith("2 of 4 pooled outputs unchanged (50%)")


@pytest.mark.parametrize("args,mentions", [((np.zeros((4, 4)), 0, 0, 5), ["5x5", "4x4"]),
                                           ((np.zeros((4, 4)), 4, 0, 2), ["(4, 0)"]),
                                           ((np.zeros((4, 6)), 0, -6, 2), ["(0, -6)"]),
                                           ((np.zeros((4, 4)), 0, 0, 0), ["at least 1", "0"]),
                                           ((np.zeros((2, 4, 4)), 0, 0, 2), ["(2, 4, 4)"]),
                                           ((np.zeros((4, 4)), 0.5, 0, 2), ["0.5"])])
def test_invalid_settings_raise_clear_errors(args, mentions):
    with pytest.raises(ValueError) as info:
        pe.pooling_shift(*args)
    for text in mentions:
        assert text in str(info.value)


def test_drawing():
    result = pe.pooling_shift(pe.default_map(8), 1, -1, 2)
    fig = pe.draw_pooling_shift(result)
    assert len(fig.axes) == 4
    plt.close(fig)


def test_default_map_has_no_ties():
    fmap = pe.default_map(6, seed=3)
    assert sorted(fmap.ravel()) == list(range(1, 37))


def test_explorer_shows_messages_not_tracebacks():
    pytest.importorskip("ipywidgets")
    box = pe.pooling_shift_explorer(np.arange(16.0).reshape(4, 4))
    controls = box.controls
    controls["kernel_size"].value = 5            # does not fit: a message, no exception
    controls["kernel_size"].value = 2
    controls["dy"].value = -4                    # shifts everything out: a message, no exception
    controls["dy"].value = 1
    plt.close("all")
