"""Instructor figures for lesson 01 (the limits of fully-connected layers): the pictures its demo cells draw
with the learner's conv_as_matrix and translate, shown instead while those are not written yet."""

import matplotlib.pyplot as plt
import numpy as np

from cnn_course import plots


def _conv_matrix(kernel, height, width):
    kh, kw = kernel.shape
    out_h, out_w = height - kh + 1, width - kw + 1
    matrix = np.zeros((out_h * out_w, height * width))
    for i in range(out_h):
        for j in range(out_w):
            for a in range(kh):
                for b in range(kw):
                    matrix[i * out_w + j, (i + a) * width + (j + b)] = kernel[a, b]
    return matrix


def _shift(image, dy, dx):
    """Shift down by dy and right by dx (both >= 0), zero-filled."""
    out = np.zeros_like(image)
    out[dy:, dx:] = image[:image.shape[0] - dy, :image.shape[1] - dx]
    return out


def figure_conv_matrix():
    """The 16x36 matrix of a 3x3 correlation (kernel entries 1 to 9) on a 6x6 image: each row is one output
    pixel and holds the same nine numbers in three short runs, shifted from row to row; white is zero."""
    M = _conv_matrix(np.arange(1.0, 10.0).reshape(3, 3), 6, 6)
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.imshow(np.where(M == 0, np.nan, M), cmap="viridis")
    for (r, c), value in np.ndenumerate(M):
        if value:
            ax.text(c, r, f"{value:g}", ha="center", va="center", fontsize=6, color="white")
    ax.set_xlabel("input pixel (row-major index into the 6x6 image)")
    ax.set_ylabel("output pixel (row-major index into the 4x4 output)")
    ax.set_title("a 3x3 correlation on a 6x6 image, as a 16x36 matrix")
    return fig


def figure_equivariance():
    """A random 12x12 image x, x shifted 2 rows down and 1 column right, a 3x3 correlation of both, and
    |conv(shift(x)) - shift(conv(x))| (zero away from the top and left border) beside the same difference
    for a dense layer of the same shape with random weights (non-zero everywhere)."""
    rng = np.random.default_rng(1)
    image = rng.standard_normal((12, 12))
    kernel = rng.standard_normal((3, 3))
    M_conv = _conv_matrix(kernel, 12, 12)
    M_dense = rng.standard_normal(M_conv.shape) / 12

    def apply(matrix, img):
        return (matrix @ img.ravel()).reshape(10, 10)

    shifted = _shift(image, 2, 1)
    conv_diff = apply(M_conv, shifted) - _shift(apply(M_conv, image), 2, 1)
    dense_diff = apply(M_dense, shifted) - _shift(apply(M_dense, image), 2, 1)
    return plots.show_images([image, shifted, apply(M_conv, image), apply(M_conv, shifted), np.abs(conv_diff),
                              np.abs(dense_diff)],
                             titles=["x", "shift(x)", "conv(x)", "conv(shift(x))", "|conv difference|",
                                     "|dense difference|"], ncols=6, size=1.8)
