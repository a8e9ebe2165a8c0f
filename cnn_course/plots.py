"""Pictures for the lessons: images, kernels and feature maps as matplotlib grids."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


def _grid(n: int, ncols: int | None, size: float):
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat[:n]


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def show_matrix(matrix, ax=None, title: str | None = None, fmt: str = "{:g}", cmap: str = "coolwarm",
                annotate: bool = True, center: bool = True):
    """One small 2-D array as a heat map with its numbers written in the cells."""
    matrix = _to_numpy(matrix)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * matrix.shape[1] + 1, 0.5 * matrix.shape[0] + 1))
    limit = float(np.abs(matrix).max()) or 1.0
    kwargs = {"vmin": -limit, "vmax": limit} if center else {}
    ax.imshow(matrix, cmap=cmap, **kwargs)
    if annotate:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def show_images(images, titles: Sequence[str] | None = None, ncols: int | None = None, size: float = 2.0,
                cmap: str = "gray", channels_first: bool | None = None):
    """A grid of images: (N, H, W) grey, or (N, H, W, 3) / (N, 3, H, W) RGB, any value range.

    Each image is rescaled to [0, 1] on its own so that filter responses with
    negative values remain visible.
    """
    if isinstance(images, (list, tuple)):  # images of different sizes are fine in a list
        images = [_to_numpy(img) for img in images]
    else:
        images = _to_numpy(images)
        images = list(images[None] if images.ndim == 2 else images)
    for k, img in enumerate(images):
        first = img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3)
        if img.ndim == 3 and (first if channels_first is None else channels_first):
            images[k] = img.transpose(1, 2, 0)
    fig, axes = _grid(len(images), ncols, size)
    for k, (ax, img) in enumerate(zip(axes, images)):
        img = img.astype(np.float64)
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        lo, hi = img.min(), img.max()
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.axis("off")
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
    fig.tight_layout()
    return fig


def show_kernels(weights, ncols: int | None = None, size: float = 1.2, rgb: bool | None = None):
    """Convolution kernels (F, C, kh, kw): as RGB tiles when C == 3, else one tile per (f, c)."""
    w = _to_numpy(weights)
    if w.ndim == 2:
        w = w[None, None]
    rgb = (w.shape[1] == 3) if rgb is None else rgb
    if rgb:
        return show_images(w.transpose(0, 2, 3, 1), titles=[f"filter {f}" for f in range(len(w))],
                           ncols=ncols, size=size)
    tiles = w.reshape(-1, *w.shape[2:])
    titles = [f"f{f} c{c}" for f in range(w.shape[0]) for c in range(w.shape[1])]
    fig, axes = _grid(len(tiles), ncols or w.shape[1] if w.shape[1] > 1 else ncols, size)
    for ax, tile, title in zip(axes, tiles, titles):
        show_matrix(tile, ax=ax, title=title, annotate=tile.size <= 25)
    fig.tight_layout()
    return fig


def show_feature_maps(maps, ncols: int | None = None, size: float = 1.6, title: str | None = None):
    """Feature maps (C, H, W) (or (1, C, H, W)) side by side, one colour scale per map."""
    maps = _to_numpy(maps)
    if maps.ndim == 4:
        maps = maps[0]
    fig, axes = _grid(len(maps), ncols, size)
    for c, (ax, fmap) in enumerate(zip(axes, maps)):
        ax.imshow(fmap, cmap="viridis")
        ax.set_title(f"map {c}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def instructor_figure(lesson: str, name: str, note: str | None = None) -> None:
    """Show the instructor's picture ``<name>.png`` of ``lesson`` in place of a demo that needs a function
    the learner has not written yet (``except NotImplementedError:``), with a one-line note.

    The picture is the one beside the notebook (``figures/<name>.png``), else, on Colab, the
    repository's copy.
    """
    import pathlib

    from IPython.display import Image, display

    from . import links

    print(note or "Your function is not written yet: this is the instructor's picture. "
          "Run this cell again once it is, to draw your own.")
    local = pathlib.Path("figures") / f"{name}.png"
    display(Image(filename=str(local)) if local.is_file()
            else Image(url=links.raw_url(f"lessons/{lesson}/figures/{name}.png")))
