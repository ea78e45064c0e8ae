"""Running statistics (count, mean, std) of anything reported during training.

Code anywhere calls ``report('Loss/G/loss', tensor)``; every live
:class:`Collector` whose pattern matches the name accumulates it.  A collector's
``update()`` sums its moments across all processes and starts a new interval,
so the tick logger and the ADA heuristic can each keep their own cadence.
Moments stay on the tensor's device, so reporting never forces a GPU sync.
"""

import re
from typing import Dict, List

import numpy as np
import torch
import torch.distributed as dist

from .. import dnnlib

_collectors: List["Collector"] = []


def report(name: str, value) -> None:
    """Add every element of ``value`` (tensor, number or array) to the statistic ``name``."""
    listeners = [c for c in _collectors if c.matches(name)]
    if not listeners:
        return
    values = torch.as_tensor(value).detach().flatten().to(torch.float64)
    if values.numel() == 0:
        return
    moments = torch.stack([torch.full_like(values[0], values.numel()), values.sum(), values.square().sum()])
    for collector in listeners:
        collector.add(name, moments)


def report0(name: str, value) -> None:
    """``report`` on the first process only (for values every process knows, e.g. timings)."""
    if not _distributed() or dist.get_rank() == 0:
        report(name, value)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class Collector:
    """Statistics whose names match ``regex``, reported since the previous ``update()``, over all processes."""

    def __init__(self, regex: str = ".*", device: torch.device = torch.device("cpu")):
        self._pattern = re.compile(regex)
        self.device = device
        self._pending: Dict[str, torch.Tensor] = {}  # name -> float64 [count, sum, sum of squares]
        self._stats: Dict[str, dnnlib.EasyDict] = {}
        _collectors.append(self)

    def matches(self, name: str) -> bool:
        return self._pattern.fullmatch(name) is not None

    def add(self, name: str, moments: torch.Tensor) -> None:
        acc = self._pending.get(name)
        if acc is None:
            self._pending[name] = moments.clone()
        else:
            acc.add_(moments.to(acc.device))

    def close(self) -> None:
        """Stop listening (collectors are global listeners until closed)."""
        if self in _collectors:
            _collectors.remove(self)

    def update(self) -> None:
        names = sorted(self._pending)
        if _distributed():
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, names)
            names = sorted(set().union(*gathered))
        stacked = torch.zeros([len(names), 3], dtype=torch.float64, device=self.device)
        for idx, name in enumerate(names):
            if name in self._pending:
                stacked[idx] = self._pending[name].to(self.device)
        if _distributed() and names:
            dist.all_reduce(stacked)
        self._pending.clear()
        self._stats = {}
        for name, (count, total, total_sq) in zip(names, stacked.cpu().tolist()):
            mean = total / count if count else float("nan")
            var = max(total_sq / count - mean**2, 0.0) if count else float("nan")
            self._stats[name] = dnnlib.EasyDict(num=count, mean=mean, std=float(np.sqrt(var)))

    def mean(self, name: str) -> float:
        return self._stats[name].mean if name in self._stats else float("nan")

    def as_dict(self) -> Dict[str, dict]:
        return {name: dict(stat) for name, stat in self._stats.items()}
