"""Instructor figures for lesson 03 (padding, stride and dilation; im2col)."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from cnn_course import examples, plots
from cnn_course.explorers import conv_geometry

PAD, INPUT, UNUSED = "#d9d9d9", "#ffffff", "#f4b6b6"
WINDOW_COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"]


def _padded_grid(ax, g, outputs):
    """The padded input of geometry ``g`` as a grid, with the windows of the given output positions outlined."""
    n = g.padded_size
    last_read = g.starts[-1] + g.effective_kernel
    for r in range(n):
        for c in range(n):
            inside = g.padding <= r < g.padding + g.size and g.padding <= c < g.padding + g.size
            colour = UNUSED if (r >= last_read or c >= last_read) else INPUT if inside else PAD
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=colour, edgecolor="#999999", linewidth=0.6))
    for k, (i, j) in enumerate(outputs):
        top, left = g.starts[i], g.starts[j]
        inset = 0.08 * (k + 1)
        ax.add_patch(Rectangle((left + inset, top + inset), g.effective_kernel - 2 * inset,
                               g.effective_kernel - 2 * inset, fill=False, edgecolor=WINDOW_COLOURS[k],
                               linewidth=2.2))
        ax.text(left + 0.5, top + 0.55, f"{i},{j}", color=WINDOW_COLOURS[k], fontsize=7, ha="center", va="center",
                fontweight="bold")
    ax.set_xlim(-0.2, n + 0.2)
    ax.set_ylim(n + 0.2, -0.2)
    ax.set_aspect("equal")
    ax.axis("off")


def figure_padding_stride():
    """Four settings of one 3x3 kernel on a small square input, drawn on the padded grid: the windows of the
    first outputs are outlined (labelled by their output position), padding is grey, and cells that no
    window reaches (lost to the floor in the output-size formula) are red. Each title gives the output size
    the formula computes."""
    settings = [(5, 0, 1), (5, 1, 1), (5, 1, 2), (6, 0, 2)]   # (size, padding, stride), kernel 3
    fig, axes = plt.subplots(1, len(settings), figsize=(11, 3.4))
    for ax, (size, padding, stride) in zip(axes, settings):
        g = conv_geometry(size, 3, padding, stride)
        outputs = [(0, 0), (0, 1), (1, 0)] if g.output_size > 1 else [(0, 0)]
        _padded_grid(ax, g, outputs)
        ax.set_title(f"input {size}x{size}, padding {padding}, stride {stride}\n"
                     f"output {g.output_size}x{g.output_size}", fontsize=9)
    fig.suptitle("A 3x3 kernel: windows of outputs (0,0), (0,1), (1,0); grey = padding, red = never read",
                 fontsize=10)
    fig.tight_layout()
    return fig


def figure_im2col():
    """im2col on a 4x4 single-channel image and a 3x3 kernel: each of the four 3x3 windows (outlined in its
    colour) becomes one row of the (4, 9) im2col matrix; the kernel flattened into a column of 9; one matrix
    product gives all four outputs at once, reshaped to the 2x2 output map."""
    image = np.random.default_rng(3).integers(0, 10, (4, 4))
    kernel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    windows = np.lib.stride_tricks.sliding_window_view(image, (3, 3))     # (2, 2, 3, 3)
    cols = windows.reshape(4, 9)
    out = cols @ kernel.ravel()

    fig = plt.figure(figsize=(11, 4.2))
    grid = fig.add_gridspec(1, 7, width_ratios=[4, 0.7, 9, 0.5, 1, 0.5, 2.2], wspace=0.15)
    ax = fig.add_subplot(grid[0])
    for (r, c), v in np.ndenumerate(image):
        ax.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="#999999"))
        ax.text(c + 0.5, r + 0.5, str(v), ha="center", va="center", fontsize=9)
    for k in range(4):
        i, j = divmod(k, 2)
        inset = 0.07 * (k + 1)
        ax.add_patch(Rectangle((j + inset, i + inset), 3 - 2 * inset, 3 - 2 * inset, fill=False,
                               edgecolor=WINDOW_COLOURS[k], linewidth=2))
    ax.set_xlim(-0.1, 4.1)
    ax.set_ylim(4.1, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("image (4x4), four 3x3 windows", fontsize=9)

    arrow = fig.add_subplot(grid[1])
    arrow.axis("off")
    arrow.text(0.5, 0.5, "→", ha="center", va="center", fontsize=20)

    ax = fig.add_subplot(grid[2])
    for (r, c), v in np.ndenumerate(cols):
        ax.add_patch(Rectangle((c, r), 1, 1, facecolor=WINDOW_COLOURS[r], alpha=0.25, edgecolor="#999999"))
        ax.text(c + 0.5, r + 0.5, str(v), ha="center", va="center", fontsize=9)
    ax.set_xlim(-0.1, 9.1)
    ax.set_ylim(4.1, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"im2col matrix {cols.shape}: one window per row", fontsize=9)

    times = fig.add_subplot(grid[3])
    times.axis("off")
    times.text(0.5, 0.5, "@", ha="center", va="center", fontsize=14)

    ax = fig.add_subplot(grid[4])
    for r, v in enumerate(kernel.ravel()):
        ax.add_patch(Rectangle((0, r), 1, 1, facecolor="#eeeeee", edgecolor="#999999"))
        ax.text(0.5, r + 0.5, str(v), ha="center", va="center", fontsize=9)
    ax.text(0.5, 9.3, "kernel\n(9, 1)", ha="center", va="top", fontsize=9)
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(10.4, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")

    eq = fig.add_subplot(grid[5])
    eq.axis("off")
    eq.text(0.5, 0.5, "=", ha="center", va="center", fontsize=14)

    ax = fig.add_subplot(grid[6])
    for k, v in enumerate(out):
        i, j = divmod(k, 2)
        ax.add_patch(Rectangle((j, i), 1, 1, facecolor=WINDOW_COLOURS[k], alpha=0.25, edgecolor="#999999"))
        ax.text(j + 0.5, i + 0.5, str(v), ha="center", va="center", fontsize=9)
    ax.set_xlim(-0.1, 2.1)
    ax.set_ylim(2.1, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("4 outputs,\nreshaped to 2x2", fontsize=9)
    fig.suptitle("im2col: every window a row, the kernel a column, the whole layer one matrix product\n"
                 "(with N images, C channels and F kernels: (N*H_out*W_out, C*kh*kw) @ (C*kh*kw, F))", fontsize=10)
    return fig


def _conv(image, kernel, padding=0, stride=1, dilation=1):
    """One grey image, one kernel: zero padding, stride and dilation, as in lesson 03's conv2d."""
    padded = np.pad(image, padding)
    span = dilation * (kernel.shape[0] - 1) + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, (span, span))[::stride, ::stride, ::dilation, ::dilation]
    return np.einsum("ijab,ab->ij", windows, kernel)


def figure_edge_strides():
    """Edge strength (the length of the Sobel x and y responses) of a grey photograph at stride 1, at stride 2
    (a quarter of the outputs) and with dilation 3 (the same 9 weights spread over 7x7 pixels: coarser edges)."""
    grey = examples.to_grey(examples.sample_photo(size=96))
    settings = [dict(padding=1), dict(padding=1, stride=2), dict(padding=3, dilation=3)]
    maps = [np.hypot(_conv(grey, examples.SOBEL_X, **kw), _conv(grey, examples.SOBEL_Y, **kw)) for kw in settings]
    return plots.show_images(maps, titles=["stride 1", "stride 2", "dilation 3"], ncols=3, size=2.5)


def figure_zero_padding_blur():
    """A grey photograph, the same zero-padded by 3 pixels, and its 7x7 box blur with "same" padding, whose
    border is darker than the input's: near the border every window averages real pixels with zeros."""
    grey = examples.to_grey(examples.sample_photo(size=96))
    padded = np.pad(grey, 3)
    blurred = np.lib.stride_tricks.sliding_window_view(padded, (7, 7)).mean(axis=(2, 3))
    return plots.show_images([grey, padded, blurred], titles=["input", "zero-padded by 3", "7x7 blur, 'same'"],
                             ncols=3, size=2.5)
