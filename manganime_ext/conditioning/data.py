"""Next-frame training and evaluation items: a pair (F_n, F_{n+s}) with its history and its page window.

The paired export stores rows ``[episode, n, n + s, page]``. A predictor may want more than F_n:
the frame before it, F_{n-s} (motion, and the linear-extrapolation baseline), and the pages around
the frame's page (the authors' window p-1, p, p+1). Both come from the same zip: F_{n-s} is there
whenever the pair (n - s, n) is (otherwise F_n stands in, i.e. "no motion seen yet"), and a page's
neighbours are the volume's pages p-1 / p+1 when the export holds them (otherwise the page itself).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from manganime_ext.data.paired_dataset import PairedFrameDataset

HISTORY = 2  # frames per item: F_{n-s}, F_n
PAGE_WINDOW = 3  # pages per item: p-1, p, p+1


class NextFrameDataset(torch.utils.data.Dataset):
    """Items are dicts of uint8 tensors: ``frames`` [2, 3, H, W] (F_{n-s}, F_n), ``pages`` [3, 1, S, S]
    (p-1, p, p+1), ``target`` [3, H, W] (F_{n+s}), plus ``row`` (the pair's index in the split) and
    ``has_history`` (whether F_{n-s} is real or F_n standing in)."""

    def __init__(
        self,
        path: str,  # paired export (.zip or extracted folder) written by export-conditional
        split: str = "train",  # 'train', 'val' (held-out episodes) or 'all'
        max_size: Optional[int] = None,  # keep this many pairs, evenly spread over the split (quick evaluations)
    ):
        self.paired = PairedFrameDataset(path, split=split)
        self.path, self.split = self.paired.path, split
        self.stride = self.paired.stride
        self.episodes = self.paired.episodes
        self.split_rows = self.paired.pairs  # every pair of the split (rollout chains follow these)
        self.rows = self.split_rows  # the pairs items are drawn from
        if max_size is not None and len(self.rows) > max_size:
            self.rows = self.rows[np.linspace(0, len(self.rows) - 1, max_size).round().astype(np.int64)]
        every = PairedFrameDataset(path, split="all").pairs
        self._stored = {(int(e), int(f)) for e, n, m, _ in every for f in (n, m)}
        self.page_files: List[Tuple[str, int]] = [(str(v), int(p)) for v, p in self.paired.index["pages"]]
        self._page_id = {key: i for i, key in enumerate(self.page_files)}
        self.cuts: Optional[Dict[str, List[int]]] = self.paired.index.get("cuts")
        image = self.paired.frame(int(self.rows[0][0]), int(self.rows[0][1])) if len(self.rows) else None
        self.resolution = None if image is None else int(image.shape[-1])

    def __len__(self) -> int:
        return len(self.rows)

    def has_frame(self, episode: int, n: int) -> bool:
        return (episode, n) in self._stored

    def frame(self, episode: int, n: int) -> torch.Tensor:
        return self.paired.frame(episode, n)

    def page_window(self, page: int) -> List[int]:
        """Page-file indices of p-1, p, p+1 in the same volume (p itself where a neighbour is not exported)."""
        volume, number = self.page_files[page]
        return [self._page_id.get((volume, number + d), page) for d in (-1, 0, 1)]

    def pages(self, page: int) -> torch.Tensor:
        return torch.stack([self.paired.page(p) for p in self.page_window(page)])

    def crosses_cut(self, pair: Sequence[int]) -> Optional[bool]:
        """Whether a new shot starts in (n, n + s] of ``pair`` = [episode, n, m, page]; None when the export
        knows no cuts for the episode."""
        e, n, m = (int(v) for v in pair[:3])
        known = None if self.cuts is None else self.cuts.get(self.episodes[e])
        return None if known is None else any(n < c <= m for c in known)

    def item(self, pair: Sequence[int]) -> Dict[str, torch.Tensor]:
        """The item of ``pair`` = [episode, n, m, page] (any pair of the export, not only this split's)."""
        e, n, m, page = (int(v) for v in pair)
        current = self.frame(e, n)
        has_history = self.has_frame(e, n - self.stride)
        before = self.frame(e, n - self.stride) if has_history else current
        return dict(frames=torch.stack([before, current]), pages=self.pages(page), target=self.frame(e, m),
                    has_history=torch.tensor(has_history))

    def __getitem__(self, row: int) -> Dict[str, torch.Tensor]:
        return self.item(self.rows[row])

    def chains(self, length: int) -> List[List[np.ndarray]]:
        """Every run of ``length`` consecutive pairs of the split (each pair's n is the previous one's m)
        inside one shot: the rollouts' starts and their ground truth, as lists of pairs."""
        by_start = {(int(e), int(n)): pair for pair in self.split_rows for e, n in [pair[:2]]}
        runs: List[List[np.ndarray]] = []
        for pair in self.split_rows:
            e, n = int(pair[0]), int(pair[1])
            run = [pair]
            while len(run) < length and (e, n + len(run) * self.stride) in by_start:
                run.append(by_start[(e, n + len(run) * self.stride)])
            if len(run) == length and not any(self.crosses_cut(p) for p in run):
                runs.append(run)
        return runs


def to_model(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] on ``device``."""
    return images.to(device=device, dtype=torch.float32) / 127.5 - 1


def to_255(images: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] -> float 0-255, clipped, as an 8-bit frame would hold it (before rounding)."""
    return ((images.float() + 1) * 127.5).clamp(0, 255)


def wrong_pages(dataset: NextFrameDataset, rows: Sequence[int]) -> List[int]:
    """For the page ablation: for each row a page of the same episode that is not its own (the page
    half the episode's page span away, cyclically), or its own page when the episode has only one."""
    pages_by_episode: Dict[int, set] = {}
    for e, _, _, p in dataset.rows:
        pages_by_episode.setdefault(int(e), set()).add(int(p))
    out = []
    for r in rows:
        e, _, _, p = (int(v) for v in dataset.rows[r])
        own = sorted(pages_by_episode[e])
        out.append(own[(own.index(p) + len(own) // 2) % len(own)])
    return out
