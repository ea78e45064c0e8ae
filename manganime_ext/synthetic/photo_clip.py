"""A clip of camera moves over photographs with hard cuts between them: cut-detection ground truth on
real textures, where the synthetic series is flat colour.

Each photo gives one shot, a pan across it or a zoom into it, so every frame differs from the last as in
real footage with a moving camera: a detector that reads any big change as a cut fires all through the
shot. The tests and the PySceneDetect benchmark take their photos from scikit-image's wheel (test data
only); any RGB arrays do.
"""

from typing import Iterator, List, Sequence

import numpy as np
import PIL.Image

KINDS = ("pan", "zoom")


def camera_shot(photo: np.ndarray, frames: int, kind: str, size: int) -> Iterator[np.ndarray]:
    """``frames`` frames, ``size`` px square, over ``photo``: a window of 0.6 of its short side panning
    sideways ("pan"), or a zoom from the whole short side in to 0.4 of it ("zoom")."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    h, w = photo.shape[:2]
    img = PIL.Image.fromarray(photo)
    for t in range(frames):
        u = t / max(1, frames - 1)
        if kind == "pan":
            side = min(h, w) * 0.6
            x0, y0 = (w - side) * (0.2 + 0.5 * u), (h - side) / 2
        else:
            side = min(h, w) * (1 - 0.6 * u)
            x0, y0 = (w - side) / 2, (h - side) / 2
        yield np.asarray(img.resize((size, size), PIL.Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side)))


def clip_frames(photos: Sequence[np.ndarray], shot_frames: int, size: int) -> Iterator[np.ndarray]:
    """One shot per photo, pans and zooms alternating, hard cuts between them (see ``true_cuts``)."""
    for i, photo in enumerate(photos):
        yield from camera_shot(photo, shot_frames, KINDS[i % 2], size)


def true_cuts(photos: int, shot_frames: int) -> List[int]:
    """The frames where a new shot starts (the ``cuts`` module's convention)."""
    return [shot_frames * i for i in range(1, photos)]
