"""Shot cuts from the adjacent-frame similarity rho that ``frames`` stores: candidates for page boundaries.

A cut "at k" means a new shot starts at stored frame k, i.e. the pair (k - 1, k), whose similarity is
``rho[k - 1]``, straddles it. Two detectors:

- ``cosine_cuts``: the study's fixed rule rho < cutoff (0.8). Simple, but one number cannot fit every
  scene: it misses soft cuts between similar shots and fires on fast pans and zooms.
- ``adaptive_cuts`` (the default): each pair's dissimilarity d = 1 - rho is judged against its own
  neighbourhood (median + 3 MADs of d over the ``window`` pairs before and, separately, after it). A
  cut is a lone spike that stands ``ratio`` times above both levels; sustained motion raises the level
  with it and so does not fire. Robust statistics keep a neighbouring cut from hiding this one. A cut
  from a quiet shot into fast motion (or back) stands far above the quiet side but only a little above
  the busy one, while the onset of a pan is no higher than the motion that follows it: so a spike
  ``QUIET_RATIO`` times the quieter level and ``MOTION_RATIO`` times the busier one is a cut too.

Everything here is a pure function of rho (or of cut lists), so it is tested without files.
"""

import warnings
from typing import Dict, List, Sequence, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import maximum_filter1d

METHODS = ("adaptive", "cosine")
# Adaptive defaults, chosen on 3 synthetic series (seeds 1-3, 3 x 120 s) and two photo clips, then checked
# on unseen seeds 4-11 (benchmarks/bench_cuts_pyscenedetect.py): 3 errors in 1,488 cuts.
RATIO = 1.5         # above both sides' levels
QUIET_RATIO = 4.0   # ... or this far above the quieter side
MOTION_RATIO = 1.1  # ... and at least this far above the busier one
MIN_DROP = 0.02     # and d at least this: a character's change of pose in a still shot changes d by ~0.01


def cosine_cuts(rho: np.ndarray, cutoff: float = 0.8) -> List[int]:
    """The study's rule: a cut at k wherever rho[k - 1] < cutoff."""
    return [int(i) + 1 for i in np.flatnonzero(np.asarray(rho) < cutoff)]


def _side_level(values: np.ndarray) -> np.ndarray:
    """median + 3 scaled MADs of each row (NaN = missing); 0 for a row with no values."""
    with warnings.catch_warnings():  # rows near the ends of a short episode may be all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(values, axis=1)
        mad = np.nanmedian(np.abs(values - med[:, None]), axis=1)
    return np.nan_to_num(med + 3.0 * 1.4826 * mad)


def side_levels(d: np.ndarray, window: int) -> Tuple[np.ndarray, np.ndarray]:
    """Robust levels of d before and after each entry: (left, right).

    Anime is drawn "on twos" (and threes): held frames give d ~ 0 between every motion step, so d is
    first max-filtered over 3 pairs; the entry and its two direct neighbours (which the filter spread
    it into) are then left out. Each side (``window`` - 1 pairs) gets median + 3 scaled MADs. Near the
    ends a side is simply shorter.
    """
    held = maximum_filter1d(d, size=3, mode="nearest")
    padded = np.concatenate([np.full(window, np.nan), held, np.full(window, np.nan)])
    views = sliding_window_view(padded, 2 * window + 1)
    return _side_level(views[:, : window - 1]), _side_level(views[:, window + 2:])


def adaptive_scores(rho: np.ndarray, window: int = 8, floor: float = 1e-3) -> Tuple[np.ndarray, np.ndarray]:
    """How far each pair's dissimilarity d = 1 - rho stands above its neighbourhood: d / (level + floor),
    against the busier side's level and against the quieter side's: (busy, quiet).

    ``floor`` stops a still shot (d ~ 0 all around) from turning codec noise into cuts.
    """
    d = 1.0 - np.asarray(rho, np.float64)
    if d.size == 0:
        return d, d
    left, right = side_levels(d, window)
    return d / (np.maximum(left, right) + floor), d / (np.minimum(left, right) + floor)


def adaptive_cuts(rho: np.ndarray, window: int = 8, ratio: float = RATIO, min_drop: float = MIN_DROP,
                  min_gap: int = 4, quiet_ratio: float = QUIET_RATIO, motion_ratio: float = MOTION_RATIO) -> List[int]:
    """Cuts where d = 1 - rho is at least ``min_drop`` and stands ``ratio`` times above both sides' levels,
    or ``quiet_ratio`` times above the quieter side and ``motion_ratio`` times above the busier one.

    Of candidates closer than ``min_gap`` frames the strongest wins (one cut, one shot change).
    """
    rho = np.asarray(rho, np.float64)
    busy, quiet = adaptive_scores(rho, window)
    spike = (busy >= ratio) | ((quiet >= quiet_ratio) & (busy >= motion_ratio))
    cand = np.flatnonzero(spike & (1.0 - rho >= min_drop))
    kept: List[int] = []
    for i in cand[np.argsort(-busy[cand], kind="stable")]:
        if all(abs(int(i) - k) >= min_gap for k in kept):
            kept.append(int(i))
    return sorted(k + 1 for k in kept)


def detect(rho: np.ndarray, method: str = "adaptive", cutoff: float = 0.8, window: int = 8, ratio: float = RATIO,
           min_drop: float = MIN_DROP, min_gap: int = 4) -> List[int]:
    """Cuts (frames where a new shot starts) by ``method``; the other method's parameters are ignored."""
    if method == "cosine":
        return cosine_cuts(rho, cutoff)
    if method == "adaptive":
        return adaptive_cuts(rho, window, ratio, min_drop, min_gap)
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


def _hits(predicted: Sequence[int], truth: Sequence[int], tolerance: int) -> int:
    """One-to-one matches within +-tolerance frames, greedy in order (optimal for sorted 1-D lists)."""
    p, t = sorted(predicted), sorted(truth)
    i = j = hits = 0
    while i < len(p) and j < len(t):
        if abs(p[i] - t[j]) <= tolerance:
            hits, i, j = hits + 1, i + 1, j + 1
        elif p[i] < t[j]:
            i += 1
        else:
            j += 1
    return hits


def _scores(hits: int, predicted: int, truth: int) -> Dict[str, float]:
    precision = hits / predicted if predicted else 1.0
    recall = hits / truth if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return dict(true_positives=hits, predicted=predicted, truth=truth, precision=precision, recall=recall, f1=f1)


def match(predicted: Sequence[int], truth: Sequence[int], tolerance: int = 1) -> Dict[str, float]:
    """Precision, recall and F1 of ``predicted`` cuts against ``truth``, one-to-one within +-tolerance frames."""
    return _scores(_hits(predicted, truth, tolerance), len(predicted), len(truth))


def match_all(pairs: Sequence[Tuple[Sequence[int], Sequence[int]]], tolerance: int = 1) -> Dict[str, float]:
    """``match`` pooled over episodes: (predicted, truth) per episode, counts summed (micro-average)."""
    return _scores(sum(_hits(p, t, tolerance) for p, t in pairs), sum(len(p) for p, _ in pairs),
                   sum(len(t) for _, t in pairs))


def truth_in_store_frames(cuts: Sequence[int], stride: int = 1, start_frame: int = 0) -> List[int]:
    """Source-frame cuts as stored-frame cuts: a shot starting at source c starts at the first kept frame >= c."""
    out = [-(-(c - start_frame) // stride) for c in cuts if c > start_frame]
    return sorted(set(k for k in out if k > 0))
