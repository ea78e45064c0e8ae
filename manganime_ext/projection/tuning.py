"""Pivotal tuning (Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", 2021).

A latent found by projection is only as good as what the generator can draw: frames unlike anything
frequent in the training set come out vague. PTI keeps the projected latents fixed (the *pivots*) and
fine-tunes the generator's synthesis weights a little so that G(pivot) reproduces each frame: distance
(LPIPS or our fallback) plus an L2 term on pixels, with Adam. For a clip all frames' pivots are tuned
together (minibatches of frames), so one tuned network serves the whole clip.

PTI tunes a large face network on one image with rate 3e-4 and L2 weight 1. A clip asks more of a
network (dozens of frames at once) and ours are small: on the synthetic series (benchmarks/
bench_projector.py, 48 frames, 300 steps) those settings gained +1.0 dB over the W+ projection,
rate 3e-3 with L2 weight 10 gained +2.3 dB, so those are our defaults.

The mapping network is left alone (the pivots are already in W), and images use the network's constant
noise, so the tuned snapshot plus ``ws.npz`` reproduce every tuned frame, e.g. through
``python -m stylegan2_ada.generate --network tuned.pkl --projected-w ws.npz``.
"""

import copy
from typing import Any, Dict

import numpy as np
import torch
from tqdm import tqdm

from stylegan2_ada import legacy
from stylegan2_ada.projector import ImageDistance, synthesize


def pivotal_tuning(G: torch.nn.Module, ws: np.ndarray, frames: np.ndarray, distance: ImageDistance, steps: int,
                   device: torch.device, batch: int = 8, learning_rate: float = 3e-3, l2_weight: float = 10.0,
                   seed: int = 0, progress: bool = True) -> torch.nn.Module:
    """A copy of ``G`` whose synthesis network is tuned for ``steps`` Adam steps so that G(ws[i]) ~ frames[i].

    ``ws``: float ``[N, num_ws, w_dim]``; ``frames``: uint8 ``[N, H, W, C]``. Minibatches of ``batch``
    frames are drawn in a seeded random order, every frame once per pass.
    """
    tuned = copy.deepcopy(G).to(device).eval().requires_grad_(False)
    tuned.synthesis.requires_grad_(True)
    optimizer = torch.optim.Adam(tuned.synthesis.parameters(), lr=learning_rate)
    pivots = torch.from_numpy(np.ascontiguousarray(ws)).to(device)
    targets = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().to(device)
    with torch.no_grad():
        prepared = torch.cat([distance.prepare(part) for part in targets.split(32)])
    order = np.random.RandomState(seed)
    queue: list = []
    for _ in tqdm(range(steps), desc="tune", unit="step", disable=not progress, leave=False):
        if len(queue) < min(batch, len(frames)):
            queue += order.permutation(len(frames)).tolist()
        picked = torch.tensor(queue[:batch], device=device)
        del queue[:batch]
        images = synthesize(tuned, pivots[picked])
        pixels = (images + 1) * 127.5
        l2 = (images - (targets[picked] / 127.5 - 1)).square().flatten(1).mean(dim=1)
        loss = (distance.distance(pixels, prepared[picked]) + l2_weight * l2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return tuned.requires_grad_(False).eval()


def tuned_snapshot(source: Dict[str, Any], tuned: torch.nn.Module, info: Dict[str, Any]) -> Dict[str, Any]:
    """The snapshot to save: the source's networks with G and G_ema replaced by the tuned generator."""
    snapshot = {key: source.get(key) for key in legacy.MODULE_KEYS}
    snapshot.update(G=tuned, G_ema=tuned, training_set_kwargs=source.get("training_set_kwargs"),
                    pivotal_tuning=info)
    return snapshot
