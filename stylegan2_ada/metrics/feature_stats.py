"""Streaming statistics of feature vectors, the common currency of every metric.

Mean and covariance are kept as float64 running sums (``sum x`` and ``sum x xᵀ``), so
memory is O(dim²) however many images are streamed and the covariance of 174k frames
costs the same as that of 1k.  Metrics that need the individual vectors (KID, PR, IS)
ask for ``capture_all``; rows are then stored in a float32 array preallocated to
``max_items``, which is the cap that bounds their memory.
"""

import os
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..dnnlib.util import atomic_write


class FeatureStats:
    """Accumulates ``[N, D]`` feature batches; ``append`` ignores rows beyond ``max_items``."""

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False, max_items: Optional[int] = None):
        if capture_all and max_items is None:
            raise ValueError("capture_all needs max_items: it is the cap that bounds memory")
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features: Optional[int] = None
        self._all: Optional[np.ndarray] = None
        self._sum: Optional[np.ndarray] = None
        self._sum_outer: Optional[np.ndarray] = None

    def set_num_features(self, num_features: int) -> None:
        """Fix the feature dimension (first batch) and allocate the accumulators."""
        known = self.num_features
        if known == num_features:
            return
        if known is not None:
            raise ValueError(f"feature dimension changed from {known} to {num_features}")
        self.num_features = num_features
        if self.capture_all:
            self._all = np.empty([self.max_items, num_features], dtype=np.float32)
        if self.capture_mean_cov:  # running sums of x and of x xᵀ
            self._sum = np.zeros([num_features], dtype=np.float64)
            self._sum_outer = np.zeros([num_features, num_features], dtype=np.float64)

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x: np.ndarray) -> None:
        """Add a ``[N, D]`` batch (truncated to the remaining capacity)."""
        rows = np.asarray(x, np.float32)
        if rows.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {list(rows.shape)}")
        if self.max_items is not None:
            rows = rows[: max(self.max_items - self.num_items, 0)]
        self.set_num_features(rows.shape[1])
        start, stop = self.num_items, self.num_items + len(rows)
        if self._all is not None:
            self._all[start:stop] = rows
        if self._sum is not None and self._sum_outer is not None and len(rows):
            wide = rows.astype(np.float64)  # sums of 174k squares need float64
            self._sum += wide.sum(axis=0)
            self._sum_outer += wide.T @ wide
        self.num_items = stop

    def append_torch(self, x: torch.Tensor) -> None:
        self.append(x.detach().to(torch.float32).cpu().numpy())

    def get_all(self) -> np.ndarray:
        """All captured rows, ``[num_items, D]`` float32."""
        if not self.capture_all:
            raise ValueError("these stats were collected without capture_all")
        if self._all is None:
            return np.zeros([0, 0], dtype=np.float32)
        return self._all[: self.num_items]

    def get_all_torch(self) -> torch.Tensor:
        return torch.as_tensor(self.get_all())

    def get_mean_cov(self) -> Tuple[np.ndarray, np.ndarray]:
        """Mean and (biased, 1/N) covariance in float64, as the published FID computes them."""
        if not self.capture_mean_cov:
            raise ValueError("these stats were collected without capture_mean_cov")
        if self.num_items == 0:
            raise ValueError("no features were collected")
        mean = self._sum / self.num_items
        cov = self._sum_outer / self.num_items - np.outer(mean, mean)
        return mean, cov

    # -- plain-array form: for merging ranks and for the on-disk cache ---------------------------

    def state(self) -> Dict[str, np.ndarray]:
        """Everything needed to rebuild these stats, as numpy arrays (missing parts are empty)."""
        empty = np.zeros([0], dtype=np.float64)
        return {
            "capture_all": np.array(self.capture_all),
            "capture_mean_cov": np.array(self.capture_mean_cov),
            "num_items": np.array(self.num_items, dtype=np.int64),
            "num_features": np.array(-1 if self.num_features is None else self.num_features, dtype=np.int64),
            "all": self.get_all() if self.capture_all else empty,
            "sum": self._sum if self._sum is not None else empty,
            "sum_outer": self._sum_outer if self._sum_outer is not None else empty,
        }

    @classmethod
    def from_state(cls, state: Dict[str, np.ndarray]) -> "FeatureStats":
        num_items = int(state["num_items"])
        stats = cls(capture_all=bool(state["capture_all"]), capture_mean_cov=bool(state["capture_mean_cov"]),
                    max_items=num_items)
        stats.num_items = num_items
        if int(state["num_features"]) >= 0:
            stats.num_features = int(state["num_features"])
            if stats.capture_all:
                stats._all = np.asarray(state["all"], dtype=np.float32).reshape(num_items, stats.num_features)
            if stats.capture_mean_cov:
                stats._sum = np.asarray(state["sum"], dtype=np.float64)
                stats._sum_outer = np.asarray(state["sum_outer"], dtype=np.float64)
        return stats

    def save(self, path: str) -> None:
        """Write an ``.npz`` atomically, so concurrent runs never read a half-written cache file."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_write(path) as f:
            np.savez(f, **self.state())

    @classmethod
    def load(cls, path: str) -> "FeatureStats":
        with np.load(path, allow_pickle=False) as data:
            return cls.from_state({k: data[k] for k in data.files})
