"""The lesson-06 receptive-field explorer, tested without a browser."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from cnn_course import receptive_explorer as rx  # noqa: E402


def receptive_fields(layers):
    size, jump, out = 1, 1, []
    for layer in layers:
        size += layer.get("dilation", 1) * (layer["kernel"] - 1) * jump
        jump *= layer.get("stride", 1)
        out.append((size, jump))
    return out


def input_window(layers, index):
    first = last = index
    for layer in reversed(layers):
        s, p, d = layer.get("stride", 1), layer.get("padding", 0), layer.get("dilation", 1)
        first, last = first * s - p, last * s - p + d * (layer["kernel"] - 1)
    return first, last


def test_parse_layers_reads_every_setting_with_defaults():
    layers = rx.parse_layers("conv k=3\n\n  pool k=2 s=2   # a comment\nCONV k=3 s=2 p=1 d=2")
    assert layers == [
        {"name": "conv", "kernel": 3, "stride": 1, "padding": 0, "dilation": 1},
        {"name": "pool", "kernel": 2, "stride": 2, "padding": 0, "dilation": 1},
        {"name": "conv", "kernel": 3, "stride": 2, "padding": 1, "dilation": 2},
    ]
    assert rx.contract_layer(layers[2]) == {"kernel": 3, "stride": 2, "padding": 1, "dilation": 2}


@pytest.mark.parametrize("text,words", [
    ("", ["no layers"]),
    ("dense k=3", ["line 1", "conv", "pool"]),
    ("conv s=2", ["line 1", "kernel size"]),
    ("conv k=3\nconv k=three", ["line 2", "whole number"]),
    ("conv k=0", ["kernel", "at least 1", "got 0"]),
    ("conv k=3 s=0", ["stride", "at least 1"]),
    ("conv k=3 p=-1", ["padding", "at least 0"]),
    ("conv k=3 x=1", ["cannot read", "x=1"]),
    ("conv k=3 d", ["cannot read"]),
])
def test_parse_layers_explains_bad_input(text, words):
    with pytest.raises(ValueError) as info:
        rx.parse_layers(text)
    for word in words:
        assert word in str(info.value)


def test_presets_parse_and_fit_the_default_input():
    for text in rx.PRESETS.values():
        rx.output_sizes(rx.parse_layers(text), 16)


def test_output_sizes_and_a_stack_that_does_not_fit():
    layers = rx.parse_layers("conv k=3\npool k=2 s=2\nconv k=3 p=1 s=2")
    assert rx.output_sizes(layers, 10) == [10, 8, 4, 2]
    with pytest.raises(ValueError, match="layer 2 .*does not fit"):
        rx.output_sizes(rx.parse_layers("conv k=3\nconv k=5"), 6)
    with pytest.raises(ValueError, match="at least 1"):
        rx.output_sizes(layers, 0)


def test_explore_uses_the_functions_it_is_given():
    layers = rx.parse_layers(rx.PRESETS["3x3 conv, 2x2/2 pool, 3x3 conv"])
    e = rx.explore(layers, 12, (1, 2), receptive_fields, input_window)
    assert e.fields == [(3, 1), (4, 2), (8, 2)]
    assert e.sizes == [12, 10, 5, 3]
    assert e.rows == (2, 9) and e.cols == (4, 11)
    assert e.layer_windows[-1] == (1, 1) and e.layer_windows[0] == e.rows
    assert len(e.layer_centres) == 4 and len(e.layer_centres[2]) == 5
    text = rx.table_text(e)
    assert "pool 2x2 /2" in text and "rows 2..9" in text and "8x8 pixels" in text


def test_explore_reports_padding_and_bad_positions():
    layers = rx.parse_layers("conv k=3 p=1\nconv k=3 p=1")
    e = rx.explore(layers, 5, (0, 4), receptive_fields, input_window)
    assert e.rows == (-2, 2) and e.cols == (2, 6)
    assert "zero padding" in rx.table_text(e)
    with pytest.raises(ValueError, match="output row 5 does not exist.*0 to 4"):
        rx.explore(layers, 5, (5, 0), receptive_fields, input_window)


def test_explore_turns_a_broken_learner_function_into_a_message():
    layers = rx.parse_layers("conv k=3")

    def broken(layers):
        raise NotImplementedError()

    with pytest.raises(ValueError, match="your receptive_fields raised NotImplementedError"):
        rx.explore(layers, 5, (0, 0), broken, input_window)
    with pytest.raises(ValueError, match="input_window should return"):
        rx.explore(layers, 5, (0, 0), receptive_fields, lambda layers, index: None)


def test_draw_exploration_marks_window_and_padding():
    layers = rx.parse_layers("conv k=3 p=1 s=2\npool k=2 s=2")
    e = rx.explore(layers, 9, (0, 1), receptive_fields, input_window)
    fig = rx.draw_exploration(e)
    grid, tower = fig.axes
    assert "rows -1..3" in grid.get_title()
    assert len(tower.get_yticklabels()) == 3
    hatched = [p for p in tower.patches if p.get_hatch()]
    assert hatched, "padding units the output depends on are drawn hatched"
    plt.close(fig)


def test_widget_shows_a_message_not_a_traceback():
    box = rx.receptive_field_explorer(receptive_fields, input_window)
    controls = box.controls
    assert "Cannot" not in box.message.value
    controls["layers"].value = "conv k=3\nconv k=banana"
    assert "Cannot show this stack" in box.message.value and "whole number" in box.message.value
    controls["layers"].value = "conv k=3\nconv k=30"
    assert "does not fit" in box.message.value
    controls["preset"].value = "3x3 conv, 4x4 conv, 2x2/2 pool"
    assert "Cannot" not in box.message.value
    assert controls["row"].max == rx.output_sizes(rx.parse_layers(controls["layers"].value), 16)[-1] - 1
    controls["input_size"].value = 3
    assert "does not fit" in box.message.value
    plt.close("all")
