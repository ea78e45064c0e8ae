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

With the frames at hand (a frame store's, as ``cuts`` and the tagger have them), ``verified_cuts``
does better on real footage: a looser rho rule proposes pairs (so a soft cut is not missed), and each
proposed pair is then looked at: both frames as 32 x 32 colour thumbnails, the second shifted against
the first by up to +-5 px (a pan of up to a sixth of the frame per pair) and compared over their
overlap, and the pair is a cut only if even the best shift leaves a large change (1 - Pearson
correlation >= 0.15). A camera
that starts to move, a hand-held shake or a character's pose change is matched away; two different
shots are not, whatever their palette. Only proposed pairs are looked at (a few per hundred frames),
so this costs milliseconds per episode on top of rho.

Everything here is a pure function of rho, of frames or of cut lists, so it is tested without files.
"""

import warnings
from typing import Dict, List, Sequence, Tuple

import numpy as np
import PIL.Image
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import maximum_filter1d

METHODS = ("adaptive", "cosine")
# Adaptive defaults, chosen on 3 synthetic series (seeds 1-3, 3 x 120 s) and two photo clips, then checked
# on unseen seeds 4-11 (benchmarks/bench_cuts_pyscenedetect.py): 3 errors in 1,488 cuts.
RATIO = 1.5         # above both sides' levels
QUIET_RATIO = 4.0   # ... or this far above the quieter side
MOTION_RATIO = 1.1  # ... and at least this far above the busier one
MIN_DROP = 0.02     # and d at least this: a character's change of pose in a still shot changes d by ~0.01
# Verification on the frames (verified_cuts), chosen on montages of real footage (seeds 0-19 of
# benchmarks/bench_cuts_pyscenedetect.py) and a synthetic series (seed 4): on the first four montages and the
# series, true cuts left at least 0.19 and false proposals at most 0.13 (but for one next to a true cut,
# which min_gap removes); montages 20-29 are the unseen check.
PROPOSE = dict(ratio=1.2, quiet_ratio=2.5, motion_ratio=1.0, min_drop=0.01)  # the looser rho rule: pairs to look at
THUMB = 32          # frames are compared as THUMB x THUMB colour thumbnails
SHIFT = 5           # +- thumbnail pixels of camera motion matched away
MIN_CHANGE = 0.15   # 1 - best Pearson correlation a cut must leave


def cosine_cuts(rho: np.ndarray, cutoff: float = 0.8) -> List[int]:
    """The study's rule: a cut at k wherever rho[k - 1] < cutoff."""
    return [int(i) + 1 for i in np.flatnonzero(np.asarray(rho) < cutoff)]


def _side_level(values: np.ndarray) -> np.ndarray:
    """median + 3 scaled MADs of each row (NaN = missing); NaN for a row with fewer than 2 values."""
    with warnings.catch_warnings():  # rows near the ends of a short episode may be all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(values, axis=1)
        mad = np.nanmedian(np.abs(values - med[:, None]), axis=1)
    level = med + 3.0 * 1.4826 * mad
    level[np.sum(~np.isnan(values), axis=1) < 2] = np.nan
    return level


def side_levels(d: np.ndarray, window: int) -> Tuple[np.ndarray, np.ndarray]:
    """Robust levels of d before and after each entry: (left, right).

    Anime is drawn "on twos" (and threes): held frames give d ~ 0 between every motion step, so d is
    first max-filtered over 3 pairs; the entry and its two direct neighbours (which the filter spread
    it into) are then left out. Each side (``window`` - 1 pairs) gets median + 3 scaled MADs. Near the
    ends a side is simply shorter; a side with fewer than two pairs (the first and last pairs of an
    episode) takes the other side's level, since "nothing there" is not "quiet there".
    """
    held = maximum_filter1d(d, size=3, mode="nearest")
    padded = np.concatenate([np.full(window, np.nan), held, np.full(window, np.nan)])
    views = sliding_window_view(padded, 2 * window + 1)
    left, right = _side_level(views[:, : window - 1]), _side_level(views[:, window + 2:])
    left, right = np.where(np.isnan(left), right, left), np.where(np.isnan(right), left, right)
    return np.nan_to_num(left), np.nan_to_num(right)


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


def _spikes(rho: np.ndarray, window: int, ratio: float, min_drop: float, quiet_ratio: float,
            motion_ratio: float) -> Tuple[np.ndarray, np.ndarray]:
    """(pair indices that pass the adaptive rule, every pair's busy-side score)."""
    rho = np.asarray(rho, np.float64)
    busy, quiet = adaptive_scores(rho, window)
    spike = (busy >= ratio) | ((quiet >= quiet_ratio) & (busy >= motion_ratio))
    return np.flatnonzero(spike & (1.0 - rho >= min_drop)), busy


def _keep_apart(pairs: np.ndarray, strength: np.ndarray, min_gap: int) -> List[int]:
    """Cut frames (pair + 1) of ``pairs``, the strongest first, none closer than ``min_gap`` to a kept one."""
    kept: List[int] = []
    for i in pairs[np.argsort(-strength, kind="stable")]:
        if all(abs(int(i) - k) >= min_gap for k in kept):
            kept.append(int(i))
    return sorted(k + 1 for k in kept)


def adaptive_cuts(rho: np.ndarray, window: int = 8, ratio: float = RATIO, min_drop: float = MIN_DROP,
                  min_gap: int = 4, quiet_ratio: float = QUIET_RATIO, motion_ratio: float = MOTION_RATIO) -> List[int]:
    """Cuts where d = 1 - rho is at least ``min_drop`` and stands ``ratio`` times above both sides' levels,
    or ``quiet_ratio`` times above the quieter side and ``motion_ratio`` times above the busier one.

    Of candidates closer than ``min_gap`` frames the strongest wins (one cut, one shot change).
    """
    pairs, busy = _spikes(rho, window, ratio, min_drop, quiet_ratio, motion_ratio)
    return _keep_apart(pairs, busy[pairs], min_gap)


def thumbnail(frame: np.ndarray, size: int = THUMB) -> np.ndarray:
    """A HWC uint8 frame as a ``size`` x ``size`` x 3 float thumbnail (area average)."""
    img = PIL.Image.fromarray(np.ascontiguousarray(frame, np.uint8))
    return np.asarray(img.convert("RGB").resize((size, size), PIL.Image.BOX), np.float64)


def _overlap_sums(image: np.ndarray, shift: int, sign: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per shift (dy, dx) in +-``shift``: the sum and the sum of squares of ``image`` over its part of the
    overlap (``image`` moved by ``sign`` * shift against the other thumbnail), from integral images."""
    size = image.shape[0]
    d = sign * np.arange(-shift, shift + 1)
    start, stop = np.maximum(0, d), size + np.minimum(0, d)
    out = []
    for values in (image.sum(-1), (image * image).sum(-1)):
        table = np.zeros((size + 1, size + 1))
        table[1:, 1:] = values.cumsum(0).cumsum(1)
        out.append(table[stop[:, None], stop[None, :]] - table[start[:, None], stop[None, :]]
                   - table[stop[:, None], start[None, :]] + table[start[:, None], start[None, :]])
    return out[0], out[1]


def compensated_change(a: np.ndarray, b: np.ndarray, shift: int = SHIFT) -> float:
    """1 - the best Pearson correlation of thumbnails ``a`` and ``b`` over their overlap, ``b`` shifted by up
    to +-``shift`` px each way.

    Thumbnails of one shot under camera motion match well at some shift (small change); two shots do
    not match anywhere (large change). The products of every shift come from one FFT correlation, the
    sums over each overlap from integral images. A flat thumbnail (a black frame) has no structure to
    compare: 1, so the rho rule alone decides.
    """
    size, channels = a.shape[0], a.shape[2]
    a, b = a - a.mean(), b - b.mean()  # smaller numbers, no cancellation in the variances below
    n = scipy.fft.next_fast_len(size + shift, real=True)  # no shift within +-shift wraps onto another
    fa, fb = scipy.fft.rfft2(np.stack([a, b]), s=(n, n), axes=(1, 2))
    near = np.r_[n - shift:n, 0:shift + 1]  # shifts -shift .. shift, as indices mod n
    prod = scipy.fft.irfft2((fa * np.conj(fb)).sum(-1), s=(n, n))[np.ix_(near, near)]  # sum a[x + s] b[x]
    sum_a, sq_a = _overlap_sums(a, shift, 1)
    sum_b, sq_b = _overlap_sums(b, shift, -1)
    side = size - np.abs(np.arange(-shift, shift + 1))
    count = np.outer(side, side) * channels
    var_a, var_b = sq_a - sum_a ** 2 / count, sq_b - sum_b ** 2 / count
    ok = (var_a > 1e-6 * count) & (var_b > 1e-6 * count)  # below 1e-6 grey levels^2 per value: flat
    if not ok.any():
        return 1.0
    corr = np.where(ok, (prod - sum_a * sum_b / count) / np.sqrt(np.where(ok, var_a * var_b, 1.0)), -1.0)
    return float(1.0 - corr.max())


def verified_cuts(rho: np.ndarray, frames, window: int = 8, min_gap: int = 4, min_change: float = MIN_CHANGE,
                  shift: int = SHIFT) -> List[int]:
    """Cuts proposed by a looser rho rule (``PROPOSE``) and confirmed on the frames: the pair's
    motion-compensated change (``compensated_change`` of thumbnails) is at least ``min_change``.

    ``frames``: anything indexable by frame number giving HWC uint8 frames (a store's memory map).
    """
    pairs, _ = _spikes(rho, window, **PROPOSE)
    change = np.array([compensated_change(thumbnail(frames[i]), thumbnail(frames[i + 1]), shift) for i in pairs])
    keep = change >= min_change
    return _keep_apart(pairs[keep], change[keep], min_gap)


def detect(rho: np.ndarray, method: str = "adaptive", cutoff: float = 0.8, window: int = 8, ratio: float = RATIO,
           min_drop: float = MIN_DROP, min_gap: int = 4, frames=None) -> List[int]:
    """Cuts (frames where a new shot starts) by ``method``; the other method's parameters are ignored.

    ``adaptive`` with ``frames`` (a store's) is ``verified_cuts``, whose rho rule is ``PROPOSE`` (``ratio``
    and ``min_drop`` are the rho-only rule's); without frames it is ``adaptive_cuts`` on rho alone.
    """
    if method == "cosine":
        return cosine_cuts(rho, cutoff)
    if method == "adaptive":
        if frames is not None:
            return verified_cuts(rho, frames, window, min_gap)
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
