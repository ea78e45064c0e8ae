"""Find the latent w whose image is closest to a given image (StyleGAN2 paper, Appendix D).

    python -m stylegan2_ada.projector --network=snapshot.pkl --target=frame.png --outdir=out \
        [--num-steps=1000 --seed=303 --save-video=true --distance=lpips --detector-dir=DIR]

writes ``target.png`` (the target as the network sees it), ``proj.png`` (the projection),
``projected_w.npz`` (``w``: ``[1, num_ws, w_dim]``, the one optimised w repeated over the layers, as
the official tool writes it; ``generate.py --projected-w`` renders it), ``proj.mp4`` (target |
projection after every step) and ``projection.json`` (the distance used, its final value, settings).
The images are rendered from w alone with the network's own constant noise, so ``generate.py``
reproduces ``proj.png`` exactly; the per-layer noise maps are optimised too, but only as helpers of
the search, as the paper describes.

The procedure: start at the mean w, Adam (betas 0.9, 0.999) for ``num_steps`` steps with a learning
rate that ramps up linearly over the first 5 % and down along a cosine over the last 25 %, Gaussian
noise added to w that fades out over the first 75 %, a penalty on spatial correlation in the noise
maps at every scale of a pyramid down to 8x8 (weight 1e5), and the noise maps reset to zero mean and
unit variance after each step. The distance is VGG16-LPIPS from the official ``vgg16.pt`` on images
of at most 256x256 (found like the metrics' detector files), or, with ``--distance msssim``, a mix of
MS-SSIM and L1 that needs no download.

:class:`Projector` is the engine: it runs many projections at once (one slot each, all advanced by
one batched step), each with its own schedule, start point and random stream. Adam is elementwise
and each image's loss depends only on its own variables, so a slot's result does not depend on its
neighbours: batching changes speed, not answers. ``manganime_ext.projection`` builds video projection
(warm starts, cuts, W+) on it; :func:`project` is the official single-image entry point.
"""

import copy
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import click
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import dnnlib, legacy

LPIPS_MAX_SIDE = 256  # the paper compares images downsampled to 256x256
W_STATS_SEED = 123456  # the mean w must be the same for every projection, whatever --seed says


# --- distances --------------------------------------------------------------------------------------

def _three_channels(images: torch.Tensor) -> torch.Tensor:
    """Grey repeated to RGB, alpha dropped: both distances look at colour images."""
    channels = images.shape[1]
    if channels == 1:
        return images.repeat(1, 3, 1, 1)
    return images[:, :3] if channels > 3 else images


def _at_most(images: torch.Tensor, side: int) -> torch.Tensor:
    """Area-downsample images larger than ``side`` to ``side`` x ``side``; smaller ones are left alone."""
    if images.shape[2] <= side:
        return images
    return F.interpolate(images, size=(side, side), mode="area")


class ImageDistance:
    """A differentiable distance between images on the 0-255 scale, one value per image.

    ``prepare(targets)`` turns targets into whatever the distance compares against (computed once per
    target); ``distance(images, prepared)`` then gives ``[N]``. ``name`` says which distance it is, and
    goes into every output so that numbers made with different distances are never mixed up.
    """

    name = "distance"

    def prepare(self, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def distance(self, images: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Distance between two sets of images (both 0-255)."""
        return self.distance(images, self.prepare(targets))


class LPIPSDistance(ImageDistance):
    """VGG16-LPIPS: squared distance between the official ``vgg16.pt``'s normalised features."""

    name = "lpips (vgg16.pt)"

    def __init__(self, vgg16: torch.nn.Module):
        self.vgg16 = vgg16

    def prepare(self, targets: torch.Tensor) -> torch.Tensor:
        return self._features(targets).detach()

    def distance(self, images: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return (self._features(images) - prepared).square().sum(dim=1)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        pixels = _at_most(_three_channels(images.float()), LPIPS_MAX_SIDE)
        return self.vgg16(pixels, resize_images=False, return_lpips=True)


class MSSSIMDistance(ImageDistance):
    """0.84 (1 - MS-SSIM) + 0.16 L1 on the [0, 1] scale: a distance that needs no weight file.

    The mix is Zhao et al.'s ("Loss Functions for Image Restoration with Neural Networks", 2017):
    MS-SSIM keeps edges and local contrast, L1 keeps flat colours right, which suits cel-shaded
    frames. Scales are added while the image still holds the 11-tap window (3 at 64 px, 5 from 176 px).
    """

    name = "msssim (0.84 (1 - MS-SSIM) + 0.16 L1, no download)"
    SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, finest scale first
    WINDOW, SIGMA = 11, 1.5
    MIX = 0.84

    def prepare(self, targets: torch.Tensor) -> torch.Tensor:
        return _at_most(_three_channels(targets.float()), LPIPS_MAX_SIDE).detach()

    def distance(self, images: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        x = _at_most(_three_channels(images.float()), LPIPS_MAX_SIDE) / 255
        y = prepared / 255
        l1 = (x - y).abs().flatten(1).mean(dim=1)
        return self.MIX * (1 - ms_ssim(x, y, self.SCALE_WEIGHTS, self.WINDOW, self.SIGMA)) + (1 - self.MIX) * l1


def _blur(images: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, 'valid' positions only, each channel on its own."""
    channels, size = images.shape[1], taps.numel()
    across = F.conv2d(images, taps.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(across, taps.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, scale_weights: Sequence[float] = MSSSIMDistance.SCALE_WEIGHTS,
            window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Multi-scale SSIM (Wang, Simoncelli, Bovik 2003) of images on [0, 1]: ``[N]``, 1 for identical images.

    Contrast-structure terms of the finer scales and the full SSIM of the coarsest one are combined as
    a weighted geometric mean. Only as many scales as fit the window are used (their weights renormalised),
    and terms are clamped at a small positive value so that the powers stay differentiable.
    """
    side = min(x.shape[2], x.shape[3])
    size = min(window, side)
    scales = 1
    while scales < len(scale_weights) and side >> scales >= size:
        scales += 1
    weights = torch.tensor(scale_weights[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    offsets = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    taps = torch.exp(-offsets.square() / (2 * sigma**2))
    taps = taps / taps.sum()
    c1, c2 = 0.01**2, 0.03**2

    product = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    for level in range(scales):
        mean_x, mean_y = _blur(x, taps), _blur(y, taps)
        var_x = _blur(x * x, taps) - mean_x.square()
        var_y = _blur(y * y, taps) - mean_y.square()
        covariance = _blur(x * y, taps) - mean_x * mean_y
        contrast_structure = (2 * covariance + c2) / (var_x + var_y + c2)
        term = contrast_structure
        if level == scales - 1:
            term = term * (2 * mean_x * mean_y + c1) / (mean_x.square() + mean_y.square() + c1)
        product = product * term.flatten(1).mean(dim=1).clamp(min=1e-6) ** weights[level]
        if level < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return product


DISTANCES = ("lpips", "msssim")


class DistanceUnavailable(ValueError):
    """The chosen distance cannot be used (e.g. vgg16.pt missing offline); the message says what to do."""


def load_distance(name: str, device: torch.device, detector_dir: Optional[str] = None) -> ImageDistance:
    """The distance ``name`` (one of :data:`DISTANCES`); LPIPS finds ``vgg16.pt`` like the metrics do."""
    if name == "msssim":
        return MSSSIMDistance()
    if name != "lpips":
        raise DistanceUnavailable(f"--distance: expected one of {', '.join(DISTANCES)}, got {name!r}")
    from .metrics import MetricError
    from .metrics.detectors import VGG16_URL, get_feature_detector

    try:
        vgg16 = get_feature_detector(VGG16_URL, device=device, detector_dir=detector_dir,
                                     required_args=("resize_images", "return_lpips"))
    except MetricError as err:
        raise DistanceUnavailable(f"{err}; or use --distance msssim, which needs no download") from None
    return LPIPSDistance(vgg16)


# --- schedule and start point -------------------------------------------------------------------

@dataclass
class ProjectionSchedule:
    """How one projection's learning rate and w noise evolve over its ``num_steps`` steps (fractions of it)."""

    num_steps: int = 1000
    initial_learning_rate: float = 0.1  # peak Adam learning rate
    initial_noise_factor: float = 0.05  # w noise starts at this times the spread of W
    lr_rampdown_length: float = 0.25  # cosine ramp-down over this last fraction
    lr_rampup_length: float = 0.05  # linear ramp-up over this first fraction (0: none)
    noise_ramp_length: float = 0.75  # the w noise fades out (quadratically) over this first fraction

    def learning_rate(self, step: int) -> float:
        progress = step / self.num_steps
        tail = min(1.0, (1.0 - progress) / self.lr_rampdown_length) if self.lr_rampdown_length > 0 else 1.0
        ramp = 0.5 - 0.5 * math.cos(math.pi * tail)
        if self.lr_rampup_length > 0:
            ramp *= min(1.0, progress / self.lr_rampup_length)
        return self.initial_learning_rate * ramp

    def noise_factor(self, step: int) -> float:
        """Standard deviation of the noise added to w, as a fraction of the spread of W."""
        if self.noise_ramp_length <= 0:
            return 0.0
        fade = max(0.0, 1.0 - step / self.num_steps / self.noise_ramp_length)
        return self.initial_noise_factor * fade * fade


@torch.no_grad()
def w_statistics(G: torch.nn.Module, num_samples: int = 10000, device: Optional[torch.device] = None,
                 batch: int = 2000) -> Tuple[torch.Tensor, float]:
    """Mean w and its spread sqrt(E|w - mean|^2), from ``num_samples`` z drawn from a fixed stream.

    A conditional ``G`` gets a class drawn uniformly for each z, so that the statistics describe the
    W it was trained to cover, not the off-manifold image of an all-zero label.
    """
    device = device or next(G.parameters()).device
    rnd = np.random.RandomState(W_STATS_SEED)
    z_all = torch.from_numpy(rnd.randn(num_samples, G.z_dim)).float()
    labels = torch.zeros([num_samples, G.c_dim])
    if G.c_dim:
        labels[torch.arange(num_samples), torch.from_numpy(rnd.randint(G.c_dim, size=num_samples))] = 1
    ws = torch.cat([G.mapping(z.to(device), c.to(device))[:, 0]
                    for z, c in zip(z_all.split(batch), labels.split(batch))]).double()
    mean = ws.mean(dim=0)
    spread = float((ws - mean).square().sum(dim=1).mean().sqrt())
    return mean.float(), spread


def noise_layers(synthesis: torch.nn.Module) -> List[torch.nn.Module]:
    """The layers that add per-pixel noise (those holding a ``noise_const`` map), coarse to fine."""
    return [m for m in synthesis.modules() if "noise_const" in dict(m.named_buffers(recurse=False))]


class own_noise:
    """Context manager: the listed layers use the given maps (``[N, 1, r, r]``, one per image) as their
    constant noise, then get their own back. With ``noise_mode='const'`` each image then has its own noise."""

    def __init__(self, layers: Sequence[torch.nn.Module], maps: Optional[Sequence[torch.Tensor]]):
        self.layers, self.maps, self.saved = layers, maps, []

    def __enter__(self) -> None:
        if self.maps is not None:
            self.saved = [layer.noise_const for layer in self.layers]
            for layer, noise in zip(self.layers, self.maps):
                layer.noise_const = noise

    def __exit__(self, *exc) -> None:
        for layer, noise in zip(self.layers, self.saved):
            layer.noise_const = noise


def noise_penalty(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per image ``[N]``: squared autocorrelation at a one-pixel shift (both axes) of every noise map, at
    every level of its average-pooled pyramid down to 8x8 (coarser maps are judged once, as they are).

    White noise scores about 0; a map that has started to draw structure does not.
    """
    total = maps[0].new_zeros(maps[0].shape[0])
    for noise in maps:
        level = noise
        while True:
            for axis in (2, 3):
                total = total + (level * level.roll(1, dims=axis)).mean(dim=(1, 2, 3)).square()
            if level.shape[2] <= 8:
                break
            level = F.avg_pool2d(level, kernel_size=2)
    return total


def synthesize(G: torch.nn.Module, ws: torch.Tensor, noise: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """G's image of each ``ws`` ``[N, num_ws, w_dim]`` (its constant noise, or the given per-image maps)."""
    with own_noise(noise_layers(G.synthesis), noise):
        return G.synthesis(ws, noise_mode="const", force_fp32=ws.device.type != "cuda")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output ``[N, C, H, W]`` in about [-1, 1] -> ``[N, H, W, C]`` uint8, rounded as generate.py does."""
    return (images.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()


# --- the engine ---------------------------------------------------------------------------------

class Projector:
    """Up to ``slots`` projections optimised together, each slot with its own target, schedule and start.

    ``start(slot, target, schedule, ...)`` begins a projection in a slot, ``step()`` advances every busy
    slot by one Adam step (one batched forward and backward pass), ``done(slot)`` says when a slot's
    schedule has run out, and ``latent(slot)``/``noise(slot)`` read its variables (to keep as a result,
    or to start the next projection from them: a warm start).

    ``space='w'`` optimises one w per image (repeated over the layers); ``'wplus'`` one per layer.
    ``optimize_noise=False`` keeps the network's own noise fixed and optimises w alone.
    """

    def __init__(self, G: torch.nn.Module, distance: ImageDistance, slots: int = 1, space: str = "w",
                 optimize_noise: bool = True, regularize_noise_weight: float = 1e5, w_avg_samples: int = 10000,
                 device: Optional[torch.device] = None,
                 w_stats: Optional[Tuple[torch.Tensor, float]] = None):
        if space not in ("w", "wplus"):
            raise ValueError(f"space must be 'w' or 'wplus', got {space!r}")
        self.device = device or torch.device("cpu")
        self.G = copy.deepcopy(G).eval().requires_grad_(False).to(self.device)
        self.distance, self.slots, self.space = distance, slots, space
        self.optimize_noise, self.noise_weight = optimize_noise, regularize_noise_weight
        self.num_ws, self.w_dim = self.G.num_ws, self.G.w_dim
        w_avg, self.w_std = w_stats if w_stats is not None else w_statistics(self.G, w_avg_samples, self.device)
        self.w_avg = w_avg.to(self.device)
        self.layers = noise_layers(self.G.synthesis)

        rows = 1 if space == "w" else self.num_ws
        self.w = torch.zeros([slots, rows, self.w_dim], device=self.device, requires_grad=True)
        self.maps = [torch.zeros([slots, 1, *layer.noise_const.shape], device=self.device, requires_grad=True)
                     for layer in self.layers] if optimize_noise else []
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.variables]
        self.prepared: Optional[torch.Tensor] = None
        self.schedules: List[Optional[ProjectionSchedule]] = [None] * slots
        self.steps_taken = [0] * slots  # steps of the current schedule
        self.adam_steps = [0] * slots  # steps the moments have seen (bias correction)
        self.streams = [torch.Generator() for _ in range(slots)]

    @property
    def variables(self) -> List[torch.Tensor]:
        return [self.w, *self.maps]

    def start(self, slot: int, target: torch.Tensor, schedule: ProjectionSchedule,
              latent: Optional[torch.Tensor] = None, noise: Optional[Sequence[torch.Tensor]] = None,
              seed: int = 0, keep_moments: bool = False) -> None:
        """Begin projecting ``target`` (``[C, H, W]``, 0-255, G's size) in ``slot``.

        ``latent`` (``[1 or num_ws, w_dim]``) and ``noise`` (maps ``[1, r, r]``) default to the mean w and
        fresh Gaussian maps (the cold start); ``seed`` names the slot's random stream (w noise, maps).
        ``keep_moments`` carries the slot's Adam moments over from its previous projection (for a warm
        start: the gradient scales it learnt still hold, so the first steps are not blind unit steps).
        """
        prepared = self.distance.prepare(target.to(self.device, torch.float32)[None]).detach()
        if self.prepared is None:
            self.prepared = prepared.new_zeros([self.slots, *prepared.shape[1:]])
        self.prepared[slot] = prepared[0]
        stream = self.streams[slot]
        stream.manual_seed(int(seed))
        with torch.no_grad():
            start = self.w_avg[None] if latent is None else latent.to(self.device, torch.float32)
            if start.shape[0] != self.w.shape[1]:  # W -> W+ repeats; W+ -> W takes the layers' mean
                start = start.expand(self.w.shape[1], -1) if start.shape[0] == 1 else start.mean(0, keepdim=True)
            self.w[slot] = start
            for k, maps in enumerate(self.maps):
                fresh = torch.randn(maps.shape[1:], generator=stream) if noise is None else noise[k]
                maps[slot] = fresh.to(self.device)
            if not keep_moments:
                for first, second in self.moments:
                    first[slot] = 0
                    second[slot] = 0
                self.adam_steps[slot] = 0
        self.schedules[slot] = schedule
        self.steps_taken[slot] = 0

    def done(self, slot: int) -> bool:
        schedule = self.schedules[slot]
        return schedule is None or self.steps_taken[slot] >= schedule.num_steps

    def busy(self) -> List[int]:
        return [s for s in range(self.slots) if not self.done(s)]

    def release(self, slot: int) -> None:
        """Leave ``slot`` idle (it takes no part in steps until started again)."""
        self.schedules[slot] = None

    def latent(self, slot: int) -> torch.Tensor:
        """The slot's w, ``[1, w_dim]`` in W or ``[num_ws, w_dim]`` in W+ (a copy)."""
        return self.w[slot].detach().clone()

    def ws(self, slot: int) -> torch.Tensor:
        """The slot's w over all layers, ``[num_ws, w_dim]``: what generate.py takes."""
        return self.latent(slot).expand(self.num_ws, -1).clone()

    def noise(self, slot: int) -> Optional[List[torch.Tensor]]:
        return [maps[slot].detach().clone() for maps in self.maps] if self.maps else None

    def step(self) -> Dict[int, float]:
        """One Adam step for every busy slot; returns {slot: distance before the step}."""
        busy = self.busy()
        if not busy:
            return {}
        rows = torch.tensor(busy, device=self.device)
        learning_rates = torch.zeros(self.slots, device=self.device)
        jitter = torch.zeros([len(busy), *self.w.shape[1:]])
        for k, slot in enumerate(busy):
            schedule, step = self.schedules[slot], self.steps_taken[slot]
            learning_rates[slot] = schedule.learning_rate(step)
            factor = schedule.noise_factor(step)
            if factor > 0:
                jitter[k] = torch.randn(self.w.shape[1:], generator=self.streams[slot]) * (self.w_std * factor)

        ws = (self.w[rows] + jitter.to(self.device)).expand(-1, self.num_ws, -1)
        maps = [m[rows] for m in self.maps] if self.maps else None
        with own_noise(self.layers, maps):
            images = self.G.synthesis(ws, noise_mode="const", force_fp32=self.device.type != "cuda")
        distances = self.distance.distance((images + 1) * 127.5, self.prepared[rows])
        loss = distances.sum()
        if maps is not None:
            loss = loss + self.noise_weight * noise_penalty(maps).sum()
        for p in self.variables:
            p.grad = None
        loss.backward()
        self._adam(learning_rates, busy)
        for slot in busy:
            self.steps_taken[slot] += 1
            self.adam_steps[slot] += 1
        return {slot: float(d) for slot, d in zip(busy, distances.detach().cpu())}

    @torch.no_grad()
    def _adam(self, learning_rates: torch.Tensor, busy: List[int], betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        """Adam with one learning rate and one step count per slot (idle slots have rate 0: unchanged)."""
        counts = torch.tensor([self.adam_steps[s] + 1 for s in range(self.slots)], dtype=torch.float64)
        first_fix = (1 - betas[0] ** counts).float().to(self.device)
        second_fix = (1 - betas[1] ** counts).float().to(self.device)
        for p, (first, second) in zip(self.variables, self.moments):
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            first.lerp_(grad, 1 - betas[0])
            second.mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
            shape = (self.slots,) + (1,) * (p.dim() - 1)
            denom = (second / second_fix.view(shape)).sqrt_().add_(eps)
            p.sub_(first / denom * (learning_rates / first_fix).view(shape))
        for maps in self.maps:  # back to zero mean and unit variance, per image
            rows = maps[busy]
            rows = rows - rows.mean(dim=(1, 2, 3), keepdim=True)
            maps[busy] = rows * rows.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()


def project(
    G: torch.nn.Module,
    target: torch.Tensor,  # [C, H, W] on the 0-255 scale, G's resolution
    *,
    num_steps: int = 1000,
    w_avg_samples: int = 10000,
    initial_learning_rate: float = 0.1,
    initial_noise_factor: float = 0.05,
    lr_rampdown_length: float = 0.25,
    lr_rampup_length: float = 0.05,
    noise_ramp_length: float = 0.75,
    regularize_noise_weight: float = 1e5,
    verbose: bool = False,
    device: torch.device,
    distance: Optional[ImageDistance] = None,  # default: VGG16-LPIPS (needs vgg16.pt)
    seed: Optional[int] = None,  # the random stream (w noise, noise maps); default: drawn from torch's RNG
) -> torch.Tensor:
    """Project one image; returns the w after every step, ``[num_steps, num_ws, w_dim]`` (last = the result)."""
    if tuple(target.shape) != (G.img_channels, G.img_resolution, G.img_resolution):
        raise ValueError(f"target is {list(target.shape)}, G makes [{G.img_channels}, {G.img_resolution}, "
                         f"{G.img_resolution}]")
    distance = distance or load_distance("lpips", device)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, []))
    engine = Projector(G, distance, slots=1, space="w", regularize_noise_weight=regularize_noise_weight,
                       w_avg_samples=w_avg_samples, device=device)
    schedule = ProjectionSchedule(num_steps, initial_learning_rate, initial_noise_factor, lr_rampdown_length,
                                  lr_rampup_length, noise_ramp_length)
    engine.start(0, target, schedule, seed=seed)
    trail = []
    bar = tqdm(range(num_steps), desc="project", unit="step", disable=not verbose, leave=False)
    for _ in bar:
        value = engine.step()[0]
        bar.set_postfix(distance=f"{value:.4f}")
        trail.append(engine.ws(0))
    return torch.stack(trail)


# --- the command line ---------------------------------------------------------------------------

def load_target(path: str, channels: int, resolution: int) -> np.ndarray:
    """An image file as the network sees it: centre-cropped square, resized (Lanczos), ``[H, W, C]`` uint8."""
    try:
        with PIL.Image.open(path) as image:
            image = image.convert({1: "L", 4: "RGBA"}.get(channels, "RGB"))
    except (OSError, ValueError) as err:
        raise click.BadParameter(f"{path}: not a readable image ({' '.join(str(err).split())})",
                                 param_hint="--target") from None
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((resolution, resolution), PIL.Image.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _png(pixels: np.ndarray, path: str) -> None:
    PIL.Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)


def _write_video(path: str, frames: Sequence[np.ndarray], fps: int = 10) -> None:
    """H.264 mp4 through the ffmpeg binary imageio-ffmpeg ships (grey and alpha shown as RGB)."""
    import imageio_ffmpeg

    first = frames[0]
    writer = imageio_ffmpeg.write_frames(path, (first.shape[1], first.shape[0]), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=None,
                                         output_params=["-crf", "18", "-preset", "veryfast"])
    writer.send(None)
    try:
        for frame in frames:
            rgb = np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame[:, :, :3]
            writer.send(np.ascontiguousarray(rgb))
    finally:
        writer.close()


def _move_into(outdir: str, produce: Callable[[str], None]) -> None:
    """Run ``produce(folder)`` on a temp folder beside ``outdir``; move its files in only if it succeeds."""
    parent = os.path.dirname(os.path.abspath(outdir))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.abspath(outdir))}.tmp-")
    try:
        produce(scratch)
        os.makedirs(outdir, exist_ok=True)
        for name in sorted(os.listdir(scratch)):
            os.chmod(os.path.join(scratch, name), 0o644)
            os.replace(os.path.join(scratch, name), os.path.join(outdir, name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_projection(network_pkl: str, target_fname: str, outdir: str, save_video: bool, seed: int, num_steps: int,
                   distance_name: str = "lpips", detector_dir: Optional[str] = None) -> dict:
    """Everything ``python -m stylegan2_ada.projector`` does; returns what it writes to projection.json."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        with dnnlib.util.open_url(network_pkl) as f:
            G = legacy.load_network_pkl(f)["G_ema"].to(device)
    except (legacy.NetworkLoadError, OSError, ValueError) as err:
        raise click.BadParameter(" ".join(str(err).split()), param_hint="--network") from None
    target = load_target(target_fname, G.img_channels, G.img_resolution)
    try:
        distance = load_distance(distance_name, device, detector_dir)
    except DistanceUnavailable as err:
        raise click.BadParameter(" ".join(str(err).split()), param_hint="--distance") from None
    click.echo(f"Projecting {target_fname} into {network_pkl} for {num_steps} steps, distance {distance.name}")

    target_tensor = torch.from_numpy(target.copy()).permute(2, 0, 1).float()
    trail = project(G, target_tensor, num_steps=num_steps, device=device, verbose=True, distance=distance, seed=seed)
    final = trail[-1:]
    with torch.no_grad():
        image = synthesize(G, final)
        final_distance = float(distance((image + 1) * 127.5, target_tensor[None].to(device)))
    proj = to_uint8(image)[0]
    mse = float(np.mean((proj.astype(np.float64) - target) ** 2))
    summary = dict(network=network_pkl, target=target_fname, num_steps=num_steps, seed=seed, distance=distance.name,
                   final_distance=final_distance, psnr=10 * math.log10(255**2 / max(mse, 1e-10)))

    def produce(folder: str) -> None:
        if save_video:
            frames = []
            with torch.no_grad():
                for ws in tqdm(trail.split(64), desc="proj.mp4", unit="batch", leave=False):
                    frames += [np.concatenate([target, img], axis=1) for img in to_uint8(synthesize(G, ws))]
            _write_video(os.path.join(folder, "proj.mp4"), frames)
        _png(target, os.path.join(folder, "target.png"))
        _png(proj, os.path.join(folder, "proj.png"))
        np.savez(os.path.join(folder, "projected_w.npz"), w=final.cpu().numpy())
        with open(os.path.join(folder, "projection.json"), "w") as f:
            json.dump(summary, f, indent=1)

    _move_into(outdir, produce)
    click.echo(f"distance {final_distance:.4f}, PSNR {summary['psnr']:.2f} dB -> {outdir}")
    return summary


@click.command()
@click.option("--network", "network_pkl", required=True, help="Network pickle (path or URL)")
@click.option("--target", "target_fname", required=True, type=click.Path(dir_okay=False),
              help="Image to project (centre-cropped and resized to the network's size)")
@click.option("--num-steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Optimisation steps")
@click.option("--seed", type=int, default=303, show_default=True, help="Random seed")
@click.option("--save-video", type=bool, default=True, show_default=True, help="Write proj.mp4 (one frame per step)")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Where the results go")
@click.option("--distance", "distance_name", type=click.Choice(DISTANCES), default="lpips", show_default=True,
              help="lpips: VGG16-LPIPS (vgg16.pt); msssim: MS-SSIM + L1, needs no download")
@click.option("--detector-dir", metavar="DIR", help="Folder holding vgg16.pt (else $MANGANIME_METRIC_NETWORKS, the cache)")
def main(network_pkl: str, target_fname: str, num_steps: int, seed: int, save_video: bool, outdir: str,
         distance_name: str, detector_dir: Optional[str]) -> None:
    """Project an image into the W space of a trained network (official flags, plus --distance)."""
    if not os.path.isfile(target_fname):
        raise click.BadParameter(f"{target_fname}: no such file", param_hint="--target")
    run_projection(network_pkl, target_fname, outdir, save_video, seed, num_steps, distance_name, detector_dir)


if __name__ == "__main__":
    main()  # pylint: disable=no-value-for-parameter
