"""Instructor figures for lesson 04 (pooling and 1x1 convolutions)."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


def _weights(c_in, c_out, k):
    return c_in * c_out * k * k


def _block(ax, x, layers, title, channels_in):
    """Draw one residual block as a column of boxes, top (input) to bottom (output), with its skip connection."""
    top, step, width, height = 0.84, 0.17, 0.34, 0.1
    ax.text(x, 0.99, title, ha="center", va="top", fontsize=10, fontweight="bold")
    ax.text(x, top + 0.01, f"input: {channels_in} channels", ha="center", va="bottom", fontsize=8)
    colours = {1: "#fdd49e", 3: "#9ecae1"}
    y, previous_bottom = top, top
    for c_in, c_out, k in layers:
        y -= step
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.01",
                                    facecolor=colours[k], edgecolor="black"))
        ax.text(x, y + 0.015, f"{k}x{k} conv, {c_in} -> {c_out}", ha="center", va="center", fontsize=8.5)
        ax.text(x, y - 0.027, f"{_weights(c_in, c_out, k):,} weights", ha="center", va="center", fontsize=7.5)
        ax.add_patch(FancyArrowPatch((x, previous_bottom), (x, y + height / 2 + 0.01), arrowstyle="-|>",
                                     mutation_scale=10, shrinkA=0, shrinkB=0))
        previous_bottom = y - height / 2 - 0.01
    plus_y, radius = y - 0.12, 0.022
    ax.add_patch(FancyArrowPatch((x, previous_bottom), (x, plus_y + radius), arrowstyle="-|>", mutation_scale=10,
                                 shrinkA=0, shrinkB=0))
    ax.add_patch(plt.Circle((x, plus_y), radius, facecolor="white", edgecolor="black"))
    ax.text(x, plus_y, "+", ha="center", va="center", fontsize=11)
    skip_x, skip_y = x + width / 2 + 0.04, top - 0.03
    red = "#d62728"
    ax.plot([x, skip_x, skip_x], [skip_y, skip_y, plus_y], color=red, linewidth=1.3)
    ax.add_patch(FancyArrowPatch((skip_x, plus_y), (x + radius, plus_y), arrowstyle="-|>", mutation_scale=10,
                                 color=red, shrinkA=0, shrinkB=0))
    ax.text(skip_x + 0.015, (skip_y + plus_y) / 2, "skip: input added", color=red, fontsize=7.5, rotation=90,
            va="center")
    total = sum(_weights(*layer) for layer in layers)
    ax.text(x, plus_y - 0.04, f"output: {layers[-1][1]} channels, {total:,} weights", ha="center", va="top",
            fontsize=8.5)
    return total


def figure_bottleneck_block():
    """ResNet's basic block (two 3x3 convolutions on 64 channels) beside the bottleneck block
    (1x1 from 256 to 64 channels, 3x3 on 64, 1x1 back to 256), with each layer's weight count
    and the skip connection that adds the input to the output."""
    fig, ax = plt.subplots(figsize=(6.6, 4.6))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.04, 1)
    ax.axis("off")
    basic = _block(ax, 0.25, [(64, 64, 3), (64, 64, 3)], "basic block (ResNet-18/34)", 64)
    bottleneck = _block(ax, 0.72, [(256, 64, 1), (64, 64, 3), (64, 256, 1)], "bottleneck (ResNet-50+)", 256)
    ax.text(0.5, -0.03, f"bottleneck / basic = {bottleneck / basic:.2f} of the weights, with 4x the channels at its "
            "input and output", ha="center", va="bottom", fontsize=8.5, style="italic")
    return fig


def _max_pool(a, k=2):
    h, w = a.shape[0] // k, a.shape[1] // k
    return a[:h * k, :w * k].reshape(h, k, w, k).max(axis=(1, 3))


def _shift(a, dy, dx):
    out = np.zeros_like(a)
    h, w = a.shape
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = a[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


def _matrix(ax, m, title):
    ax.imshow(m, cmap="Blues", vmin=0, vmax=9)
    for (r, c), v in np.ndenumerate(m):
        ax.text(c, r, f"{v:g}", ha="center", va="center", color="white" if v > 5 else "black", fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def figure_pooling_shift():
    """The lesson's 4x4 map shifted one pixel down, up, right and left (top row, 2x2 windows
    outlined), and its 2x2/2 max pooling after each shift (bottom row), with how many of the
    four pooled values survive the shift."""
    fmap = np.array([[1.0, 3, 2, 0], [5, 9, 4, 7], [2, 0, 8, 1], [6, 3, 2, 5]])
    original = _max_pool(fmap)
    fig, axes = plt.subplots(2, 4, figsize=(8, 5))
    for col, (name, dy, dx) in enumerate([("down", 1, 0), ("up", -1, 0), ("right", 0, 1), ("left", 0, -1)]):
        shifted = _shift(fmap, dy, dx)
        pooled = _max_pool(shifted)
        _matrix(axes[0, col], shifted, f"shifted {name}")
        axes[0, col].axhline(1.5, color="black", linewidth=2)
        axes[0, col].axvline(1.5, color="black", linewidth=2)
        _matrix(axes[1, col], pooled, f"pooled: {int((pooled == original).sum())} of 4 unchanged")
    fig.suptitle(f"2x2/2 max pooling of the 4x4 map gives {original.astype(int).ravel().tolist()} unshifted",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _routed(x, dout, k, s):
    """The gradient of max pooling (no padding): each dout value added at its window's arg-max."""
    dx = np.zeros_like(x)
    for i in range(dout.shape[0]):
        for j in range(dout.shape[1]):
            window = x[i * s:i * s + k, j * s:j * s + k]
            a, b = np.unravel_index(np.argmax(window), window.shape)
            dx[i * s + a, j * s + b] += dout[i, j]
    return dx


def _grid(ax, m, title, highlight=None, vmax=None, lines=()):
    vmax = vmax or max(float(m.max()), 1.0)
    ax.imshow(m, cmap="Oranges" if highlight is None else "Blues", vmin=0, vmax=vmax)
    for (r, c), v in np.ndenumerate(m):
        bold = highlight is not None and highlight[r, c]
        ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=9, fontweight="bold" if bold else "normal",
                color="white" if v > 0.6 * vmax else "black")
        if bold:
            ax.add_patch(plt.Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, edgecolor="#d62728", linewidth=2))
    for position in lines:
        ax.axhline(position, color="black", linewidth=2)
        ax.axvline(position, color="black", linewidth=2)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def figure_maxpool_backward():
    """The backward pass of max pooling. Top: the lesson's 4x4 map with 2x2/2 windows (maxima outlined),
    the upstream gradient dout, and dx, where each dout value lands on its window's maximum and every
    other input gets 0. Bottom: 2x2 windows at stride 1 on a 3x3 map whose centre is the maximum of all
    four windows, so the centre collects the sum of the four gradients."""
    fmap = np.array([[1.0, 3, 2, 0], [5, 9, 4, 7], [2, 0, 8, 1], [6, 3, 2, 5]])
    dout = np.array([[10.0, 20], [30, 40]])
    small = np.array([[1.0, 2, 3], [4, 9, 5], [6, 7, 8]])
    dout_small = np.array([[1.0, 2], [3, 4]])
    fig, axes = plt.subplots(2, 3, figsize=(7.5, 6))
    for row, (x, d, k, s, lines, name) in enumerate([(fmap, dout, 2, 2, (1.5,), "2x2/2"),
                                                     (small, dout_small, 2, 1, (), "2x2, stride 1")]):
        dx = _routed(x, d, k, s)
        _grid(axes[row, 0], x, f"input x, {name} windows\n(maxima outlined)", highlight=dx != 0, vmax=9, lines=lines)
        _grid(axes[row, 1], d, "upstream gradient dout")
        _grid(axes[row, 2], dx, "dx: dout routed to the maxima" + ("\n(the centre collects 1+2+3+4)" if row else ""),
              lines=lines)
    fig.tight_layout()
    return fig
