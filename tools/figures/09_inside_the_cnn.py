"""Instructor figures for lesson 09 (inside the CNN)."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

SIZE, PATCH, STRIDE, FILL = 32, 8, 4, 0.5


def _scene():
    """A 32x32 RGB picture: a red disc and a blue square on grey."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    disc = (rows - 14.5) ** 2 + (cols - 19.5) ** 2 <= 6.5 ** 2
    square = (rows >= 22) & (rows < 30) & (cols >= 2) & (cols < 10)
    image = np.full((SIZE, SIZE, 3), 0.55)
    image[disc] = (0.9, 0.2, 0.15)
    image[square] = (0.2, 0.35, 0.85)
    return image


def _score(image):
    """A toy class score: red is evidence for the class, blue (half as strong) against it; grey is neutral."""
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    return float((red - green).sum() - 0.5 * (blue - green).sum())


def _drop(image, top, left):
    """score(image) - score(image with the square at (top, left) set to FILL in every channel)."""
    covered = image.copy()
    covered[top:top + PATCH, left:left + PATCH] = FILL
    return _score(image) - _score(covered)


def figure_occlusion_sliding():
    """How an occlusion map is made: a patch x patch square slides over the image in steps of stride; at each
    position the covered image goes through the network, and the class score of the image minus the score of
    the covered copy becomes one cell of the map, which has (H - patch) // stride + 1 rows."""
    image = _scene()
    rows = (SIZE - PATCH) // STRIDE + 1
    drops = np.array([[_drop(image, i * STRIDE, j * STRIDE) for j in range(rows)] for i in range(rows)])
    hi, hj = 2, 3  # the highlighted position
    top, left = hi * STRIDE, hj * STRIDE
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.5))

    ax = axes[0]
    ax.imshow(image)
    for j, style in ((0, "-"), (1, "--")):
        ax.add_patch(Rectangle((j * STRIDE - 0.5, -0.5), PATCH, PATCH, fill=False, edgecolor="black", linewidth=1.6,
                               linestyle=style))
    ax.annotate("", xy=(STRIDE - 0.5, PATCH + 1.2), xytext=(-0.5, PATCH + 1.2),
                arrowprops=dict(arrowstyle="->", linewidth=1.2))
    ax.text(STRIDE / 2 - 0.5, PATCH + 2.5, f"stride {STRIDE}", ha="center", va="top", fontsize=8)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), PATCH, PATCH, fill=False, edgecolor="yellow", linewidth=2))
    ax.set_title(f"{SIZE}x{SIZE} image, a {PATCH}x{PATCH} square\nat rows and columns 0, {STRIDE}, {2 * STRIDE}, ...",
                 fontsize=9)
    ax.axis("off")

    ax = axes[1]
    covered = image.copy()
    covered[top:top + PATCH, left:left + PATCH] = FILL
    ax.imshow(covered)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), PATCH, PATCH, fill=False, edgecolor="yellow", linewidth=2))
    ax.set_title(f"position (i, j) = ({hi}, {hj}): rows {top}:{top + PATCH},\ncolumns {left}:{left + PATCH} "
                 "set to the fill value", fontsize=9)
    ax.text(SIZE / 2, SIZE + 1.5, f"score(image) - score(covered) = {drops[hi, hj]:+.0f}", ha="center", va="top",
            fontsize=9)
    ax.axis("off")

    ax = axes[2]
    limit = float(np.abs(drops).max())
    ax.imshow(drops, cmap="coolwarm", vmin=-limit, vmax=limit)
    ax.add_patch(Rectangle((hj - 0.5, hi - 0.5), 1, 1, fill=False, edgecolor="yellow", linewidth=2))
    for (i, j), value in np.ndenumerate(drops):
        ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6.5)
    ax.set_title(f"occlusion map: H' = ({SIZE} - {PATCH}) // {STRIDE} + 1 = {rows}\n"
                 "red: covering lowers the score; blue: raises it", fontsize=9)
    ax.set_xticks(range(rows))
    ax.set_yticks(range(rows))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("j", fontsize=8)
    ax.set_ylabel("i", fontsize=8)
    fig.tight_layout()
    return fig
