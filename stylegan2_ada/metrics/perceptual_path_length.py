"""Perceptual path length (Karras et al. 2019, StyleGAN): how much the image changes, in LPIPS
distance, for a small step ``epsilon`` along a latent interpolation path, scaled by 1/epsilon².

Interpolation is linear in W and spherical in Z; ``sampling='full'`` picks t uniformly on the
path, ``'end'`` takes its endpoint t = 0.  The two images of a pair share their noise
inputs, otherwise noise alone would dominate a 1e-4 step.  ``crop`` keeps the central face
region (for FFHQ-like framing), and images above 256² are area-averaged down to 256² before
LPIPS.  The mean is taken between the 1st and 99th percentiles to drop outliers.
"""

from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .detectors import VGG16_URL
from .metric_utils import (MetricOptions, frozen_generator, gather_rows, make_label_sampler, rank_share,
                           to_detector_input)

LPIPS_RESOLUTION = 256


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Point at fraction ``t`` (``[N, 1]``) of the great-circle arc from ``a`` to ``b``, on the unit sphere."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    cos_angle = (a * b).sum(dim=-1, keepdim=True).clamp(-1, 1)
    angle = t * torch.acos(cos_angle)
    ortho = b - cos_angle * a
    ortho = ortho / ortho.norm(dim=-1, keepdim=True)
    out = a * torch.cos(angle) + ortho * torch.sin(angle)
    return out / out.norm(dim=-1, keepdim=True)


def crop_and_downsample(img: torch.Tensor, crop: bool) -> torch.Tensor:
    """Optional face crop (rows 3/8..7/8, columns 2/8..6/8), then area averaging down to 256² if larger."""
    if crop:
        c = img.shape[2] // 8
        img = img[:, :, c * 3: c * 7, c * 2: c * 6]
    factor = img.shape[2] // LPIPS_RESOLUTION
    if factor > 1:
        n, ch, h, w = img.shape
        img = img.reshape([n, ch, h // factor, factor, w // factor, factor]).mean(dim=[3, 5])
    return img


def filtered_mean(dist: np.ndarray) -> float:
    """Mean of the values between the 1st (rounded down) and 99th (rounded up) percentiles."""
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(dist[(dist >= lo) & (dist <= hi)].mean())


def path_distances(G: torch.nn.Module, lpips_features: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                   c: torch.Tensor, t: torch.Tensor, epsilon: float, space: str, crop: bool) -> torch.Tensor:
    """``LPIPS(image(t), image(t + epsilon)) / epsilon²`` for paths ``z[:, 0] -> z[:, 1]`` with labels ``c``."""
    z0, z1 = z[:, 0], z[:, 1]
    if space == "w":
        w0, w1 = G.mapping(torch.cat([z0, z1]), torch.cat([c, c])).chunk(2)
        step = t[:, None, None]
        ws = torch.cat([w0.lerp(w1, step), w0.lerp(w1, step + epsilon)])
    else:
        step = t[:, None]
        zs = torch.cat([slerp(z0, z1, step), slerp(z0, z1, step + epsilon)])
        ws = G.mapping(zs, torch.cat([c, c]))
    img = crop_and_downsample(G.synthesis(ws, noise_mode="const", force_fp32=True), crop)
    img = to_detector_input(img.add(1).mul(127.5))  # [-1, 1] -> [0, 255], grey as RGB
    f0, f1 = lpips_features(img).chunk(2)
    return (f0 - f1).square().sum(dim=1) / epsilon**2


@torch.no_grad()
def randomize_noise(G: torch.nn.Module, rng: torch.Generator) -> None:
    """Fresh values for G's constant noise inputs, so a pair rendered with noise_mode='const' shares them."""
    for name, buf in G.named_buffers():
        if name.endswith("noise_const"):
            buf.copy_(torch.randn(buf.shape, generator=rng))


def compute_ppl(opts: MetricOptions, num_samples: int, epsilon: float, space: str, sampling: str, crop: bool,
                batch_size: int) -> float:
    """PPL of ``opts.G`` over ``num_samples`` paths; NaN on ranks other than 0."""
    if space not in ("z", "w") or sampling not in ("full", "end"):
        raise ValueError(f"space must be 'z' or 'w' and sampling 'full' or 'end', got {space!r}, {sampling!r}")
    vgg16 = opts.detector(VGG16_URL, required_args=("resize_images", "return_lpips"))
    G = frozen_generator(opts)
    sample_labels = make_label_sampler(opts, G.c_dim, seed=opts.rank)
    rng = torch.Generator().manual_seed(opts.rank)
    count = rank_share(num_samples, opts)
    dists = []
    with torch.no_grad():
        for start in range(0, count, batch_size):
            n = min(batch_size, count - start)
            randomize_noise(G, rng)
            z = torch.randn([n, 2, G.z_dim], generator=rng).to(opts.device)
            t = (torch.rand([n], generator=rng) * (1.0 if sampling == "full" else 0.0)).to(opts.device)
            dists.append(path_distances(G, lambda img: vgg16(img, resize_images=False, return_lpips=True),
                                        z, sample_labels(n), t, epsilon, space, crop).cpu())
    dist = gather_rows(torch.cat(dists).to(torch.float64).numpy(), opts)
    if opts.rank != 0:
        return float("nan")
    return filtered_mean(dist)
