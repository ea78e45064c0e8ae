"""Per-episode frame store: every kept frame of an episode, with O(1) random access, plus rho.

A store is a folder of three files, so the tagger can show any frame of a 20-minute episode at once:

- ``frames.u8``: raw uint8, N x H x W x 3, frame after frame (read back with numpy.memmap);
- ``header.json``: shape, source file, stride, transform, trim and fps, so the store explains itself;
- ``rho.npy``: float64, N - 1 values, rho[i] = similarity of stored frames i and i + 1 (the study's
  formula; ``analysis.decode`` computes it while it writes the frames, so a series is decoded once).

This module knows the layout only: ``FrameStoreWriter`` appends frames and seals the store with its
rho, ``FrameStore`` reads one back.
"""

import os
from typing import Sequence

import numpy as np

from manganime_ext.io.json_files import read_json, write_json
from manganime_ext.io.video import VideoError

FRAMES, HEADER, RHO = "frames.u8", "header.json", "rho.npy"


class FrameStoreWriter:
    """Write side of a store, a context manager: ``append(frame)`` for each frame, then ``close(rho)``.

    Frames go straight to disk (unbuffered: each is one large write), so memory stays at one frame
    whatever the episode's length. The header is written last, so a store without one was never
    finished (and readers refuse it).
    """

    def __init__(self, folder: str, header: dict):
        os.makedirs(folder)
        self.folder, self.header = folder, dict(header)
        self.count, self.shape = 0, None
        self._file = open(os.path.join(folder, FRAMES), "wb", buffering=0)

    def append(self, frame: np.ndarray) -> None:
        """Add one HWC uint8 frame (every frame of a store has the first one's shape)."""
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            raise ValueError(f"{self.folder}: frame {self.count} has shape {frame.shape}, the store holds {self.shape}")
        data = memoryview(np.ascontiguousarray(frame, np.uint8)).cast("B")
        while data:  # an unbuffered write may take less than asked
            data = data[self._file.write(data):]
        self.count += 1

    def close(self, rho: Sequence[float]) -> int:
        """Write ``rho`` (count - 1 values) and the header; return the number of frames stored."""
        self._file.close()
        if len(rho) != max(self.count - 1, 0):
            raise ValueError(f"{self.folder}: {len(rho)} rho values for {self.count} frames")
        np.save(os.path.join(self.folder, RHO), np.asarray(rho, np.float64))
        height, width = (self.shape[0], self.shape[1]) if self.shape else (0, 0)
        write_json(os.path.join(self.folder, HEADER),
                   dict(self.header, frames=self.count, height=height, width=width, channels=3, dtype="uint8"))
        return self.count

    def __enter__(self) -> "FrameStoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()  # after an error the store stays unfinished (no header); the caller removes it


class FrameStore:
    """Read side of a store: ``len(store)``, ``store[i]`` (HWC uint8 view), ``store.rho``, ``store.header``."""

    def __init__(self, folder: str):
        try:
            self.header = read_json(os.path.join(folder, HEADER))
            n, h, w = self.header["frames"], self.header["height"], self.header["width"]
            self.frames = np.memmap(os.path.join(folder, FRAMES), np.uint8, "r", shape=(n, h, w, 3))
            self.rho = np.load(os.path.join(folder, RHO))
        except (OSError, KeyError, TypeError, ValueError) as e:
            raise VideoError(f"{folder}: not a readable frame store ({e})") from None

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, index):
        return self.frames[index]

    @property
    def stride(self) -> int:
        """Stored frame k is source frame ``source_start + k * stride``."""
        return int(self.header.get("stride") or 1)

    @property
    def source_start(self) -> int:
        """The source frame of stored frame 0 (non-zero when ``frames --start`` trimmed the video)."""
        return int(round((self.header.get("start") or 0) * (self.header.get("fps") or 0)))
