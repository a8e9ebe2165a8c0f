"""The small worked examples the lessons compute with, in one place.

Every number a lesson states about these is computed in the notebook from the
arrays below, never typed in by hand.
"""

from __future__ import annotations

import numpy as np

# A 6x6 grey image: a bright vertical bar (columns 3-4) crossing a mid-grey band
# (rows 2-3), with a dimmer bottom row. Pixel values are 0..255.
SIX_BY_SIX_IMAGE = np.array(
    [
        [0, 0, 0, 255, 255, 0],
        [0, 0, 0, 255, 255, 0],
        [127, 127, 127, 255, 255, 127],
        [127, 127, 127, 255, 255, 127],
        [0, 0, 0, 255, 255, 0],
        [0, 0, 0, 127, 127, 0],
    ],
    dtype=np.float64,
)

# The kernel the widely copied version of this example actually computes with:
# a vertical-edge detector that weights the right column twice as much as the
# left one (so it is *not* a Sobel kernel, which would be [[-1, 0, 1], ...]).
RIGHT_HEAVY_EDGE_KERNEL = np.array([[-1, 0, 2], [-2, 0, 4], [-1, 0, 2]], dtype=np.float64)

# Sum of the 8 neighbours minus 8 times the centre: responds to spots and corners.
LAPLACIAN_KERNEL = np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]], dtype=np.float64)

# The true Sobel kernels: horizontal gradient (responds to vertical edges) and its transpose.
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
SOBEL_Y = SOBEL_X.T.copy()

BOX_BLUR_3 = np.full((3, 3), 1 / 9)


def sample_photo(size: int | None = 256) -> np.ndarray:
    """A real photograph as float64 RGB in [0, 1], shape (H, W, 3).

    Uses the portrait of Grace Hopper that ships with matplotlib, so it works
    offline. ``size`` crops the centre and subsamples it to about size x size.
    """
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = mpimg.imread(f, format="jpg").astype(np.float64) / 255.0
    if size is not None:
        h, w = photo.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        step = max(1, side // size)
        photo = photo[top:top + side:step, left:left + side:step]
    return np.ascontiguousarray(photo)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an (H, W, 3) image."""
    return rgb @ np.array([0.299, 0.587, 0.114])
