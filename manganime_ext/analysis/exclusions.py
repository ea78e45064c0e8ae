"""Exclusion ranges: the frames of an episode without manga support (intro, outro, recaps).

A range is half-open, ``[start, stop)`` in stored frames, like every frame range of the project.
Pure functions, shared by the intro/outro search, the alignment and the page function.
"""

from typing import List, Sequence, Tuple

import numpy as np

Range = Tuple[int, int]


def supported_mask(num_frames: int, exclusions: Sequence[Sequence[int]]) -> np.ndarray:
    """Boolean per frame: True where the frame has manga support (outside every exclusion)."""
    mask = np.ones(num_frames, bool)
    for start, stop in exclusions:
        mask[start:stop] = False
    return mask


def merge_ranges(ranges: Sequence[Sequence[int]]) -> List[Range]:
    """Sorted, with overlapping or touching ranges joined: the order a page function requires."""
    out: List[List[int]] = []
    for start, stop in sorted((int(a), int(b)) for a, b in ranges):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], stop)
        else:
            out.append([start, stop])
    return [(a, b) for a, b in out]
