"""Receptive-field explorer (lesson 06): a stack of layers, one output unit, its window on the input.

Split like the other explorers, so that everything but the widgets is tested without a
browser (``tests/test_receptive_explorer.py``):

1. ``parse_layers`` reads a small text description of a layer stack;
2. ``explore`` computes what to show: output sizes, the (size, jump) table and the input
   window of one output unit. It takes the learner's own ``receptive_fields`` and
   ``input_window`` as arguments, so this module contains no answer to the exercises,
   and the explorer shows what *their* functions compute;
3. ``table_text`` and ``draw_exploration`` format and draw that;
4. ``receptive_field_explorer`` wires ipywidgets to them and shows a clear message,
   never a traceback, for settings that make no sense.

A layer is a dict ``{"kernel": k, "stride": s, "padding": p, "dilation": d}`` along one
spatial axis (the course contract); the explorer adds a ``"name"`` (``conv`` or ``pool``)
for display and strips it before calling the learner's functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from .explorers import draw_once

LAYER_SYNTAX = ("one layer per line, e.g. `conv k=3 s=1 p=1 d=1` or `pool k=2 s=2`; "
                "k is required, s (stride), p (padding), d (dilation) default to 1, 0, 1")

PRESETS = {
    "two 3x3 convs": "conv k=3\nconv k=3",
    "three 3x3 convs": "conv k=3\nconv k=3\nconv k=3",
    "3x3 conv, 4x4 conv, 2x2/2 pool": "conv k=3\nconv k=4\npool k=2 s=2",
    "3x3 conv, 2x2/2 pool, 3x3 conv": "conv k=3\npool k=2 s=2\nconv k=3",
    "stride 2 first: 3x3/2 conv, two 3x3 convs": "conv k=3 s=2 p=1\nconv k=3 p=1\nconv k=3 p=1",
    "dilated 3x3 convs, d = 1, 2, 4": "conv k=3 p=1\nconv k=3 p=2 d=2\nconv k=3 p=4 d=4",
    "small VGG-like: (conv, conv, pool) x 2": "conv k=3 p=1\nconv k=3 p=1\npool k=2 s=2\n"
                                              "conv k=3 p=1\nconv k=3 p=1\npool k=2 s=2",
}

_KEYS = {"k": "kernel", "s": "stride", "p": "padding", "d": "dilation"}
_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1}
_MINIMUM = {"kernel": 1, "stride": 1, "padding": 0, "dilation": 1}

_INPUT_COLOUR = "#ffffff"
_PAD_COLOUR = "#d9d9d9"
_WINDOW_COLOUR = "#3b75af"
_OUTPUT_COLOUR = "#ef8a17"
_IDLE_COLOUR = "#e8eef5"


# ------------------------------------------------------------------------------ parsing

def parse_layers(text: str) -> list[dict]:
    """Layers from text, one per line: ``conv k=3 s=2 p=1 d=1`` or ``pool k=2 s=2``.

    Blank lines and text after ``#`` are ignored. Raises ValueError naming the line and
    the problem for anything else.
    """
    layers = []
    for number, raw in enumerate(str(text).splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, *settings = line.split()
        if name.lower() not in ("conv", "pool"):
            raise ValueError(f"line {number} ({line!r}): a layer starts with `conv` or `pool`, not {name!r}")
        layer = {"name": name.lower()}
        for setting in settings:
            key, sep, value = setting.partition("=")
            if not sep or key.lower() not in _KEYS:
                raise ValueError(f"line {number} ({line!r}): cannot read {setting!r}; write k=, s=, p= or d= "
                                 "followed by a whole number")
            field = _KEYS[key.lower()]
            try:
                number_value = int(value)
            except ValueError:
                raise ValueError(f"line {number} ({line!r}): {key}={value!r} is not a whole number") from None
            if number_value < _MINIMUM[field]:
                raise ValueError(f"line {number} ({line!r}): {field} must be at least {_MINIMUM[field]}, "
                                 f"got {number_value}")
            layer[field] = number_value
        if "kernel" not in layer:
            raise ValueError(f"line {number} ({line!r}): give the kernel size, e.g. `{name} k=3`")
        layers.append({**_DEFAULTS, **layer})
    if not layers:
        raise ValueError("no layers: " + LAYER_SYNTAX)
    return layers


def layer_label(layer: dict) -> str:
    """``conv 3x3`` / ``pool 2x2 /2`` / ``conv 3x3 /2 pad 1 dil 2``: a short name for tables and plots."""
    k = layer["kernel"]
    label = f"{layer.get('name', 'layer')} {k}x{k}"
    if layer.get("stride", 1) != 1:
        label += f" /{layer['stride']}"
    if layer.get("padding", 0):
        label += f" pad {layer['padding']}"
    if layer.get("dilation", 1) != 1:
        label += f" dil {layer['dilation']}"
    return label


def contract_layer(layer: dict) -> dict:
    """The layer as the contract describes it: kernel, stride, padding, dilation (no name)."""
    return {key: layer.get(key, _DEFAULTS.get(key)) for key in ("kernel", "stride", "padding", "dilation")}


def output_sizes(layers: list[dict], input_size: int) -> list[int]:
    """Sizes along one axis: ``[input_size, after layer 1, ...]``; ValueError when one is below 1."""
    if int(input_size) < 1:
        raise ValueError(f"the input size must be at least 1, got {input_size}")
    sizes = [int(input_size)]
    for number, layer in enumerate(layers, start=1):
        span = layer.get("dilation", 1) * (layer["kernel"] - 1) + 1
        padded = sizes[-1] + 2 * layer.get("padding", 0)
        if padded < span:
            raise ValueError(f"layer {number} ({layer_label(layer)}) does not fit: its kernel spans {span} pixels but "
                             f"its input is only {sizes[-1]} wide (+{layer.get('padding', 0)} padding each side); "
                             "use a larger input or fewer/smaller layers")
        sizes.append((padded - span) // layer.get("stride", 1) + 1)
    return sizes


# ------------------------------------------------------------------------------ computing

@dataclasses.dataclass(frozen=True)
class Exploration:
    """Everything the explorer shows for one stack, input size and output unit."""

    layers: list
    sizes: list            # [input size, size after layer 1, ...] along one axis
    fields: list           # [(receptive-field size, jump) after each layer]
    position: tuple        # (row, col) of the output unit
    rows: tuple            # (first, last) input rows the unit depends on (may reach into padding)
    cols: tuple            # (first, last) input columns
    layer_windows: list    # for each activation a_0 .. a_L: (first, last) of the row window there
    layer_centres: list    # for each activation: x position (input coordinates) of each unit's centre


def _call(fn: Callable, name: str, *args):
    try:
        return fn(*args)
    except Exception as exc:  # the learner's function: report it as a message, not a traceback
        raise ValueError(f"your {name} raised {type(exc).__name__}: {exc}") from exc


def _pair(value, name: str) -> tuple[int, int]:
    try:
        first, last = value
        return int(first), int(last)
    except (TypeError, ValueError):
        raise ValueError(f"your {name} should return a (first, last) pair of ints, got {value!r}") from None


def explore(layers: list[dict], input_size: int, position: tuple[int, int],
            receptive_fields: Callable, input_window: Callable) -> Exploration:
    """Compute the table and windows for output unit ``position = (row, col)`` of the stack.

    ``receptive_fields`` and ``input_window`` are the lesson's functions (the learner's).
    Raises ValueError with a readable message for impossible settings or a failing function.
    """
    sizes = output_sizes(layers, input_size)
    row, col = (int(p) for p in position)
    for axis, index in (("row", row), ("column", col)):
        if not 0 <= index < sizes[-1]:
            raise ValueError(f"output {axis} {index} does not exist: the last layer's output is "
                             f"{sizes[-1]}x{sizes[-1]}, so pick 0 to {sizes[-1] - 1}")
    plain = [contract_layer(layer) for layer in layers]
    fields = _call(receptive_fields, "receptive_fields", [dict(layer) for layer in plain])
    try:
        fields = [(int(size), int(jump)) for size, jump in fields]
    except (TypeError, ValueError):
        raise ValueError(f"your receptive_fields should return a list of (size, jump) pairs, got {fields!r}") from None
    if len(fields) != len(layers):
        raise ValueError(f"your receptive_fields returned {len(fields)} pairs for {len(layers)} layers")
    rows = _pair(_call(input_window, "input_window", [dict(layer) for layer in plain], row), "input_window")
    cols = _pair(_call(input_window, "input_window", [dict(layer) for layer in plain], col), "input_window")
    # The tower picture: at each activation a_l, which units the output depends on, and where
    # each unit's own receptive field is centred in input coordinates.
    layer_windows, layer_centres = [], []
    for level in range(len(layers) + 1):
        suffix = [dict(layer) for layer in plain[level:]]
        layer_windows.append(_pair(_call(input_window, "input_window", suffix, row), "input_window"))
        prefix = [dict(layer) for layer in plain[:level]]
        centres = []
        for unit in range(sizes[level]):
            first, last = _pair(_call(input_window, "input_window", [dict(p) for p in prefix], unit), "input_window")
            centres.append((first + last) / 2)
        layer_centres.append(centres)
    return Exploration(layers=list(layers), sizes=sizes, fields=fields, position=(row, col), rows=rows, cols=cols,
                       layer_windows=layer_windows, layer_centres=layer_centres)


def table_text(exploration: Exploration) -> str:
    """The size/jump table and the window, as fixed-width text."""
    e = exploration
    lines = [f"{'layer':<28}{'output':>8}{'RF size':>9}{'jump':>6}",
             f"{'input':<28}{e.sizes[0]:>8}{1:>9}{1:>6}"]
    for layer, size, (field, jump) in zip(e.layers, e.sizes[1:], e.fields):
        lines.append(f"{layer_label(layer):<28}{size:>8}{field:>9}{jump:>6}")
    (r0, r1), (c0, c1) = e.rows, e.cols
    lines.append("")
    lines.append(f"output unit (row {e.position[0]}, col {e.position[1]}) sees input rows {r0}..{r1} "
                 f"and columns {c0}..{c1}: {r1 - r0 + 1}x{c1 - c0 + 1} pixels")
    outside = _outside(e.rows, e.sizes[0]) + _outside(e.cols, e.sizes[0])
    if outside:
        lines.append("part of the window lies in the zero padding (indices below 0 or above "
                     f"{e.sizes[0] - 1}), shown grey")
    return "\n".join(lines)


def _outside(window: tuple[int, int], size: int) -> int:
    first, last = window
    return max(0, -first) + max(0, last - (size - 1))


# ------------------------------------------------------------------------------ drawing

def draw_exploration(exploration: Exploration, fig=None):
    """Left: the input grid with the unit's window; right: the stack along one axis (rows)."""
    e = exploration
    if fig is None:
        fig = plt.figure(figsize=(11, 4.6))
    ax_grid, ax_tower = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.5]})
    size = e.sizes[0]
    (r0, r1), (c0, c1) = e.rows, e.cols
    low, high = min(0, r0, c0), max(size - 1, r1, c1)
    for i in range(low, high + 1):
        for j in range(low, high + 1):
            inside = 0 <= i < size and 0 <= j < size
            colour = _INPUT_COLOUR if inside else _PAD_COLOUR
            ax_grid.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=colour, edgecolor="#bbbbbb", lw=0.5))
    ax_grid.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, facecolor=_WINDOW_COLOUR,
                                alpha=0.35, edgecolor=_WINDOW_COLOUR, lw=2))
    ax_grid.add_patch(Rectangle((-0.5, -0.5), size, size, fill=False, edgecolor="black", lw=1.5))
    ax_grid.set_xlim(low - 0.5, high + 0.5)
    ax_grid.set_ylim(high + 0.5, low - 0.5)
    ax_grid.set_aspect("equal")
    ax_grid.set_xticks([])
    ax_grid.set_yticks([])
    ax_grid.set_title(f"input {size}x{size}: unit {e.position} sees rows {r0}..{r1}, cols {c0}..{c1}", fontsize=9)

    names = ["input"] + [layer_label(layer) for layer in e.layers]
    for level, (centres, (first, last)) in enumerate(zip(e.layer_centres, e.layer_windows)):
        top = level == len(e.layers)
        for unit, x in enumerate(centres):
            if top and unit == e.position[0]:
                colour = _OUTPUT_COLOUR
            elif first <= unit <= last:
                colour = _WINDOW_COLOUR
            else:
                colour = _IDLE_COLOUR
            ax_tower.add_patch(Rectangle((x - 0.4, level - 0.3), 0.8, 0.6, facecolor=colour, edgecolor="#777777",
                                         lw=0.5))
        # Padding units that the output depends on: to the left of unit 0 and right of the last one.
        step = (centres[1] - centres[0]) if len(centres) > 1 else float(e.fields[level - 1][1] if level else 1)
        for unit in list(range(first, 0)) + list(range(len(centres), last + 1)):
            x = centres[0] + unit * step
            ax_tower.add_patch(Rectangle((x - 0.4, level - 0.3), 0.8, 0.6, facecolor=_PAD_COLOUR, edgecolor="#777777",
                                         lw=0.5, hatch="//"))
    xs = [x for centres in e.layer_centres for x in centres] + [low, high]
    ax_tower.set_xlim(min(xs) - 1, max(xs) + 1)
    ax_tower.set_ylim(-0.6, len(e.layers) + 0.6)
    ax_tower.set_yticks(range(len(names)))
    ax_tower.set_yticklabels(names, fontsize=8)
    ax_tower.set_xlabel("position along the rows, in input pixels (each unit drawn at its field's centre)", fontsize=8)
    ax_tower.set_title("the stack along one axis: blue units feed the orange output unit; grey = padding", fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ widget

def receptive_field_explorer(receptive_fields: Callable, input_window: Callable, text: str | None = None,
                             input_size: int = 16):
    """A text box for the stack, presets, the input size and the output unit; shows table and picture.

    Pass the lesson's ``receptive_fields`` and ``input_window``. Returns the ipywidgets box
    (display it, or leave it as a cell's last expression); ``box.controls`` holds the widgets.
    """
    import ipywidgets as widgets
    from IPython.display import display

    first_preset = next(iter(PRESETS))
    controls = {
        "preset": widgets.Dropdown(options=["(your own)"] + list(PRESETS), value=first_preset if text is None
                                   else "(your own)", description="preset", style={"description_width": "initial"}),
        "layers": widgets.Textarea(value=PRESETS[first_preset] if text is None else text, description="layers",
                                   layout=widgets.Layout(width="420px", height="140px"), continuous_update=False),
        "input_size": widgets.IntSlider(value=input_size, min=1, max=40, description="input size",
                                        continuous_update=False, style={"description_width": "initial"}),
        "row": widgets.IntSlider(value=0, min=0, max=40, description="output row", continuous_update=False,
                                 style={"description_width": "initial"}),
        "col": widgets.IntSlider(value=0, min=0, max=40, description="output col", continuous_update=False,
                                 style={"description_width": "initial"}),
    }
    message = widgets.HTML(value="")
    table_out, figure_out = widgets.Output(), widgets.Output()
    def show():
        table_out.clear_output(wait=True)
        figure_out.clear_output(wait=True)
        try:
            layers = parse_layers(controls["layers"].value)
            last = output_sizes(layers, controls["input_size"].value)[-1] - 1
            for key in ("row", "col"):
                controls[key].max = max(last, 0)
                controls[key].value = min(controls[key].value, last)
            exploration = explore(layers, controls["input_size"].value, (controls["row"].value, controls["col"].value),
                                  receptive_fields, input_window)
        except ValueError as exc:
            message.value = f"<b style='color:#b00'>Cannot show this stack:</b> {_escape(str(exc))}"
            return
        message.value = f"<span style='color:#555'>{_escape(LAYER_SYNTAX)}</span>"
        with table_out:
            print(table_text(exploration))
        with figure_out:
            fig = draw_exploration(exploration)
            display(fig)
            plt.close(fig)

    def choose_preset(change):
        if change["new"] in PRESETS:
            controls["layers"].value = PRESETS[change["new"]]  # fires update

    controls["preset"].observe(choose_preset, names="value")
    update = draw_once(show)  # changing a slider's range fires update again
    for key in ("layers", "input_size", "row", "col"):
        controls[key].observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([widgets.VBox([controls["preset"], controls["layers"]]),
                                      widgets.VBox([controls["input_size"], controls["row"], controls["col"]])]),
                        message, table_out, figure_out])
    box.controls = controls
    box.message = message
    return box


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
