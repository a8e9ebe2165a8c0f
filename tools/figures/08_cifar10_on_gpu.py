"""Instructor figures for lesson 08 (CIFAR-10 on a GPU)."""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


def _box(ax, x, y, w, h, text, color):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", facecolor=color,
                                edgecolor="black", linewidth=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=9)


def _arrow(ax, start, end, color="black", style="-|>", rad=0.0, lw=1.3, ls="-"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color, linewidth=lw,
                                 linestyle=ls, connectionstyle=f"arc3,rad={rad}"))


def figure_residual_block():
    """A residual block as in lesson 08's network: the input x passes through two conv-BN-ReLU layers, f(x),
    and also around them along the skip connection; the two meet at a sum, so the block outputs x + f(x).
    Red dashed arrows: the gradient comes back along both paths, d(x + f(x))/dx = 1 + f'(x), so it
    reaches x directly even when f's layers shrink it."""
    fig, ax = plt.subplots(figsize=(7.4, 3.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(0.25, 4.0)
    ax.axis("off")
    y = 1.6
    ax.text(0.45, y, "x", ha="center", va="center", fontsize=13, weight="bold")
    _box(ax, 2.6, y, 2.0, 0.9, "conv 3x3\nbatch norm, ReLU", "#cfe2f3")
    _box(ax, 5.2, y, 2.0, 0.9, "conv 3x3\nbatch norm, ReLU", "#cfe2f3")
    ax.add_patch(plt.Circle((7.5, y), 0.32, facecolor="#fff2cc", edgecolor="black"))
    ax.text(7.5, y, "+", ha="center", va="center", fontsize=15)
    ax.text(9.25, y, "x + f(x)", ha="center", va="center", fontsize=12, weight="bold")
    _arrow(ax, (0.7, y), (1.58, y))
    _arrow(ax, (3.62, y), (4.18, y))
    _arrow(ax, (6.22, y), (7.17, y))
    _arrow(ax, (7.83, y), (8.55, y))
    ax.text(3.9, 0.55, "f(x): what the block learns (a correction to x)", ha="center", va="center", fontsize=9,
            style="italic")
    # The skip connection: over the layers, from x straight to the sum.
    ax.plot([1.0, 1.0, 7.5], [y, 3.35, 3.35], color="black", linewidth=1.3)
    _arrow(ax, (7.5, 3.35), (7.5, y + 0.34))
    ax.text(4.25, 3.6, "skip connection: x itself, unchanged (no parameters)", ha="center", va="center", fontsize=9)
    # The gradient, backwards along both paths.
    ax.plot([7.2, 1.25, 1.25], [3.0, 3.0, y + 0.35], color="#c00000", linewidth=1.1, linestyle="--")
    _arrow(ax, (1.25, y + 0.5), (1.25, y + 0.2), color="#c00000", lw=1.1)
    ax.text(4.25, 2.72, "gradient: 1 x upstream, directly", ha="center", va="center", fontsize=8.5, color="#c00000")
    _arrow(ax, (7.2, y - 0.6), (0.8, y - 0.6), color="#c00000", lw=1.1, ls="--")
    ax.text(7.35, y - 0.6, "f'(x) x upstream", ha="left", va="center", fontsize=8.5, color="#c00000")
    ax.set_title("A residual block: the output is x + f(x); its gradient with respect to x is 1 + f'(x)", fontsize=10)
    return fig


def _picture():
    """A 32x32 RGB test picture that shows which way it faces: sky, sea, and a boat with its bow to the right."""
    import numpy as np

    img = np.zeros((32, 32, 3))
    img[:20] = (0.55, 0.75, 0.95)                        # sky
    img[20:] = (0.15, 0.35, 0.7)                         # sea
    for r in range(14, 21):                              # hull: wider at the top, a pointed bow on the right
        img[r, 6 + (r - 14) // 2:25 + (20 - r) // 1] = (0.75, 0.2, 0.15)
    img[4:14, 13] = (0.2, 0.2, 0.2)                      # mast
    for r in range(5, 13):                               # sail, to the right of the mast
        img[r, 14:14 + (r - 4)] = (0.98, 0.98, 0.9)
    img[3:6, 25:28] = (1.0, 0.85, 0.2)                   # sun, top right
    return img


def _flip_shift(img, flip, dy, dx):
    import numpy as np

    x = img[:, ::-1] if flip else img
    out = np.zeros_like(x)
    h, w = x.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = x[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def figure_augmentation():
    """What random_flip_translate does to a batch: each image is mirrored left to right with probability 1/2
    and shifted by its own random (dy, dx) in [-4, 4] pixels; pixels that come in are zero (black), none
    wrap around. Left: the original; then eight independent draws, each titled with its flip and shift."""
    import numpy as np

    rng = np.random.default_rng(8)
    img = _picture()
    draws = [(bool(rng.random() < 0.5), int(rng.integers(-4, 5)), int(rng.integers(-4, 5))) for _ in range(8)]
    fig, axes = plt.subplots(1, 9, figsize=(9.6, 1.9))
    axes[0].imshow(img, interpolation="nearest")
    axes[0].set_title("original", fontsize=9, weight="bold")
    for ax, (flip, dy, dx) in zip(axes[1:], draws):
        ax.imshow(_flip_shift(img, flip, dy, dx), interpolation="nearest")
        ax.set_title(f"{'flip, ' if flip else ''}dy={dy:+d}\ndx={dx:+d}", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("random_flip_translate(images, max_shift=4): one random flip and shift per image, zeros come in",
                 fontsize=9.5)
    fig.tight_layout()
    return fig
