"""Instructor figures for lesson 05 (normalisation layers)."""

import matplotlib.pyplot as plt
import numpy as np

from cnn_course import plots


def _statistic_ids(kind, n_images, n_channels, groups):
    """An (N, C) array: which set of statistics each (image, channel) feature map belongs to."""
    n, c = np.meshgrid(np.arange(n_images), np.arange(n_channels), indexing="ij")
    if kind == "batch":
        return c
    if kind == "layer":
        return n
    if kind == "instance":
        return n * n_channels + c
    return n * groups + c // (n_channels // groups)


def figure_norm_statistics():
    """Which feature maps share one mean and one variance, for 4 images (rows) and 6 channels
    (columns): batch norm (one set per channel), layer norm (one per image), instance norm (one
    per map) and group norm with 3 groups (one per image and pair of channels)."""
    n_images, n_channels = 4, 6
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
    for ax, (kind, title) in zip(axes, [("batch", "batch norm"), ("layer", "layer norm\n(group norm, G=1)"),
                                        ("instance", "instance norm\n(group norm, G=C)"),
                                        ("group", "group norm, G=3")]):
        ids = _statistic_ids(kind, n_images, n_channels, groups=3)
        plots.show_matrix(ids, ax=ax, title=f"{title}\n{ids.max() + 1} sets of statistics", cmap="tab20",
                          center=False, fmt="{:d}")
        ax.set_xlabel("channel c")
        ax.set_ylabel("image n")
    fig.tight_layout()
    return fig
