"""Loader for the conditional dataset that ``export_conditional`` writes: (F_n, page M(n), F_{n+stride}).

Reads the zip (or the folder it was extracted to). Like ``training.dataset.ImageFolderDataset``, the
zip handle is opened lazily and per process: DataLoader workers are forked, and processes sharing
one OS file offset would corrupt each other's reads, so a handle is never pickled nor inherited.
"""

import json
import os
import zipfile
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

import numpy as np
import PIL.Image
import torch

from manganime_ext.data.export import COLUMNS, FORMAT, INDEX, frame_member, page_member

SPLITS = ("train", "val", "all")


class PairedDatasetError(ValueError):
    """A path or split that is not a paired dataset; one line naming it."""


class PairedFrameDataset(torch.utils.data.Dataset):
    """Items ``(frame_n, page, frame_m)``: uint8 tensors, frames 3xHxW, page 1xPHxPW (greyscale)."""

    def __init__(
        self,
        path: str,              # .zip written by export_conditional, or the folder it was extracted to.
        split: str = "train",   # 'train', 'val' (the --val-episodes) or 'all'.
    ) -> None:
        self.path = os.fspath(path)
        self._zipfile: Optional[zipfile.ZipFile] = None
        self._zip_pid: Optional[int] = None
        if split not in SPLITS:
            raise PairedDatasetError(f"split: {split!r} is not one of {SPLITS}")
        if not os.path.exists(self.path):
            raise PairedDatasetError(f"{self.path}: no such file or folder")
        self._is_dir = os.path.isdir(self.path)
        try:
            with self._open(INDEX) as f:
                index = json.loads(f.read())
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            raise PairedDatasetError(f"{self.path}: not a paired dataset ({e})") from None
        if index.get("format") != FORMAT or index.get("columns") != list(COLUMNS):
            raise PairedDatasetError(f"{self.path}: {INDEX} is not {FORMAT}")
        self.index: Dict[str, Any] = index  # the whole index.json (pages, cuts, flags), for richer readers
        self.episodes: List[str] = index["episodes"]
        self.val_episodes: List[str] = index["val_episodes"]
        self.stride: int = index["stride"]
        rows = index["train"] + index["val"] if split == "all" else index[split]
        self.pairs = np.asarray(rows, np.int64).reshape(-1, len(COLUMNS))  # rows: episode, n, m, page
        self.close()  # the constructing process may differ from the reading ones

    def _open(self, member: str) -> BinaryIO:
        if self._is_dir:
            return open(os.path.join(self.path, member), "rb")
        if self._zipfile is None or self._zip_pid != os.getpid():
            self._zipfile = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zipfile.open(member)

    def _image(self, member: str, mode: str) -> torch.Tensor:
        with self._open(member) as f, PIL.Image.open(f) as img:
            pixels = np.array(img.convert(mode))  # writable: torch wants to own it
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def close(self) -> None:
        if self._zipfile is not None:
            self._zipfile.close()
        self._zipfile, self._zip_pid = None, None

    def __getstate__(self) -> Dict[str, Any]:
        return dict(self.__dict__, _zipfile=None, _zip_pid=None)

    def __len__(self) -> int:
        return len(self.pairs)

    def frame(self, episode: int, n: int) -> torch.Tensor:
        """Stored frame ``n`` of episode number ``episode``: uint8 3xHxW."""
        return self._image(frame_member(self.episodes[episode], n), "RGB")

    def page(self, page: int) -> torch.Tensor:
        """Page file ``page`` (an index into ``index['pages']``): uint8 1xSxS."""
        return self._image(page_member(page), "L")

    def __getitem__(self, idx: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e, n, m, page = (int(v) for v in self.pairs[idx])
        return self.frame(e, n), self.page(page), self.frame(e, m)
