"""Instructor figures for lesson 02 (convolution)."""

import matplotlib.pyplot as plt
import numpy as np

from cnn_course import examples, plots

CHANNELS = [("R", "Reds"), ("G", "Greens"), ("B", "Blues")]


def _grid(ax, values, cmap, title, vmin, vmax):
    """A small matrix with its numbers written in the cells."""
    ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=8,
                color="white" if (v - vmin) / (vmax - vmin) > 0.6 else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8.5)


def figure_rgb_kernel():
    """One output value of a 3x3 convolution over an RGB image: the kernel has shape (3, 3, 3), one 3x3
    slice per colour channel; each channel's 3x3 window is multiplied element by element with its own
    slice and summed, and the three channel sums plus the bias give one number of the output map."""
    rng = np.random.default_rng(2)
    windows = rng.integers(0, 10, (3, 3, 3)).astype(float)      # (C, kh, kw): the window of each channel
    kernel = rng.integers(-2, 3, (3, 3, 3)).astype(float)       # (C, kh, kw): one slice per channel
    bias = 1.0
    sums = (windows * kernel).sum(axis=(1, 2))
    total = sums.sum() + bias

    fig = plt.figure(figsize=(7.4, 4.6))
    grid = fig.add_gridspec(3, 6, width_ratios=[1, 0.25, 1, 0.25, 0.55, 1.5], hspace=0.45, wspace=0.1)
    for c, (name, cmap) in enumerate(CHANNELS):
        _grid(fig.add_subplot(grid[c, 0]), windows[c], cmap, f"{name} channel: window", -2, 12)
        times = fig.add_subplot(grid[c, 1])
        times.axis("off")
        times.text(0.5, 0.5, "×", ha="center", va="center", fontsize=16)
        _grid(fig.add_subplot(grid[c, 2]), kernel[c], "coolwarm", f"kernel slice w[f, {c}]", -3, 3)
        eq = fig.add_subplot(grid[c, 3])
        eq.axis("off")
        eq.text(0.5, 0.5, "→", ha="center", va="center", fontsize=16)
        s = fig.add_subplot(grid[c, 4])
        s.axis("off")
        s.text(0.0, 0.5, f"sum = {sums[c]:g}", ha="left", va="center", fontsize=10)
    result = fig.add_subplot(grid[:, 5])
    result.axis("off")
    terms = " + ".join(f"({v:g})" for v in sums)
    result.text(0.1, 0.6, f"out[n, f, i, j]\n= {terms}\n   + bias ({bias:g})\n= {total:g}", ha="left", va="center",
                fontsize=10.5, bbox=dict(boxstyle="round", facecolor="#f0f0f0", edgecolor="grey"))
    result.text(0.1, 0.2, "one 3-D kernel (3, 3, 3) spans all\ninput channels; its output is one\n"
                "number per position: a single map", ha="left", va="center", fontsize=8.5, style="italic")
    fig.suptitle("A 3x3 kernel over an RGB image: one output value", fontsize=11)
    return fig


def _correlate(image, kernel):
    return np.einsum("ijab,ab->ij", np.lib.stride_tricks.sliding_window_view(image, kernel.shape), kernel)


def figure_filter_bank():
    """Four hand-designed 3x3 kernels applied to a grey photograph as one layer with four output maps:
    Sobel x (vertical edges), Sobel y (horizontal edges), the Laplacian (spots, fine detail), a box blur."""
    grey = examples.to_grey(examples.sample_photo(size=160))
    maps = [_correlate(grey, k) for k in (examples.SOBEL_X, examples.SOBEL_Y, examples.LAPLACIAN_KERNEL,
                                          examples.BOX_BLUR_3)]
    return plots.show_images([grey, *maps], titles=["input", "Sobel x (vertical edges)", "Sobel y (horizontal edges)",
                                                    "Laplacian (spots, fine detail)", "3x3 box blur"], ncols=5)


def figure_stacked_convolutions():
    """A vertical-edge (Sobel) layer followed by a 3x3 blur, beside one layer with their composed 5x5 kernel
    (the same picture), and the two layers with a ReLU between them (the falling edges are gone)."""
    grey = examples.to_grey(examples.sample_photo(size=160))
    k_edge, k_blur = examples.SOBEL_X, examples.BOX_BLUR_3
    K = np.zeros((5, 5))
    for c in range(3):
        for d in range(3):
            K[c:c + 3, d:d + 3] += k_blur[c, d] * k_edge
    fig, axes = plt.subplots(1, 5, figsize=(14, 3))
    plots.show_matrix(K, ax=axes[0], title="composed 5x5 kernel", fmt="{:.2f}")
    for ax, img, title in zip(axes[1:], [grey, _correlate(_correlate(grey, k_edge), k_blur), _correlate(grey, K),
                                         _correlate(np.maximum(_correlate(grey, k_edge), 0), k_blur)],
                              ["input", "edge, then blur", "one layer, kernel K", "edge, ReLU, then blur"]):
        ax.imshow(img, cmap="gray")
        ax.set_title(title)
        ax.axis("off")
    return fig
