"""Instructor figures for lesson 06 (receptive fields)."""

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle


def _fields(layers):
    """(size, jump) after each layer, from (1, 1): the lesson's recurrence."""
    size, jump, out = 1, 1, []
    for layer in layers:
        size += layer.get("dilation", 1) * (layer["kernel"] - 1) * jump
        jump *= layer.get("stride", 1)
        out.append((size, jump))
    return out


def _window(layers, index):
    """First and last input index (inclusive) that unit ``index`` of the last layer reads."""
    first = last = index
    for layer in reversed(layers):
        s, p, d = layer.get("stride", 1), layer.get("padding", 0), layer.get("dilation", 1)
        first, last = first * s - p, last * s - p + d * (layer["kernel"] - 1)
    return first, last


def _panel(ax, layers, names, title, unit, grid):
    colours = ["#e6550d", "#31a354", "#3182bd", "#756bb1"]
    ax.set_xlim(-1.5, grid - 0.5)
    ax.set_ylim(grid - 0.5, -1.5)
    ax.set_aspect("equal")
    for k in range(-1, grid + 1):
        ax.axhline(k - 0.5, color="#dddddd", linewidth=0.6, zorder=0)
        ax.axvline(k - 0.5, color="#dddddd", linewidth=0.6, zorder=0)
    fields = _fields(layers)
    # The output unit `unit` of the last layer; below it, the unit of each shallower layer at the centre of its window.
    last_first, last_last = _window(layers, unit)
    centre = (last_first + last_last) / 2
    for depth in range(len(layers), 0, -1):
        prefix = layers[:depth]
        jump = fields[depth - 1][1]
        index = max(0, round((centre - (_window(prefix, 0)[0] + _window(prefix, 0)[1]) / 2) / jump))
        first, last = _window(prefix, index)
        side = last - first + 1
        colour = colours[(depth - 1) % len(colours)]
        ax.add_patch(Rectangle((first - 0.5, first - 0.5), side, side, facecolor=colour, alpha=0.18,
                               edgecolor=colour, linewidth=2.2, zorder=len(layers) - depth + 1,
                               label=f"{names[depth - 1]}: {side}x{side}"))
    # The units of the layer below the last one that the output unit reads: their centres, `jump` pixels apart.
    if len(layers) > 1:
        below = layers[:-1]
        top = layers[-1]
        s, p, d = top.get("stride", 1), top.get("padding", 0), top.get("dilation", 1)
        reads = [unit * s - p + t * d for t in range(top["kernel"])]
        centres = [sum(_window(below, i)) / 2 for i in reads]
        for cy in centres:
            for cx in centres:
                ax.plot(cx, cy, "o", color="black", markersize=3.5, zorder=11)
        jump = fields[-2][1]
        ax.set_xlabel(f"dots: centres of the {len(reads)}x{len(reads)} units of the layer below the last,\n"
                      f"{jump} pixel{'s' if jump > 1 else ''} apart (its jump)", fontsize=7.5)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=len(layers),
              fontsize=7.5, frameon=False, handlelength=1.2, columnspacing=1.0)
    ax.set_title(title + "\n" + " -> ".join(f"{size}" for size, _ in fields), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def figure_rf_growth():
    """The receptive field of one output unit on the input grid, layer by layer (nested squares):
    three stacked 3x3 convolutions (3, 5, 7), a stride-2 3x3 convolution followed by two 3x3
    convolutions (3, 7, 11: every later layer adds twice as much), and 3x3 conv -> 2x2/2 pool ->
    3x3 conv (3, 4, 8). Dots mark the units of the layer below the last that the output unit reads."""
    conv3, pool2 = {"kernel": 3}, {"kernel": 2, "stride": 2}
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.6))
    _panel(axes[0], [conv3, conv3, conv3], ["conv 1", "conv 2", "conv 3"], "three 3x3 convs, stride 1", 0, 8)
    _panel(axes[1], [{"kernel": 3, "stride": 2}, conv3, conv3], ["conv 1 (s2)", "conv 2", "conv 3"],
           "3x3 conv stride 2, then two 3x3 convs", 0, 12)
    _panel(axes[2], [conv3, pool2, conv3], ["conv", "pool", "conv"], "3x3 conv, 2x2/2 pool, 3x3 conv", 0, 9)
    fig.suptitle("receptive field of one output unit, layer by layer (sizes along one axis)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
