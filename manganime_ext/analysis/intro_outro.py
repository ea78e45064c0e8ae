"""Intro / outro detection: the frames without manga support, as exclusion ranges per episode.

Openings and closings repeat in every episode and have no page, so the page function excludes them
(half-open ``[start, stop)`` frame ranges, see ``analysis.exclusions``).
Two ways to find them in each episode's frame store, both searching only the first (intro) or last
(outro) ``minutes`` of the episode, and never more than its half:

- **reference** (the study's): the frame most similar by rho to a representative image (a PNG of an
  intro frame), then ``left`` frames before it and ``right`` after it, i.e. ``[best - left, best + right + 1)``.
- **auto**: no image needed. Each frame becomes a tiny signature (8x8 grey means); between every pair
  of episodes the longest run of near-identical consecutive signatures at a constant offset is the
  sequence they share (longest common substring, with a tolerance, one row of DP at a time). The
  episode that shares a run with most others is the pivot; its range is the median of its sides
  of those runs, and every other episode's range is its side of the run it shares with the pivot.

Exclusion files are JSON ``{episode: [[start, stop], ...]}``, written atomically.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import PIL.Image

from manganime_ext.analysis.exclusions import Range, merge_ranges
from manganime_ext.analysis.similarity import cosine_similarity, frame_vector
from manganime_ext.io.frame_store import FrameStore
from manganime_ext.io.json_files import read_json, write_json

PARTS = ("intro", "outro")
SIGNATURE = 8          # signature side: 8x8 grey means survive compression noise, still tell shots apart


class IntroOutroError(ValueError):
    """Inputs that cannot give exclusions (too few episodes, no shared sequence, bad image or file)."""


def store_fps(store: FrameStore, name: str) -> float:
    """Stored frames per second: the source fps divided by the store's stride."""
    fps = store.header.get("fps")
    if not fps:
        raise IntroOutroError(f"{name}: the store's header has no fps, so --minutes/--min-seconds cannot be used")
    return float(fps) / store.header.get("stride", 1)


def search_window(num_frames: int, frames: int, part: str) -> Range:
    """The first (intro) or last (outro) ``frames`` of an episode, at most half of it: ``[start, stop)``."""
    span = max(1, min(frames, num_frames // 2))
    return (0, span) if part == "intro" else (num_frames - span, num_frames)


def signatures(frames: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8 frames to N x 64 float32 signatures: 8x8 box means of the grey image."""
    out = np.empty((len(frames), SIGNATURE * SIGNATURE), np.float32)
    for i, frame in enumerate(frames):
        grey = PIL.Image.fromarray(np.asarray(frame)).convert("L")
        out[i] = np.asarray(grey.resize((SIGNATURE, SIGNATURE), PIL.Image.BOX), np.float32).reshape(-1)
    return out


def longest_common_run(a: np.ndarray, b: np.ndarray, tolerance: float) -> Tuple[int, int, int]:
    """Longest run a[i0:i0+L] ~ b[j0:j0+L] of signatures within RMS ``tolerance`` (grey levels): (L, i0, j0).

    DP along the diagonals one row of ``a`` at a time (row i's matches: |a_i|^2 + |b|^2 - 2 b a_i), so
    memory is a few rows of len(b) whatever the window (3 minutes at 24 fps: 4320 x 4320 pairs).
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms_b, limit = (b64 * b64).sum(1), tolerance * tolerance * a.shape[1]
    best, end_i, end_j = 0, 0, 0
    prev = np.zeros(b.shape[0] + 1, np.int64)
    for i, row in enumerate(a64):
        match = row @ row + norms_b - 2.0 * (b64 @ row) <= limit
        cur = np.zeros_like(prev)
        cur[1:] = np.where(match, prev[:-1] + 1, 0)
        j = int(cur.argmax())
        if cur[j] > best:
            best, end_i, end_j = int(cur[j]), i, j - 1
        prev = cur
    return best, end_i - best + 1, end_j - best + 1


def shared_ranges(sigs: Sequence[np.ndarray], min_frames: int, tolerance: float) -> List[Optional[Range]]:
    """Per episode, the ``[start, stop)`` (in its signature indices) of the sequence most episodes share.

    None for an episode that shares no run of ``min_frames`` with the pivot. Pure: see the module doc.
    """
    n = len(sigs)
    if n < 2:
        raise IntroOutroError("--method auto finds the sequence episodes share, so it needs at least 2 episodes")
    runs: Dict[Tuple[int, int], Tuple[int, int, int]] = {}
    for p in range(n):
        for q in range(p + 1, n):
            length, i0, j0 = longest_common_run(sigs[p], sigs[q], tolerance)
            runs[p, q], runs[q, p] = (length, i0, j0), (length, j0, i0)
    partners = [[q for q in range(n) if q != p and runs[p, q][0] >= min_frames] for p in range(n)]
    pivot = max(range(n), key=lambda p: len(partners[p]))
    if not partners[pivot]:
        return [None] * n
    out: List[Optional[Range]] = [None] * n
    starts = [runs[pivot, q][1] for q in partners[pivot]]
    stops = [runs[pivot, q][1] + runs[pivot, q][0] for q in partners[pivot]]
    out[pivot] = (int(np.median(starts)), int(np.median(stops)))
    for q in partners[pivot]:
        length, _, j0 = runs[pivot, q]
        out[q] = (j0, j0 + length)
    return out


def detect_auto(stores: Dict[str, FrameStore], part: str, minutes: float, min_seconds: float,
                tolerance: float = 10.0) -> Dict[str, List[Range]]:
    """{episode: [[start, stop)] or []} for the intro/outro repeated across ``stores``, without a reference."""
    windows, sigs, min_frames = {}, [], None
    for name, store in stores.items():
        fps = store_fps(store, name)
        windows[name] = search_window(len(store), int(round(minutes * 60 * fps)), part)
        sigs.append(signatures(store[windows[name][0]:windows[name][1]]))
        min_frames = max(2, int(round(min_seconds * fps))) if min_frames is None else min_frames
    found = shared_ranges(sigs, min_frames, tolerance)
    return {name: [] if r is None else [(windows[name][0] + r[0], windows[name][0] + r[1])]
            for name, r in zip(stores, found)}


def load_reference(path: str, width: int, height: int) -> np.ndarray:
    """The representative image as H x W x 3 uint8 at the stores' size (area resize, like the stores' squash)."""
    try:
        with PIL.Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise IntroOutroError(f"{path}: not a readable image ({e})") from None
    return np.asarray(rgb.resize((width, height), PIL.Image.BOX))


def best_match(frames: np.ndarray, reference: np.ndarray) -> Tuple[int, float]:
    """(index, rho) of the frame most similar to ``reference`` by the study's rho."""
    ref = frame_vector(reference)
    rho = [cosine_similarity(frame_vector(f), ref) for f in frames]
    i = int(np.argmax(rho))
    return i, float(rho[i])


def detect_reference(stores: Dict[str, FrameStore], part: str, image: str, minutes: float, left: int,
                     right: int) -> Dict[str, List[Range]]:
    """The study's method: {episode: [[best - left, best + right + 1)]}, clipped to the episode."""
    out, reference = {}, None
    for name, store in stores.items():
        n, h, w = len(store), store.frames.shape[1], store.frames.shape[2]
        if reference is None or reference.shape[:2] != (h, w):
            reference = load_reference(image, w, h)
        start, stop = search_window(n, int(round(minutes * 60 * store_fps(store, name))), part)
        best = start + best_match(store[start:stop], reference)[0]
        out[name] = [(max(0, best - left), min(n, best + right + 1))]
    return out


def load_exclusions(path: str) -> Dict[str, List[Range]]:
    data = read_json(path, IntroOutroError, "the exclusions file")
    try:
        if not isinstance(data, dict):
            raise ValueError("expected an object {episode: [[start, stop], ...]}")
        return {str(k): [(int(a), int(b)) for a, b in v] for k, v in data.items()}
    except (ValueError, TypeError) as e:
        raise IntroOutroError(f"{path}: not an exclusions file ({e})") from None


def save_exclusions(path: str, exclusions: Dict[str, List[Range]], merge: bool = False, force: bool = False) -> dict:
    """Write ``exclusions`` to ``path`` (atomically); with ``merge``, joined with the ranges already there.

    An existing file is refused unless ``merge`` or ``force``. Returns what was written.
    """
    old = {}
    if os.path.exists(path):
        if merge:
            old = load_exclusions(path)
        elif not force:
            raise IntroOutroError(f"{path}: output already exists (use --merge to add to it or --force to replace it)")
    data = {name: [list(r) for r in merge_ranges(old.get(name, []) + list(exclusions.get(name, [])))]
            for name in sorted(set(old) | set(exclusions))}
    write_json(path, data)
    return data


def open_stores(folders: Sequence[str]) -> Dict[str, FrameStore]:
    """{folder name: FrameStore}; names must be unique since they key the exclusions file."""
    names = [os.path.basename(os.path.normpath(f)) for f in folders]
    if len(set(names)) != len(names):
        raise IntroOutroError("two stores share a folder name; exclusions are keyed by it")
    return {name: FrameStore(folder) for name, folder in zip(names, folders)}
