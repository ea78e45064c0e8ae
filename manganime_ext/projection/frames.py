"""The frames of a clip to project: every k-th frame of a time range, at the network's size, with the
frames where a new shot starts (where warm starts must give way to cold ones).

Cuts are found by our detector (``analysis.cuts``, adaptive) on rho of *every* decoded frame of the
range, not only of the kept ones, so a cut between two kept frames is still seen at full frame rate.
"""

import itertools
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from manganime_ext.analysis import cuts
from manganime_ext.analysis.similarity import RhoStream
from manganime_ext.io.video import VideoError, read_video

from .errors import ProjectionError


@dataclass
class Clip:
    """Frames to project and where they come from."""

    frames: np.ndarray  # uint8 [N, H, W, 3], the kept frames at the network's resolution
    indices: np.ndarray  # int64 [N], their frame numbers in the source video
    fps: float  # the source's frame rate
    shot_starts: np.ndarray  # bool [N]: a cut lies between the previous kept frame and this one (first: True)
    source_size: Optional[List[int]]  # [width, height] of the source video
    end_frame: int  # one past the last decoded frame: the clip's end, in source frame numbers

    @property
    def times(self) -> np.ndarray:
        """Seconds from the start of the video of each kept frame."""
        return self.indices / self.fps


def kept_shot_starts(num_decoded: int, every: int, cut_frames: List[int]) -> np.ndarray:
    """For kept frames 0, every, 2 every, ... of ``num_decoded``: True where a cut (a frame starting a new
    shot, counted in decoded frames) falls after the previous kept frame and at or before this one."""
    kept = np.arange(0, num_decoded, every)
    starts = np.zeros(len(kept), bool)
    if len(kept):
        starts[0] = True
    for cut in cut_frames:
        position = int(np.searchsorted(kept, cut))  # first kept frame at or after the cut
        if 0 < position < len(kept):
            starts[position] = True
    return starts


def read_clip(path: str, resolution: int, every: int = 1, start: Optional[float] = None,
              end: Optional[float] = None, transform: str = "squash") -> Clip:
    """Decode ``[start, end)`` seconds of ``path`` at ``resolution`` and keep every ``every``-th frame."""
    if start is not None and end is not None and end <= start:
        raise ProjectionError(f"--end {end:g} must be after --start {start:g}")
    duration = None if end is None else end - (start or 0.0)
    try:
        meta, stream = read_video(path, resolution, transform=transform, start=start, duration=duration)
        kept, rho, decoded = [], RhoStream(), 0
        for frame in stream:
            rho.push(frame)
            if decoded % every == 0:
                kept.append(frame)
            decoded += 1
    except VideoError as err:
        raise ProjectionError(str(err)) from None
    if not kept:
        where = f" between {start or 0:g} s and {end:g} s" if end is not None else f" after {start:g} s" if start else ""
        raise ProjectionError(f"{path}: no frames{where}")
    fps = float(meta.get("fps") or 24.0)
    first = int(round((start or 0.0) * fps))
    cut_frames = cuts.detect(np.asarray(rho.values)) if len(rho.values) else []
    return Clip(frames=np.stack(kept), indices=first + np.arange(0, decoded, every, dtype=np.int64), fps=fps,
                shot_starts=kept_shot_starts(decoded, every, cut_frames), source_size=meta.get("source_size"),
                end_frame=first + decoded)


def frames_at(path: str, resolution: int, indices: List[int], transform: str = "squash") -> np.ndarray:
    """The source frames numbered ``indices`` (sorted or not), uint8 ``[len, H, W, 3]``; one decoding pass."""
    wanted = sorted(set(int(i) for i in indices))
    try:
        _, stream = read_video(path, resolution, transform=transform)
        found, decoded = {}, 0
        for frame in itertools.islice(stream, wanted[-1] + 1):
            if decoded in wanted:
                found[decoded] = frame
            decoded += 1
        stream.close()
    except VideoError as err:
        raise ProjectionError(str(err)) from None
    if len(found) < len(wanted):
        raise ProjectionError(f"{path}: has no frame {wanted[-1]} (it has {decoded} frames)")
    return np.stack([found[int(i)] for i in indices])


def span_positions(frame_numbers: np.ndarray, fps: float, start_offset: float, end_offset: float,
                   end_frame: Optional[int] = None, where: str = "the clip") -> Tuple[int, int]:
    """Positions (into ``frame_numbers``) of the study's two keyframes: the first kept frame at least
    ``start_offset`` seconds after the clip's start, the last one at least ``end_offset`` seconds before
    its end (``end_frame``, one past its last frame; default: one past the last kept frame)."""
    times = np.asarray(frame_numbers, np.float64) / fps
    begin = times[0]
    finish = (end_frame if end_frame is not None else frame_numbers[-1] + 1) / fps
    if start_offset < 0 or end_offset < 0:
        raise ProjectionError("--start-offset and --end-offset must not be negative")
    first = int(np.searchsorted(times, begin + start_offset - 1e-9))
    last = int(np.searchsorted(times, finish - end_offset + 1e-9, side="right")) - 1
    if first >= len(times) or last < 0 or last <= first:
        raise ProjectionError(f"{where} lasts {finish - begin:.2f} s: too short for keyframes {start_offset:g} s "
                              f"after its start and {end_offset:g} s before its end (--start-offset/--end-offset)")
    return first, last
