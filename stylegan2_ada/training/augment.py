"""Adaptive discriminator augmentation (ADA): the differentiable augmentation pipeline.

Every image D sees, real or generated, goes through :class:`AugmentPipe`.  Each
of the 18 transforms fires per sample with probability ``p * multiplier``; the
training loop tunes the single buffer ``p``.  The transforms are chosen (and
implemented) so that they do not *leak*: as long as ``p < 1`` the augmented
distribution still determines the clean one, so G learns clean images.

Stages, in order (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data", Appendix B):

1. pixel blitting: x-flip, 90-degree rotations, integer translation (exact index operations);
2. general geometric: isotropic scale, pre-rotation, anisotropic scale, post-rotation and
   fractional translation, composed into one 3x3 matrix and resampled once;
3. colour: brightness, contrast, luma flip, hue rotation, saturation, one 4x4 matrix;
4. image-space filtering: four frequency bands with random gains;
5. additive noise;
6. cutout.

Everything is differentiable with respect to the images, twice where R1 needs it.
"""

import math
from typing import Callable, Optional, Sequence

import torch
from torch.nn import functional as F

from ..torch_utils import misc, persistence
from ..torch_utils.ops import grid_sample_gradfix, upfirdn2d

# Low-pass decomposition filters of the Symlet wavelets (published constants, as listed
# e.g. in PyWavelets).  sym6 resamples the geometric warp; sym2 seeds the filter bank.
SYM2 = [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025]
SYM6 = [
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
]

_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)

# The official presets (train.py --augpipe): transform multipliers by name.
AUGPIPE_SPECS = {
    "blit": dict(_BLIT),
    "geom": dict(_GEOM),
    "color": dict(_COLOR),
    "filter": dict(imgfilter=1),
    "noise": dict(noise=1),
    "cutout": dict(cutout=1),
    "bg": dict(_BLIT, **_GEOM),
    "bgc": dict(_BLIT, **_GEOM, **_COLOR),
    "bgcf": dict(_BLIT, **_GEOM, **_COLOR, imgfilter=1),
    "bgcfn": dict(_BLIT, **_GEOM, **_COLOR, imgfilter=1, noise=1),
    "bgcfnc": dict(_BLIT, **_GEOM, **_COLOR, imgfilter=1, noise=1, cutout=1),
}

_DEBUG_EPS = 1e-4  # Percentiles are kept this far from 0 and 1 so that normal quantiles stay finite.


# ---------------------------------------------------------------------------------------------
# Random parameters.


class _Draws:
    """Per-sample random numbers for one forward pass, or fixed ones in debug mode.

    ``debug_percentile`` replaces every draw by that percentile of its distribution
    and makes every transform with a non-zero probability fire, so that a single
    transform can be looked at with a known strength.
    """

    def __init__(self, batch_size: int, device: torch.device, debug_percentile: Optional[float]):
        self.n = batch_size
        self.device = device
        self.pct = None if debug_percentile is None else min(max(float(debug_percentile), _DEBUG_EPS), 1 - _DEBUG_EPS)

    def fires(self, prob: torch.Tensor) -> torch.Tensor:
        """Bool [N]: which samples get a transform whose probability is ``prob``."""
        if self.pct is not None:
            return (prob > 0).expand(self.n)
        return torch.rand([self.n], device=self.device) < prob

    def uniform(self) -> torch.Tensor:
        """U(0, 1) per sample."""
        if self.pct is not None:
            return torch.full([self.n], self.pct, device=self.device)
        return torch.rand([self.n], device=self.device)

    def normal(self) -> torch.Tensor:
        """N(0, 1) per sample; its quantile in debug mode."""
        if self.pct is not None:
            return torch.full([self.n], _normal_quantile(self.pct), device=self.device)
        return torch.randn([self.n], device=self.device)

    def half_normal(self) -> torch.Tensor:
        """|N(0, 1)| per sample; its own quantile (not |quantile of N|) in debug mode."""
        if self.pct is not None:
            return torch.full([self.n], _normal_quantile((1 + self.pct) / 2), device=self.device)
        return torch.randn([self.n], device=self.device).abs()

    def integers(self, count: int) -> torch.Tensor:
        """Uniform integers in [0, count) per sample."""
        return (self.uniform() * count).floor().long().clamp(max=count - 1)

    def noise(self, shape: Sequence[int]) -> torch.Tensor:
        """Pixel noise; a fixed pattern in debug mode, so that debug outputs are deterministic."""
        generator = None
        if self.pct is not None:
            generator = torch.Generator(device=self.device).manual_seed(0)
        return torch.randn(list(shape), device=self.device, generator=generator)

    def gated(self, prob: torch.Tensor, value: torch.Tensor, neutral: float = 0) -> torch.Tensor:
        """``value`` where the transform fires, ``neutral`` (the no-op parameter) elsewhere."""
        return torch.where(self.fires(prob), value, torch.full_like(value, neutral))


def _normal_quantile(q: float) -> float:
    """Inverse CDF of N(0, 1)."""
    return math.sqrt(2) * torch.erfinv(torch.tensor(2 * q - 1, dtype=torch.float64)).item()


# ---------------------------------------------------------------------------------------------
# Batches of small matrices.


def _matrices(rows: Sequence[Sequence], n: int, device: torch.device) -> torch.Tensor:
    """[N, R, C] from rows of per-sample tensors [N] or constants."""
    elems = [[torch.as_tensor(v, dtype=torch.float32, device=device).expand(n) for v in row] for row in rows]
    return torch.stack([torch.stack(row, dim=-1) for row in elems], dim=-2)


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return _matrices([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], len(sx), sx.device)


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    c, s = theta.cos(), theta.sin()
    return _matrices([[c, -s, 0], [s, c, 0], [0, 0, 1]], len(theta), theta.device)


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return _matrices([[1, 0, tx], [0, 1, ty], [0, 0, 1]], len(tx), tx.device)


def _colour_affine(linear: torch.Tensor, offset: Optional[torch.Tensor] = None) -> torch.Tensor:
    """4x4 homogeneous RGB matrices from [N, 3, 3] linear parts and [N, 3] offsets."""
    n = linear.shape[0]
    out = torch.eye(4, device=linear.device).repeat(n, 1, 1)
    out[:, :3, :3] = linear
    if offset is not None:
        out[:, :3, 3] = offset
    return out


def _eye(n: int, size: int, device: torch.device) -> torch.Tensor:
    return torch.eye(size, device=device).repeat(n, 1, 1)


# ---------------------------------------------------------------------------------------------
# Image helpers.


def _roll(x: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
    """Per-sample ``torch.roll`` by whole pixels (wrap-around, so it is a permutation: exact and invertible)."""
    n, c, h, w = x.shape
    cols = (torch.arange(w, device=x.device)[None] - shift_x[:, None]) % w
    x = x.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    rows = (torch.arange(h, device=x.device)[None] - shift_y[:, None]) % h
    return x.gather(2, rows[:, None, :, None].expand(n, c, h, w))


def _reflect_pad(x: torch.Tensor, pads: Sequence[int]) -> torch.Tensor:
    """Mirror-pad by (left, right, top, bottom) of any size.

    torch's reflect mode needs each pad smaller than the image, so larger pads
    mirror the already padded image again (a periodic mirror tiling).
    """
    remaining = [int(p) for p in pads]
    while any(remaining):
        h, w = x.shape[2], x.shape[3]
        if min(h, w) < 2:
            raise ValueError("reflection padding needs images of at least 2x2 pixels")
        limits = [w - 1, w - 1, h - 1, h - 1]
        step = [min(r, lim) for r, lim in zip(remaining, limits)]
        x = F.pad(x, step, mode="reflect")
        remaining = [r - s for r, s in zip(remaining, step)]
    return x


def _on_subset(x: torch.Tensor, mask: torch.Tensor, fn: Callable[..., torch.Tensor], *per_sample: torch.Tensor) -> torch.Tensor:
    """Apply ``fn`` only to the samples selected by ``mask``; the others stay bit-exact.

    Resampling and filtering are not exactly the identity even at neutral
    parameters, and skipping untouched samples also saves their cost.
    """
    index = mask.nonzero().squeeze(1)
    if index.numel() == 0:
        return x
    if index.numel() == x.shape[0]:
        return fn(x, *per_sample)
    out = fn(x.index_select(0, index), *(t.index_select(0, index) for t in per_sample))
    return x.index_copy(0, index, out)


def _filter_per_sample(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Filter each sample horizontally then vertically with its own symmetric 1D kernel [N, K].

    Mirror padding keeps borders free of the dark fringe that zero padding would add.
    """
    n, c, h, w = x.shape
    radius = kernels.shape[1] // 2
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0)  # [N*C, K]
    y = _reflect_pad(x, [radius] * 4).reshape(1, n * c, h + 2 * radius, w + 2 * radius)
    y = F.conv2d(y, weight[:, None, None, :], groups=n * c)
    y = F.conv2d(y, weight[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def _dilate(taps: torch.Tensor, factor: int) -> torch.Tensor:
    """Insert ``factor - 1`` zeros between taps: the same response compressed in frequency by ``factor``."""
    out = taps.new_zeros((len(taps) - 1) * factor + 1)
    out[::factor] = taps
    return out


def _convolve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full 1D convolution of two tap vectors."""
    return F.conv1d(a[None, None], b.flip(0)[None, None], padding=len(b) - 1)[0, 0]


def build_filter_bank(wavelet: Sequence[float] = SYM2) -> torch.Tensor:
    """[4, K] symmetric filters splitting [0, pi] at pi/8, pi/4 and pi/2; the four rows sum to a unit impulse.

    A wavelet low-pass filter ``h`` convolved with its mirror image is a
    zero-phase half-band filter (for sym2: the 7-tap (-1, 0, 9, 16, 9, 0, -1)/32).
    Dilating it by 2 and 4 halves its cut-off each time, so cascades of it are
    low-pass filters with cut-offs pi/2, pi/4, pi/8; the bands are differences of
    consecutive cascades.  Because the bands telescope, equal gains leave an
    image unchanged and only relative gains reshape its spectrum.
    """
    h = torch.tensor(wavelet, dtype=torch.float64)
    h = h / h.sum()
    half_band = _convolve(h, h.flip(0))
    lowpass = [half_band]  # cut-offs pi/2, pi/4, pi/8
    for factor in (2, 4):
        lowpass.append(_convolve(lowpass[-1], _dilate(half_band, factor)))
    size = len(lowpass[-1])

    def centred(taps: torch.Tensor) -> torch.Tensor:
        pad = (size - len(taps)) // 2
        return F.pad(taps, [pad, pad])

    impulse = centred(torch.ones(1, dtype=torch.float64))
    edges = [impulse] + [centred(t) for t in lowpass] + [torch.zeros(size, dtype=torch.float64)]
    bands = [edges[i] - edges[i + 1] for i in reversed(range(4))]  # lowest band first
    return torch.stack(bands).float()


# ---------------------------------------------------------------------------------------------
# The pipeline.


@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    """The ADA augmentation pipeline: random, non-leaking transforms of every image D sees.

    With few training images D soon memorises them; augmenting what it sees (real and
    generated alike) stops that, and because each transform fires with probability
    ``p * multiplier`` with ``p < 1``, G is still pushed towards the *clean* images.  ``p``
    is a buffer that the training loop raises or lowers from D's overfitting signal
    (adaptive discriminator augmentation, Karras et al. 2020).

    The first fifteen keywords weight each transform's share of ``p`` (0 switches it off;
    ``AUGPIPE_SPECS`` holds the published presets); the rest set how strong a transform is
    when it fires.  Defaults are the paper's.
    """

    def __init__(
        self,
        # Weights on p: how often each transform fires relative to the others.
        xflip: float = 0,  # mirror left-right
        rotate90: float = 0,  # quarter turns (0, 90, 180 or 270 degrees)
        xint: float = 0,  # shift by whole pixels, wrapping around
        scale: float = 0,  # same zoom on both axes
        rotate: float = 0,  # turn by any angle (twice: before and after aniso)
        aniso: float = 0,  # stretch one axis, squeeze the other
        xfrac: float = 0,  # shift by a fraction of a pixel too
        brightness: float = 0,  # add a constant to every colour channel
        contrast: float = 0,  # multiply the colours around zero
        lumaflip: float = 0,  # mirror the colours along the luma axis
        hue: float = 0,  # turn the colours about the luma axis
        saturation: float = 0,  # push colours away from (or towards) grey
        imgfilter: float = 0,  # re-weight four frequency bands
        noise: float = 0,  # add Gaussian pixel noise to the colour channels
        cutout: float = 0,  # blank out one square
        # Strengths: how far a transform goes when it fires.
        xint_max: float = 0.125,  # largest whole-pixel shift, as a fraction of width/height
        scale_std: float = 0.2,  # std of log2(zoom factor)
        rotate_max: float = 1,  # largest angle, in units of pi (1 = any angle)
        aniso_std: float = 0.2,  # std of log2(stretch factor)
        xfrac_std: float = 0.125,  # std of the fractional shift, as a fraction of width/height
        brightness_std: float = 0.2,  # std of the added constant
        contrast_std: float = 0.5,  # std of log2(contrast factor)
        hue_max: float = 1,  # largest hue turn, in units of pi (1 = any angle)
        saturation_std: float = 1,  # std of log2(saturation factor)
        imgfilter_bands: Sequence[float] = (1, 1, 1, 1),  # weight of each band on imgfilter, lowest band first
        imgfilter_std: float = 1,  # std of log2(band gain)
        noise_std: float = 0.1,  # the noise sigma is |N(0, noise_std)| per image
        cutout_size: float = 0.5,  # side of the blanked square, as a fraction of width/height
    ):
        super().__init__()
        # p: the overall probability, set from outside (the ADA heuristic); saved in state_dict().
        self.register_buffer("p", torch.zeros([]))

        self.xflip, self.rotate90, self.xint = float(xflip), float(rotate90), float(xint)
        self.scale, self.rotate, self.aniso, self.xfrac = float(scale), float(rotate), float(aniso), float(xfrac)
        self.brightness, self.contrast, self.lumaflip = float(brightness), float(contrast), float(lumaflip)
        self.hue, self.saturation = float(hue), float(saturation)
        self.imgfilter, self.noise, self.cutout = float(imgfilter), float(noise), float(cutout)

        self.xint_max, self.xfrac_std = float(xint_max), float(xfrac_std)
        self.scale_std, self.rotate_max, self.aniso_std = float(scale_std), float(rotate_max), float(aniso_std)
        self.brightness_std, self.contrast_std = float(brightness_std), float(contrast_std)
        self.hue_max, self.saturation_std = float(hue_max), float(saturation_std)
        self.imgfilter_bands = [float(b) for b in imgfilter_bands]
        self.imgfilter_std, self.noise_std, self.cutout_size = float(imgfilter_std), float(noise_std), float(cutout_size)

        # Constants are recomputed on construction, so they stay out of state_dict().
        geom_filter = upfirdn2d.setup_filter(SYM6)
        self.register_buffer("geom_filter", geom_filter, persistent=False)
        self.register_buffer("filter_bank", build_filter_bank(SYM2), persistent=False)
        if len(self.imgfilter_bands) != self.filter_bank.shape[0]:
            raise ValueError(f"imgfilter_bands needs {self.filter_bank.shape[0]} entries, got {len(self.imgfilter_bands)}")
        # sym6 is only nearly symmetric: its centre of mass sits this many (original) pixels
        # off-centre after each 2x resampling.  The warp compensates it (see warp).
        taps = torch.arange(len(geom_filter), dtype=torch.float64)
        self.geom_delay = ((len(geom_filter) - 1) / 2 - float((taps * geom_filter.double()).sum())) / 2

    def forward(self, images: torch.Tensor, debug_percentile: Optional[float] = None) -> torch.Tensor:
        """Augment a batch [N, C, H, W] (C = 1, 3 or 4; values around [-1, 1]); same shape out."""
        misc.assert_shape(images, [None, None, None, None])
        n, c, h, w = images.shape
        if c not in (1, 3, 4):
            raise ValueError(f"AugmentPipe expects 1, 3 or 4 channels, got {c}")
        draws = _Draws(n, images.device, debug_percentile)
        x = self._blit(images, draws)
        x = self._geometric(x, draws)
        x = self._colour(x, draws)
        x = self._filter(x, draws)
        x = self._noise(x, draws)
        return self._cutout(x, draws)

    def _prob(self, multiplier: float) -> torch.Tensor:
        return self.p * multiplier

    # -- 1. pixel blitting ------------------------------------------------------------------

    def _blit(self, x: torch.Tensor, draws: _Draws) -> torch.Tensor:
        """Flips, quarter turns and whole-pixel shifts as index operations: exact, no resampling."""
        n, _, h, w = x.shape
        if self.xflip > 0:
            flip = draws.gated(self._prob(self.xflip), draws.integers(2))
            x = torch.where(flip[:, None, None, None] == 1, x.flip(3), x)
        if self.rotate90 > 0:
            if h != w:
                raise ValueError(f"rotate90 needs square images, got {h}x{w}")
            quarters = draws.gated(self._prob(self.rotate90), draws.integers(4))
            rotated = x
            for k in (1, 2, 3):
                rotated = torch.where(quarters[:, None, None, None] == k, torch.rot90(x, k, dims=(2, 3)), rotated)
            x = rotated
        if self.xint > 0:
            fires = draws.fires(self._prob(self.xint))
            tx = (draws.uniform() * 2 - 1) * self.xint_max
            ty = (draws.uniform() * 2 - 1) * self.xint_max
            shift_x = torch.where(fires, (tx * w).round(), torch.zeros_like(tx)).long()
            shift_y = torch.where(fires, (ty * h).round(), torch.zeros_like(ty)).long()
            x = _roll(x, shift_x, shift_y)
        return x

    # -- 2. general geometric ---------------------------------------------------------------

    def _geometric_matrix(self, draws: _Draws, width: int, height: int) -> torch.Tensor:
        """[N, 3, 3] maps from output to input pixel coordinates (origin at the image centre).

        Sampling pulls, so this is the *inverse* of the image transform: each
        step's inverse is multiplied on the right, in the order the steps are
        applied to the image.  Samples a step skips get its exact identity.
        """
        n, device = draws.n, draws.device
        inverse = _eye(n, 3, device)
        if self.scale > 0:
            s = torch.exp2(draws.gated(self._prob(self.scale), draws.normal() * self.scale_std))
            inverse = inverse @ _scale2d(1 / s, 1 / s)
        # Pre- and post-rotation each fire with 1 - sqrt(1 - P), so that at least one fires with P.
        rotate_prob = 1 - torch.sqrt(1 - self._prob(self.rotate).clamp(0, 1))
        if self.rotate > 0:
            theta = draws.gated(rotate_prob, (draws.uniform() * 2 - 1) * math.pi * self.rotate_max)
            inverse = inverse @ _rotate2d(-theta)
        if self.aniso > 0:
            s = torch.exp2(draws.gated(self._prob(self.aniso), draws.normal() * self.aniso_std))
            inverse = inverse @ _scale2d(1 / s, s)
        if self.rotate > 0:
            theta = draws.gated(rotate_prob, (draws.uniform() * 2 - 1) * math.pi * self.rotate_max)
            inverse = inverse @ _rotate2d(-theta)
        if self.xfrac > 0:
            fires = draws.fires(self._prob(self.xfrac))
            tx = torch.where(fires, draws.normal() * self.xfrac_std, torch.zeros([n], device=device))
            ty = torch.where(fires, draws.normal() * self.xfrac_std, torch.zeros([n], device=device))
            inverse = inverse @ _translate2d(-tx * width, -ty * height)
        return inverse

    def _geometric(self, x: torch.Tensor, draws: _Draws) -> torch.Tensor:
        if not (self.scale > 0 or self.rotate > 0 or self.aniso > 0 or self.xfrac > 0):
            return x
        n, _, h, w = x.shape
        matrix = self._geometric_matrix(draws, w, h)
        moved = (matrix != _eye(n, 3, x.device)).flatten(1).any(dim=1)
        return _on_subset(x, moved, self.warp, matrix)

    def warp(self, x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        """Resample x [N, C, H, W] at ``matrix`` @ (output pixel coordinates), without aliasing or leaks.

        Mirror-pad enough that every sample lands on image content, upsample 2x with
        the sym6 low-pass, sample bilinearly on a 2x output grid (with a margin for the
        next filter), downsample 2x with the same filter and crop the margin.  All
        coordinates are in original pixels with the origin at the image centre.
        """
        n, _, h, w = x.shape
        taps = len(self.geom_filter)
        margin = (taps + 3) // 4  # reach of the 2x filters, in original pixels
        dev = x.device

        # Input area seen by the output (with its margin), plus the filters' reach and the bilinear footprint.
        ext_x, ext_y = w / 2 + margin, h / 2 + margin
        corners = torch.tensor([[-ext_x, -ext_y, 1], [ext_x, -ext_y, 1], [ext_x, ext_y, 1], [-ext_x, ext_y, 1]], device=dev)
        seen = (corners @ matrix.transpose(1, 2))[..., :2].flatten(0, 1)
        low, high = seen.amin(dim=0).tolist(), seen.amax(dim=0).tolist()
        extra = margin + 2
        pads = [max(math.ceil(-w / 2 - low[0]), 0) + extra, max(math.ceil(high[0] - w / 2), 0) + extra,
                max(math.ceil(-h / 2 - low[1]), 0) + extra, max(math.ceil(high[1] - h / 2), 0) + extra]
        x = _reflect_pad(x, pads)
        x = upfirdn2d.upsample2d(x, self.geom_filter)

        # Sampling grid: 2x output pixel centres -> input coordinates -> grid_sample's [-1, 1].
        # Each 2x resampling moves content by +geom_delay; shifting the sample positions back
        # by the same amount, once per resampling, keeps the image where the matrix says.
        padded_w, padded_h = w + pads[0] + pads[1], h + pads[2] + pads[3]
        to_unit = _matrices([[2 / padded_w, 0, (w + 2 * pads[0]) / padded_w - 1],
                             [0, 2 / padded_h, (h + 2 * pads[2]) / padded_h - 1], [0, 0, 1]], n, dev)
        undelay = _translate2d(*torch.full([2, n], -self.geom_delay, device=dev))
        full = to_unit @ undelay @ matrix @ undelay
        xs = (torch.arange(2 * (w + 2 * margin), device=dev) + 0.5) / 2 - ext_x
        ys = (torch.arange(2 * (h + 2 * margin), device=dev) + 0.5) / 2 - ext_y
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)  # [2H', 2W', 3]
        grid = torch.einsum("hwk,njk->nhwj", points, full[:, :2, :])
        x = grid_sample_gradfix.grid_sample(x, grid.to(x.dtype))

        x = upfirdn2d.downsample2d(x, self.geom_filter)
        return x[:, :, margin:margin + h, margin:margin + w]

    # -- 3. colour --------------------------------------------------------------------------

    def _colour_matrix(self, draws: _Draws) -> torch.Tensor:
        """[N, 4, 4] homogeneous RGB transforms; each step multiplies on the left (applied after the previous ones).

        Luma is the mean of R, G and B (the axis v = (1, 1, 1)/sqrt(3)); every step is
        written as I + (parameter-dependent term), which is exactly I when it does not fire.
        """
        n, dev = draws.n, draws.device
        v = torch.full([3], 1 / math.sqrt(3), device=dev)
        along_luma = torch.outer(v, v)  # projection onto the luma axis
        eye3 = torch.eye(3, device=dev)
        colour = _eye(n, 4, dev)
        if self.brightness > 0:
            b = draws.gated(self._prob(self.brightness), draws.normal() * self.brightness_std)
            colour = _colour_affine(eye3.expand(n, 3, 3), b[:, None].expand(n, 3)) @ colour
        if self.contrast > 0:
            c = torch.exp2(draws.gated(self._prob(self.contrast), draws.normal() * self.contrast_std))
            colour = _colour_affine(eye3 * c[:, None, None]) @ colour
        if self.lumaflip > 0:
            flip = draws.gated(self._prob(self.lumaflip), draws.integers(2))
            colour = _colour_affine(eye3 - 2 * along_luma * flip[:, None, None]) @ colour
        if self.hue > 0:
            theta = draws.gated(self._prob(self.hue), (draws.uniform() * 2 - 1) * math.pi * self.hue_max)
            cross = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], device=dev) / math.sqrt(3)  # v x (.)
            rodrigues = eye3 + theta.sin()[:, None, None] * cross + (1 - theta.cos())[:, None, None] * (cross @ cross)
            colour = _colour_affine(rodrigues) @ colour
        if self.saturation > 0:
            s = torch.exp2(draws.gated(self._prob(self.saturation), draws.normal() * self.saturation_std))
            colour = _colour_affine(eye3 + (s - 1)[:, None, None] * (eye3 - along_luma)) @ colour
        return colour

    def _colour(self, x: torch.Tensor, draws: _Draws) -> torch.Tensor:
        if not any(m > 0 for m in (self.brightness, self.contrast, self.lumaflip, self.hue, self.saturation)):
            return x
        colour = self._colour_matrix(draws)
        if torch.equal(colour, _eye(draws.n, 4, x.device)):
            return x
        colour = colour.to(x.dtype)
        if x.shape[1] == 1:  # grey: the transform seen along the luma axis (hue and saturation drop out)
            gain = colour[:, :3, :3].sum(dim=2).mean(dim=1)
            offset = colour[:, :3, 3].mean(dim=1)
            return x * gain[:, None, None, None] + offset[:, None, None, None]
        rgb = torch.einsum("nij,njhw->nihw", colour[:, :3, :3], x[:, :3]) + colour[:, :3, 3, None, None]
        return torch.cat([rgb, x[:, 3:]], dim=1)  # alpha untouched

    # -- 4. image-space filtering -----------------------------------------------------------

    def _band_gains(self, draws: _Draws) -> torch.Tensor:
        """[N, 4] amplification of each frequency band, normalised to unit mean square.

        Natural images (power spectrum ~ 1/f^2) carry about the same power in each
        octave, so equal expected power per band is assumed and the mean squared
        gain is held at 1.  In debug mode the gains tilt linearly in log2 from the
        lowest band to the highest: percentiles above 0.5 sharpen, below 0.5 blur.
        """
        num_bands = len(self.imgfilter_bands)
        log_gains = []
        for band, multiplier in enumerate(self.imgfilter_bands):
            z = draws.normal()
            if draws.pct is not None:
                z = z * (2 * band / (num_bands - 1) - 1)
            log_gains.append(draws.gated(self._prob(self.imgfilter * multiplier), z * self.imgfilter_std))
        gains = torch.exp2(torch.stack(log_gains, dim=1))
        return gains / gains.square().mean(dim=1, keepdim=True).sqrt()

    def _filter(self, x: torch.Tensor, draws: _Draws) -> torch.Tensor:
        if self.imgfilter <= 0:
            return x
        gains = self._band_gains(draws)
        changed = (gains != 1).any(dim=1)
        return _on_subset(x, changed, _filter_per_sample, gains @ self.filter_bank)

    # -- 5. noise and 6. cutout -------------------------------------------------------------

    def _noise(self, x: torch.Tensor, draws: _Draws) -> torch.Tensor:
        """Gaussian noise with a per-sample sigma |N(0, noise_std)| on the colour channels."""
        if self.noise <= 0:
            return x
        sigma = draws.gated(self._prob(self.noise), draws.half_normal() * self.noise_std)
        if not bool((sigma != 0).any()):
            return x
        n, c, h, w = x.shape
        colour_channels = min(c, 3)
        noise = draws.noise([n, colour_channels, h, w]).to(x.dtype) * sigma.to(x.dtype)[:, None, None, None]
        return x + F.pad(noise, [0, 0, 0, 0, 0, c - colour_channels])

    def _cutout(self, x: torch.Tensor, draws: _Draws) -> torch.Tensor:
        """Zero a square of side cutout_size (relative to the image) centred uniformly at random."""
        if self.cutout <= 0:
            return x
        n, _, h, w = x.shape
        size = draws.gated(self._prob(self.cutout), torch.full([n], self.cutout_size, device=x.device))
        cx, cy = draws.uniform(), draws.uniform()
        px = (torch.arange(w, device=x.device) + 0.5) / w
        py = (torch.arange(h, device=x.device) + 0.5) / h
        outside_x = (px[None, :] - cx[:, None]).abs() >= size[:, None] / 2  # [N, W]
        outside_y = (py[None, :] - cy[:, None]).abs() >= size[:, None] / 2  # [N, H]
        keep = outside_x[:, None, :] | outside_y[:, :, None]
        return x * keep[:, None].to(x.dtype)
