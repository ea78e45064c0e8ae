"""Paths through latent space and the videos drawn along them.

- ``linear``: w(t) = w_0 + t (w_1 - w_0), t in [0, 1], piece by piece through the keyframes (the study).
- ``slerp``: along great circles between latents z (the Gaussian's mass lies near a sphere, so a straight
  line between two z passes through unlikely, washed-out latents), then mapped to W frame by frame.
- ``cubic``: a cubic spline through all keyframes (C2: no kink where two transitions meet); closed
  (periodic) when the video loops, like StyleGAN3's video tool.

Paths are plain arrays (``[T, ...]``), so the maths is tested without a network; ``render_path``
draws a path with a generator, ``tile_grid`` puts several side by side, and ``smoothness`` says how far apart adjacent
frames are (mean and max), the figure of merit of a latent walk.
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
import scipy.interpolate
import torch

from stylegan2_ada.projector import ImageDistance, synthesize, to_uint8

KINDS = ("linear", "slerp", "cubic")


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """a + t (b - a) for each t: ``[len(t), *a.shape]``."""
    t = np.asarray(t, np.float64).reshape(-1, *([1] * np.ndim(a)))
    return (a + t * (b - a)).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between vectors ``a`` and ``b`` (norms interpolated linearly): ``[len(t), dim]``.

    The direction turns at constant angular speed from a's to b's; the length moves linearly between
    theirs. Parallel vectors fall back to the straight line.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    unit_a, unit_b = a / max(norm_a, 1e-12), b / max(norm_b, 1e-12)
    angle = np.arccos(np.clip(np.dot(unit_a, unit_b), -1.0, 1.0))
    if angle < 1e-6:
        return lerp(a, b, t[:, 0])
    direction = (np.sin((1 - t) * angle) * unit_a + np.sin(t * angle) * unit_b) / np.sin(angle)
    return (direction * (norm_a + t * (norm_b - norm_a))).astype(np.float32)


def transition_times(count: int, frames_per_transition: int, loop: bool) -> np.ndarray:
    """Positions along the keyframes (0 = first keyframe, 1 = second, ...) of every frame of the video.

    Each transition gets ``frames_per_transition`` frames starting at its first keyframe; an open path
    ends on its last keyframe, a loop ends one frame before coming back to the first.
    """
    transitions = count if loop else count - 1
    frames = transitions * frames_per_transition + (0 if loop else 1)
    return np.arange(frames) / frames_per_transition


def latent_path(keys: np.ndarray, kind: str, frames_per_transition: int, loop: bool = False) -> np.ndarray:
    """The latent of every frame of a walk through ``keys`` (``[K, ...]``, K >= 2): ``[T, ...]``."""
    keys = np.asarray(keys, np.float64)
    if len(keys) < 2:
        raise ValueError("a path needs at least two keyframes")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    times = transition_times(len(keys), frames_per_transition, loop)
    closed = np.concatenate([keys, keys[:1]]) if loop else keys
    if kind == "cubic":
        if len(closed) < 3:  # two points: the only spline is the line
            kind = "linear"
        else:
            knots = np.arange(len(closed), dtype=np.float64)
            spline = scipy.interpolate.CubicSpline(knots, closed, axis=0, bc_type="periodic" if loop else "natural")
            return spline(times).astype(np.float32)
    segment = np.minimum(np.floor(times).astype(int), len(closed) - 2)
    local = times - segment
    step = lerp if kind == "linear" else slerp
    out = [step(closed[s], closed[s + 1], local[segment == s]) for s in np.unique(segment)]
    return np.concatenate(out).astype(np.float32)


def seed_latents(seeds: Sequence[int], z_dim: int) -> np.ndarray:
    """z of each seed as generate.py draws it (``RandomState(seed).randn(z_dim)``): ``[len, z_dim]``."""
    return np.stack([np.random.RandomState(seed).randn(z_dim) for seed in seeds]).astype(np.float32)


@torch.no_grad()
def z_to_ws(G: torch.nn.Module, z: np.ndarray, device: torch.device, truncation_psi: float = 1.0,
            batch: int = 64) -> np.ndarray:
    """Map latents z ``[N, z_dim]`` to ws ``[N, num_ws, w_dim]`` (unconditional; truncation towards w_avg)."""
    out = []
    for part in torch.from_numpy(np.ascontiguousarray(z)).float().split(batch):
        label = torch.zeros([len(part), G.c_dim], device=device)
        out.append(G.mapping(part.to(device), label, truncation_psi=truncation_psi).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def render_path(G: torch.nn.Module, path: np.ndarray, device: torch.device, batch: int = 16) -> np.ndarray:
    """G's frames along a ws path ``[T, num_ws, w_dim]`` (constant noise), uint8 RGB ``[T, H, W, 3]``."""
    G = G.to(device).eval()
    chunks = [to_uint8(synthesize(G, torch.from_numpy(np.ascontiguousarray(part)).to(device)))
              for part in np.array_split(path, max(1, -(-len(path) // batch)))]
    frames = np.concatenate(chunks)
    return np.repeat(frames, 3, axis=3) if frames.shape[3] == 1 else frames[..., :3]


def tile_grid(videos: Sequence[np.ndarray], grid: Sequence[int] = (1, 1), gap: int = 2) -> List[np.ndarray]:
    """Several equally long videos (``[T, H, W, 3]`` each) side by side in a ``(columns, rows)`` grid, row by row."""
    columns, rows = grid
    if len(videos) != columns * rows:
        raise ValueError(f"a {columns}x{rows} grid needs {columns * rows} videos, got {len(videos)}")
    if len(videos) == 1:
        return list(videos[0])
    height, width = videos[0].shape[1:3]
    out = []
    for t in range(len(videos[0])):
        canvas = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3), 255, np.uint8)
        for k, frames in enumerate(videos):
            top, left = (k // columns) * (height + gap), (k % columns) * (width + gap)
            canvas[top:top + height, left:left + width] = frames[t]
        out.append(canvas)
    return out


@torch.no_grad()
def smoothness(frames: Sequence[np.ndarray], distance: Optional[ImageDistance], device: torch.device,
               loop: bool = False, batch: int = 16) -> Dict[str, float]:
    """How far apart adjacent frames are: mean and max of the distance (when given) and of the mean
    absolute pixel difference (0-255). A loop also counts the step from the last frame to the first."""
    stack = np.stack(frames)
    following = np.roll(stack, -1, axis=0) if loop else stack[1:]
    current = stack if loop else stack[:-1]
    pixel = np.abs(current.astype(np.float64) - following).reshape(len(current), -1).mean(axis=1)
    report = dict(pairs=int(len(current)), pixel_mean=float(pixel.mean()), pixel_max=float(pixel.max()))
    if distance is not None:
        values = []
        for start in range(0, len(current), batch):
            a = torch.from_numpy(current[start:start + batch]).permute(0, 3, 1, 2).float().to(device)
            b = torch.from_numpy(np.ascontiguousarray(following[start:start + batch])).permute(0, 3, 1, 2).float().to(device)
            values += distance(a, b).tolist()
        report.update(distance=distance.name, distance_mean=float(np.mean(values)), distance_max=float(np.max(values)))
    return report
