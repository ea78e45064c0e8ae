"""Propose an episode's page function: which manga page each frame illustrates, found automatically.

Frames are colour and moving, pages are greyscale line art with screentone, so the two are compared
on what they share, their **line structure**: both are blurred to a coarse grid (screentone dots
average out), and the Sobel edge magnitude of that grid, zero-mean and unit-norm, is the feature.
A page is split into its panels by the white gutters; a frame scores against a page as its best
panel (each panel compared with the frame centre-cropped to the panel's shape, as manga panels
crop the key drawing they show).

The anime follows the manga in order, so the answer is a **monotonic** assignment: pages in order,
each a contiguous run of at least one frame. Dynamic programming over (frame, page) finds the
assignment with the highest total score in O(frames x pages); frames are sub-sampled (every
``step``-th supported frame) for speed and each boundary is then snapped, between its two samples,
to the pair with the lowest rho (page changes sit at cuts).
"""

from typing import List, Sequence, Tuple

import numpy as np
import PIL.Image
from scipy import ndimage

from manganime_ext.analysis.exclusions import supported_mask

GRID = 24          # feature grid (cells a side): coarse enough that screentone dots average away
WHITE = 235        # grey level above which a page pixel counts as paper
GUTTER_INK = 0.01  # a row/column with less ink than this share is a gutter


def _grey(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, np.float32)
    return a @ np.array([0.299, 0.587, 0.114], np.float32) if a.ndim == 3 else a


def line_feature(grey: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Unit-norm, zero-mean Sobel edge magnitude of ``grey`` area-resized to ``grid`` x ``grid`` (flat)."""
    small = np.asarray(PIL.Image.fromarray(np.asarray(grey, np.float32)).resize((grid, grid), PIL.Image.BOX))
    mag = np.hypot(ndimage.sobel(small, 0), ndimage.sobel(small, 1)).reshape(-1)
    mag = mag - mag.mean()
    norm = np.linalg.norm(mag)
    return mag / norm if norm > 0 else mag


def _runs(ink: np.ndarray) -> List[Tuple[int, int]]:
    """Half-open runs of True in a boolean line profile."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ink.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def split_panels(page: np.ndarray, min_size: int = 8) -> List[Tuple[int, int, int, int]]:
    """Panel boxes (y0, y1, x0, x1) of a greyscale page: bands between white gutters, then columns in each band.

    A page without gutters is one panel. Borders are kept inside the box (a few pixels of frame line
    barely move a coarse edge feature).
    """
    ink = np.asarray(page) < WHITE
    boxes = []
    for y0, y1 in _runs(ink.mean(axis=1) > GUTTER_INK):
        if y1 - y0 < min_size:
            continue
        for x0, x1 in _runs(ink[y0:y1].mean(axis=0) > GUTTER_INK):
            if x1 - x0 >= min_size:
                boxes.append((int(y0), int(y1), int(x0), int(x1)))
    return boxes or [(0, page.shape[0], 0, page.shape[1])]


def centre_crop(image: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred crop of ``image`` with width / height = ``aspect``."""
    h, w = image.shape[:2]
    if w / h > aspect:
        cw = max(1, int(round(h * aspect)))
        return image[:, (w - cw) // 2: (w - cw) // 2 + cw]
    ch = max(1, int(round(w / aspect)))
    return image[(h - ch) // 2: (h - ch) // 2 + ch]


def page_panels(page: np.ndarray, grid: int = GRID) -> List[Tuple[float, np.ndarray]]:
    """(aspect, line feature) of each panel of a page, aspect rounded so frames are cropped a few ways only."""
    grey = _grey(page)
    return [(round((x1 - x0) / (y1 - y0), 1), line_feature(grey[y0:y1, x0:x1], grid))
            for y0, y1, x0, x1 in split_panels(grey)]


def score_matrix(frames: Sequence[np.ndarray], pages: Sequence[np.ndarray], grid: int = GRID) -> np.ndarray:
    """Scores (frames x pages): each frame's best panel correlation with each page, then z-scored per page.

    The z-score puts pages with many panels (more chances of a lucky match) on a par with pages with few.
    """
    panels = [page_panels(p, grid) for p in pages]
    aspects = sorted({a for ps in panels for a, _ in ps})
    feats = {a: np.stack([line_feature(centre_crop(_grey(f), a), grid) for f in frames]) for a in aspects}
    scores = np.stack([np.max([feats[a] @ v for a, v in ps], axis=0) for ps in panels], axis=1)
    return (scores - scores.mean(axis=0)) / (scores.std(axis=0) + 1e-6)


def monotonic_assignment(scores: np.ndarray) -> np.ndarray:
    """Page index per row of ``scores`` (rows x pages), non-decreasing by 0 or 1 a row, starting at page 0,
    ending at the last page, maximising the summed score. Needs rows >= pages.

    best[r, p] = scores[r, p] + max(best[r-1, p], best[r-1, p-1]): stay on a page or turn to the next.
    """
    rows, pages = scores.shape
    if rows < pages:
        raise ValueError(f"{rows} frames cannot cover {pages} pages (each page needs at least one)")
    best = np.full((rows, pages), -np.inf)
    turned = np.zeros((rows, pages), bool)
    best[0, 0] = scores[0, 0]
    for r in range(1, rows):
        stay, turn = best[r - 1], np.concatenate([[-np.inf], best[r - 1, :-1]])
        turned[r] = turn > stay
        best[r] = scores[r] + np.maximum(stay, turn)
    path = np.empty(rows, np.int64)
    p = pages - 1
    for r in range(rows - 1, -1, -1):
        path[r] = p
        p -= int(turned[r, p])
    return path


def propose(frames, rho: np.ndarray, pages: Sequence[np.ndarray], exclusions: Sequence[Tuple[int, int]] = (),
            step: int = 4, grid: int = GRID) -> List[int]:
    """The proposed page boundaries of one episode: per page, the last frame on it (the study's tag format).

    ``frames`` is anything indexable by a frame index (a FrameStore's ``frames`` memmap works); ``rho``
    its adjacent similarities; ``pages`` the episode's page images in order. The last page ends at the
    last supported frame. ``data.page_function.proposed`` turns the result into a page function.
    """
    num_frames = len(rho) + 1
    supported = np.flatnonzero(supported_mask(num_frames, exclusions))
    if len(supported) < len(pages):
        raise ValueError(f"{len(supported)} supported frames cannot cover {len(pages)} pages")
    step = max(1, min(step, len(supported) // len(pages)))
    sample = supported[::step]
    path = monotonic_assignment(score_matrix([frames[i] for i in sample], pages, grid))
    boundaries = []
    for p in range(len(pages) - 1):
        last = int(np.flatnonzero(path == p)[-1])
        a, b = int(sample[last]), int(sample[last + 1])
        boundaries.append(a + int(np.argmin(rho[a:b])))  # pair (i, i+1) with the lowest rho: page p ends at i
    boundaries.append(int(supported[-1]))
    return boundaries


def boundary_hits(proposed: Sequence[int], truth: Sequence[int], tolerance: int = 12) -> int:
    """How many proposed boundaries lie within +-tolerance frames of the true boundary of the same page."""
    return int(np.sum(np.abs(np.asarray(proposed) - np.asarray(truth)) <= tolerance))


def truth_in_store_frames(episode: dict, num_frames: int, stride: int = 1,
                          start_frame: int = 0) -> Tuple[List[int], List[Tuple[int, int]]]:
    """A synthetic ground-truth episode's boundaries and intro/outro exclusions, in stored-frame indices.

    Stored frame k is source frame start_frame + k * stride: a boundary (last source frame of a page)
    maps to the last stored frame at or before it, a half-open source range to the stored frames inside it.
    """
    def first_kept(src: int) -> int:
        return int(np.clip(-(-(src - start_frame) // stride), 0, num_frames))

    bounds = [int(np.clip((b - start_frame) // stride, 0, num_frames - 1)) for b in episode["boundaries"]]
    excl = [(first_kept(a), first_kept(b)) for a, b in (episode[k] for k in ("intro", "outro") if episode.get(k))]
    return bounds, [(a, b) for a, b in excl if a < b]
