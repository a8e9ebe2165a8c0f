"""Interactive explorers for the lessons.

Each explorer is split in three layers so that everything but the sliders can be
tested without a browser (``tests/test_explorers.py``):

1. a pure function that computes what to show (numbers, positions, a message);
2. drawing and formatting functions that take those numbers and a matplotlib figure;
3. a thin ``*_explorer()`` builder that wires ipywidgets sliders to them and shows a
   clear message, never a traceback, for settings that make no sense.

Each explorer lives in its own section below and depends on nothing in the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

# =====================================================================================
# Convolution arithmetic (lesson 03): input size, kernel size, padding, stride, dilation
# =====================================================================================

_PAD_COLOUR = "#d9d9d9"      # padding cells
_INPUT_COLOUR = "#ffffff"    # real input cells
_UNUSED_COLOUR = "#f4b6b6"   # cells that no window reaches (lost to the floor)
_TAP_COLOUR = "#3b75af"      # kernel taps of the highlighted output position
_OUT_COLOUR = "#cfe2f3"
_HIGHLIGHT_COLOUR = "#ef8a17"


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """Where a kernel lands along one axis of a convolution (indices in padded coordinates)."""

    size: int
    kernel_size: int
    padding: int
    stride: int
    dilation: int
    effective_kernel: int   # d*(k-1)+1: the span the kernel covers, gaps included
    padded_size: int        # size + 2*padding
    output_size: int        # floor((padded_size - effective_kernel) / stride) + 1
    starts: tuple[int, ...]  # first padded index under each window
    unused: int             # trailing padded cells that no window reaches

    def taps(self, index: int) -> list[int]:
        """Padded indices read by the kernel for output position ``index``."""
        start = self.starts[index]
        return [start + self.dilation * t for t in range(self.kernel_size)]


def _check_setting(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def draw_once(draw: Callable[[], None]) -> Callable:
    """A widget callback that runs ``draw``, ignoring the events ``draw`` itself fires
    (changing a slider's range or clamping its value calls the callback again)."""
    busy = []

    def update(_change=None):
        if busy:
            return
        busy.append(True)
        try:
            draw()
        finally:
            busy.pop()

    return update


def conv_geometry(size: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> ConvGeometry:
    """The positions of a convolution's windows along one axis.

    Raises ValueError, with a message meant for a learner, for settings that give no output.
    """
    size = _check_setting("input size", size, 1)
    kernel_size = _check_setting("kernel size", kernel_size, 1)
    padding = _check_setting("padding", padding, 0)
    stride = _check_setting("stride", stride, 1)
    dilation = _check_setting("dilation", dilation, 1)
    effective = dilation * (kernel_size - 1) + 1
    padded = size + 2 * padding
    if effective > padded:
        raise ValueError(f"the kernel spans {effective} cells (dilation*(kernel-1)+1 = {dilation}*({kernel_size}-1)+1)"
                         f" but the padded input has only {padded} (size + 2*padding = {size} + 2*{padding}):"
                         " no window fits, so there is no output. Use a smaller kernel or dilation, or more padding.")
    output = (padded - effective) // stride + 1
    starts = tuple(i * stride for i in range(output))
    unused = padded - (starts[-1] + effective)
    return ConvGeometry(size, kernel_size, padding, stride, dilation, effective, padded, output, starts, unused)


def formula_text(size: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> str:
    """The output-size formula with the numbers filled in, or the reason there is no output.

    Never raises: invalid settings give a message starting with "No output:".
    """
    try:
        g = conv_geometry(size, kernel_size, padding, stride, dilation)
    except ValueError as exc:
        return f"No output: {exc}"
    numerator = g.padded_size - g.effective_kernel
    lines = [
        "out = floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1",
        f"    = floor(({g.size} + 2*{g.padding} - {g.dilation}*({g.kernel_size}-1) - 1) / {g.stride}) + 1",
        f"    = floor({numerator} / {g.stride}) + 1 = {numerator // g.stride} + 1 = {g.output_size}",
        f"effective kernel size d*(k-1)+1 = {g.effective_kernel}; padded input size = {g.padded_size}",
    ]
    if numerator % g.stride:
        lines.append(f"{numerator} is not a multiple of the stride {g.stride}: the floor drops the remainder, so the "
                     f"last {g.unused} padded cell(s) on each axis are never read (shaded red)")
    else:
        lines.append("the windows reach the last padded cell exactly: nothing is left over")
    return "\n".join(lines)


def _cell(ax, row: float, col: float, colour: str, **kwargs) -> None:
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, facecolor=colour, edgecolor="#777777", linewidth=0.6,
                           **kwargs))


def _setup_grid_axes(ax, rows: int, cols: int, title: str) -> None:
    ax.set_xlim(-0.6, cols - 0.4)
    ax.set_ylim(rows - 0.4, -0.6)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)


def draw_conv_arithmetic(size: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1,
                         position: tuple[int, int] = (0, 0), fig=None):
    """Draw a square input with its padding, one window's kernel taps, and the output grid.

    ``position`` is the output cell (row, col) whose window is highlighted; it is clipped
    to the output. Invalid settings draw the message from :func:`formula_text` instead of
    raising. Returns the figure.
    """
    if fig is None:
        fig = plt.figure(figsize=(9, 4.5))
    fig.clear()
    try:
        g = conv_geometry(size, kernel_size, padding, stride, dilation)
    except ValueError as exc:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, "No output:\n" + _wrap(str(exc), 70), ha="center", va="center", fontsize=11,
                color="#a40000", transform=ax.transAxes)
        return fig
    row = min(max(int(position[0]), 0), g.output_size - 1)
    col = min(max(int(position[1]), 0), g.output_size - 1)
    ax_in, ax_out = fig.subplots(1, 2, gridspec_kw={"width_ratios": [g.padded_size, max(g.output_size, 3)]})
    n = g.padded_size
    last_read = g.starts[-1] + g.effective_kernel  # cells at or past this index are never read
    for r in range(n):
        for c in range(n):
            inside = g.padding <= r < g.padding + g.size and g.padding <= c < g.padding + g.size
            colour = _INPUT_COLOUR if inside else _PAD_COLOUR
            if r >= last_read or c >= last_read:
                colour = _UNUSED_COLOUR
            _cell(ax_in, r, c, colour)
    rows, cols = g.taps(row), g.taps(col)
    for r in rows:
        for c in cols:
            _cell(ax_in, r, c, _TAP_COLOUR, alpha=0.85)
    span = g.effective_kernel
    ax_in.add_patch(Rectangle((g.starts[col] - 0.5, g.starts[row] - 0.5), span, span, fill=False,
                              edgecolor=_HIGHLIGHT_COLOUR, linewidth=2.5))
    for r0 in g.starts:  # a dot where every window starts
        for c0 in g.starts:
            ax_in.plot(c0, r0, "o", color="black", markersize=2.5)
    ax_in.add_patch(Rectangle((g.padding - 0.5, g.padding - 0.5), g.size, g.size, fill=False, edgecolor="black",
                              linewidth=1.5))
    _setup_grid_axes(ax_in, n, n, f"input {g.size}x{g.size} padded to {n}x{n} "
                                  f"(kernel {g.kernel_size}, dilation {g.dilation}, stride {g.stride})")
    m = g.output_size
    for r in range(m):
        for c in range(m):
            _cell(ax_out, r, c, _HIGHLIGHT_COLOUR if (r, c) == (row, col) else _OUT_COLOUR)
    _setup_grid_axes(ax_out, max(m, 3), max(m, 3), f"output {m}x{m}")
    ax_out.text(0, max(m, 3) - 0.2, f"highlighted: output ({row}, {col})", fontsize=9, va="top")
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def draw_positions_1d(size: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1, ax=None):
    """One axis of a convolution: the padded input as a strip, and one row per window position.

    Row ``i`` shows which padded cells output ``i`` reads. Invalid settings print the
    message in the axes instead of raising. Returns the axes.
    """
    try:
        g = conv_geometry(size, kernel_size, padding, stride, dilation)
    except ValueError as exc:
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "No output:\n" + _wrap(str(exc), 70), ha="center", va="center", color="#a40000",
                transform=ax.transAxes)
        return ax
    n = g.padded_size
    if ax is None:
        _, ax = plt.subplots(figsize=(0.42 * n + 1.6, 0.42 * (g.output_size + 1) + 0.9))
    last_read = g.starts[-1] + g.effective_kernel
    for c in range(n):
        colour = _INPUT_COLOUR if g.padding <= c < g.padding + g.size else _PAD_COLOUR
        _cell(ax, 0, c, _UNUSED_COLOUR if c >= last_read else colour)
        ax.text(c, 0, str(c - g.padding), ha="center", va="center", fontsize=7)
    for i in range(g.output_size):
        for c in g.taps(i):
            _cell(ax, i + 1, c, _TAP_COLOUR)
        ax.text(-0.9, i + 1, f"out {i}", ha="right", va="center", fontsize=8)
    ax.text(-0.9, 0, "input", ha="right", va="center", fontsize=8)
    ax.set_xlim(-3.2, n - 0.4)
    ax.set_ylim(g.output_size + 0.6, -0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"size {g.size}, kernel {g.kernel_size}, padding {g.padding}, stride {g.stride}, "
                 f"dilation {g.dilation}: {g.output_size} outputs", fontsize=9)
    return ax


def conv_arithmetic_explorer(size: int = 7, kernel_size: int = 3, padding: int = 1, stride: int = 2,
                             dilation: int = 1):
    """Sliders for input size, kernel size, padding, stride and dilation; draws and explains the result.

    Returns the ipywidgets box (display it, or leave it as a cell's last expression).
    """
    import ipywidgets as widgets
    from IPython.display import display

    def slider(value, low, high, description):
        return widgets.IntSlider(value=value, min=low, max=high, description=description, continuous_update=False,
                                 style={"description_width": "initial"})

    controls = {
        "size": slider(size, 1, 16, "input size"),
        "kernel_size": slider(kernel_size, 1, 9, "kernel size"),
        "padding": slider(padding, 0, 5, "padding"),
        "stride": slider(stride, 1, 5, "stride"),
        "dilation": slider(dilation, 1, 4, "dilation"),
        "row": slider(0, 0, 20, "output row"),
        "col": slider(0, 0, 20, "output col"),
    }
    text_out, figure_out = widgets.Output(), widgets.Output()

    def _redraw():
        settings = {k: controls[k].value for k in ("size", "kernel_size", "padding", "stride", "dilation")}
        text_out.clear_output(wait=True)
        figure_out.clear_output(wait=True)
        with text_out:
            print(formula_text(**settings))
        with figure_out:
            try:
                out = conv_geometry(**settings).output_size
                for key in ("row", "col"):
                    controls[key].max = max(out - 1, 0)
            except ValueError:
                pass
            fig = draw_conv_arithmetic(**settings, position=(controls["row"].value, controls["col"].value))
            display(fig)
            plt.close(fig)

    update = draw_once(_redraw)  # clamping a slider's value fires update again
    for control in controls.values():
        control.observe(update, names="value")
    update()
    sliders = widgets.VBox([widgets.HBox([controls["size"], controls["kernel_size"], controls["padding"]]),
                            widgets.HBox([controls["stride"], controls["dilation"]]),
                            widgets.HBox([controls["row"], controls["col"]])])
    box = widgets.VBox([sliders, text_out, figure_out])
    box.controls = controls  # for tests and for scripted demos
    return box

