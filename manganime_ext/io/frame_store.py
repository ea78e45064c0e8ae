"""Per-episode frame store: every kept frame of an episode, with O(1) random access, plus rho.

A store is a folder of three files, so the tagger can show any frame of a 20-minute episode at once:

- ``frames.u8``: raw uint8, N x H x W x 3, frame after frame (read back with numpy.memmap);
- ``header.json``: shape, source file, stride, transform, trim and fps, so the store explains itself;
- ``rho.npy``: float64, N - 1 values, rho[i] = similarity of stored frames i and i + 1 (the study's
  formula, computed while writing so a series is decoded once).
"""

import json
import os
from typing import Callable, Iterable, Optional

import numpy as np

from manganime_ext.analysis.similarity import cosine_from_dots, dot, frame_vector
from manganime_ext.io.video import VideoError, read_video

FRAMES, HEADER, RHO = "frames.u8", "header.json", "rho.npy"


def write_frames(folder: str, frames: Iterable[np.ndarray], header: dict,
                 progress: Optional[Callable[[int], None]] = None) -> int:
    """Stream ``frames`` (HWC uint8, all one shape) into a new store at ``folder``; return the count.

    Memory is two frames whatever the length: frames go straight to disk, rho is one float per pair.
    (Writing on a second thread gained 5 % on a 256 px source, where decoding is nearly free, and lost 3 %
    on a 1024 px one, where ffmpeg already keeps both cores busy; real episodes are the second kind.)
    """
    os.makedirs(folder)
    rho, prev, spare, prev_norm, shape = [], None, None, 0.0, None
    with open(os.path.join(folder, FRAMES), "wb", buffering=0) as f:
        for frame in frames:
            if shape is None:
                shape = frame.shape
            _write_all(f, memoryview(np.ascontiguousarray(frame, np.uint8)).cast("B"))
            vec = frame_vector(frame, spare)
            norm = np.sqrt(dot(vec, vec))
            if prev is not None:
                rho.append(cosine_from_dots(dot(prev, vec), prev_norm, norm))
            prev, prev_norm, spare = vec, norm, prev
            if progress is not None:
                progress(1)
    count = len(rho) + 1 if prev is not None else 0
    np.save(os.path.join(folder, RHO), np.asarray(rho, np.float64))
    with open(os.path.join(folder, HEADER), "w") as f:
        json.dump(dict(header, frames=count, height=shape[0] if shape else 0, width=shape[1] if shape else 0,
                       channels=3, dtype="uint8"), f, indent=1)
    return count


def _write_all(f, data: memoryview) -> None:
    """An unbuffered write may take less than asked: loop until all of ``data`` is written."""
    while data:
        data = data[f.write(data):]


def write_episode(folder: str, video: str, resolution: int, transform: str = "squash", stride: int = 1,
                  start: Optional[float] = None, duration: Optional[float] = None,
                  progress_factory: Optional[Callable[[str, int], Callable[[int], None]]] = None) -> int:
    """Decode ``video`` into a store at ``folder`` (which must not exist); return the frames stored.

    ``progress_factory(name, expected_frames)`` returns the per-frame progress callback.
    Raises VideoError for unreadable, corrupt or empty videos.
    """
    meta, frames = read_video(video, resolution, transform, stride, start, duration)
    progress = progress_factory(os.path.basename(video), meta["expected_frames"]) if progress_factory else None
    header = dict(source=os.path.abspath(video), stride=stride, transform=transform, start=start, duration=duration,
                  fps=meta.get("fps"), source_size=list(meta.get("source_size") or []))
    count = write_frames(folder, frames, header, progress)
    if count == 0:
        raise VideoError(f"{video}: no frames decoded (empty video, or --start/--duration outside it)")
    return count


class FrameStore:
    """Read side of a store: ``len(store)``, ``store[i]`` (HWC uint8 view), ``store.rho``, ``store.header``."""

    def __init__(self, folder: str):
        try:
            with open(os.path.join(folder, HEADER)) as f:
                self.header = json.load(f)
            n, h, w = self.header["frames"], self.header["height"], self.header["width"]
            self.frames = np.memmap(os.path.join(folder, FRAMES), np.uint8, "r", shape=(n, h, w, 3))
            self.rho = np.load(os.path.join(folder, RHO))
        except (OSError, KeyError, ValueError) as e:
            raise VideoError(f"{folder}: not a readable frame store ({e})") from None

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, index):
        return self.frames[index]
