"""Explorer for lesson 04: how much of a max-pooled map survives a small shift of its input.

Three layers, as in ``cnn_course.explorers``, so that everything but the sliders is
testable without a browser (``tests/test_pooling_explorer.py``):

1. ``pooling_shift``: the numbers (shifted map, both pooled maps, which outputs kept
   their value), or a ``ValueError`` that says which setting makes no sense;
2. ``shift_text`` and ``draw_pooling_shift``: a sentence and a figure from those numbers;
3. ``pooling_shift_explorer``: ipywidgets sliders wired to them; invalid settings show
   the message, never a traceback.

The pooling here is the module's own (k x k windows, stride k, floor mode): the explorer
must work before the learner has written ``max_pool2d``.
"""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle


@dataclasses.dataclass(frozen=True)
class PoolingShift:
    """A map, the map shifted by (dy, dx) with zero fill, and their k x k / k max pooling."""

    fmap: np.ndarray
    shifted: np.ndarray
    pooled: np.ndarray
    pooled_shifted: np.ndarray
    kernel_size: int
    dy: int
    dx: int

    @property
    def unchanged(self) -> np.ndarray:
        """Boolean map: True where the pooled output kept its value after the shift."""
        return self.pooled == self.pooled_shifted

    @property
    def fraction_unchanged(self) -> float:
        return float(self.unchanged.mean())


def _whole(name: str, value, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def shift_map(fmap: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``fmap`` moved dy rows down and dx columns right; vacated cells are 0, nothing wraps around."""
    h, w = fmap.shape
    out = np.zeros_like(fmap)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
        fmap[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


def max_pool(fmap: np.ndarray, kernel_size: int) -> np.ndarray:
    """k x k max pooling with stride k in floor mode (rows and columns that do not fill a window are dropped)."""
    k = kernel_size
    h, w = (fmap.shape[0] // k) * k, (fmap.shape[1] // k) * k
    return fmap[:h, :w].reshape(h // k, k, w // k, k).max(axis=(1, 3))


def pooling_shift(fmap, dy: int, dx: int, kernel_size: int = 2) -> PoolingShift:
    """Shift ``fmap`` (2-D) by (dy, dx) and max-pool both versions with k x k windows, stride k.

    Raises ValueError, naming the offending values, for a map that is not 2-D, a kernel
    that is smaller than 1 or larger than the map, or a shift as large as the map.
    """
    fmap = np.asarray(fmap, dtype=np.float64)
    if fmap.ndim != 2:
        raise ValueError(f"the map must be 2-D (H, W), got shape {fmap.shape}")
    h, w = fmap.shape
    k = _whole("window size", kernel_size, 1)
    if k > min(h, w):
        raise ValueError(f"a {k}x{k} window does not fit in a {h}x{w} map")
    dy, dx = _whole("dy", dy), _whole("dx", dx)
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a shift of ({dy}, {dx}) moves the whole {h}x{w} map out of view")
    shifted = shift_map(fmap, dy, dx)
    return PoolingShift(fmap, shifted, max_pool(fmap, k), max_pool(shifted, k), k, dy, dx)


def shift_text(result: PoolingShift) -> str:
    k, n = result.kernel_size, result.unchanged.size
    kept = int(result.unchanged.sum())
    return (f"{k}x{k}/{k} max pooling, input shifted {result.dy} down and {result.dx} right: "
            f"{kept} of {n} pooled outputs unchanged ({kept / n:.0%})")


def _show(ax, matrix, title, k=None, vmax=None, marks=None):
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=vmax)
    if matrix.size <= 100:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=8)
    if k:
        for line in range(k, matrix.shape[0] // k * k, k):
            ax.axhline(line - 0.5, color="black", linewidth=1.5)
        for line in range(k, matrix.shape[1] // k * k, k):
            ax.axvline(line - 0.5, color="black", linewidth=1.5)
    if marks is not None:
        for (i, j), same in np.ndenumerate(marks):
            if same:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#ef8a17", linewidth=3))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def draw_pooling_shift(result: PoolingShift, fig=None):
    """Four panels: map and shifted map with the pooling windows, and both pooled maps (kept outputs outlined)."""
    if fig is None:
        fig = plt.figure(figsize=(10, 3))
    axes = fig.subplots(1, 4)
    vmax = float(max(result.fmap.max(), 1e-12))
    k = result.kernel_size
    _show(axes[0], result.fmap, "map", k, vmax)
    _show(axes[1], result.shifted, f"shifted ({result.dy}, {result.dx})", k, vmax)
    _show(axes[2], result.pooled, "pooled map", None, vmax)
    _show(axes[3], result.pooled_shifted, "pooled shifted map\n(orange: unchanged)", None, vmax, result.unchanged)
    fig.tight_layout()
    return fig


def default_map(size: int = 8, seed: int = 0) -> np.ndarray:
    """A size x size map holding 1 .. size*size once each (no ties), in random order."""
    return (np.random.default_rng(seed).permutation(size * size) + 1).reshape(size, size).astype(np.float64)


def pooling_shift_explorer(fmap=None, kernel_size: int = 2, dy: int = 0, dx: int = 1):
    """Sliders for the shift and the window size; shows the pooled maps and what survived.

    Returns the ipywidgets box (display it, or leave it as a cell's last expression).
    """
    import ipywidgets as widgets
    from IPython.display import display

    fmap = default_map() if fmap is None else np.asarray(fmap, dtype=np.float64)

    def slider(value, low, high, description):
        return widgets.IntSlider(value=value, min=low, max=high, description=description, continuous_update=False,
                                 style={"description_width": "initial"})

    controls = {
        "dy": slider(dy, -4, 4, "dy (rows down)"),
        "dx": slider(dx, -4, 4, "dx (columns right)"),
        "kernel_size": slider(kernel_size, 1, 5, "window k (k x k, stride k)"),
    }
    text_out, figure_out = widgets.Output(), widgets.Output()

    def update(_change=None):
        text_out.clear_output(wait=True)
        figure_out.clear_output(wait=True)
        try:
            result = pooling_shift(fmap, controls["dy"].value, controls["dx"].value, controls["kernel_size"].value)
        except ValueError as exc:
            with text_out:
                print(f"Not possible: {exc}.")
            return
        with text_out:
            print(shift_text(result))
        with figure_out:
            fig = draw_pooling_shift(result)
            display(fig)
            plt.close(fig)

    for control in controls.values():
        control.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox(list(controls.values())), text_out, figure_out])
    box.controls = controls  # for tests and for scripted demos
    box.text_output = text_out
    return box
