"""2D convolution combined with FIR up/downsampling, in the order StyleGAN2 defines it.

``conv2d_resample(x, w, f, up, down, padding)`` means: upsample ``x`` by ``up``
(zero insertion + the filter ``f``, gain ``up**2``), convolve with ``w`` using
``padding``, then filter with ``f`` and keep every ``down``-th sample.  The
paddings are widened so that the result stays centred on the input.

Every step is linear and shift-invariant, so they may be reordered: we pick the
order that does the least arithmetic (a strided convolution instead of
convolve-then-subsample, a transposed convolution instead of
convolve-the-zero-stuffed-image, 1x1 convolutions on the smaller side).
"""

from typing import Optional

import torch
import torch.nn.functional as F

from .upfirdn2d import IntPair, _as_padding, _filter_size, upfirdn2d


def _check_factor(value: int, name: str) -> int:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _correlate(x: torch.Tensor, w: torch.Tensor, stride: int, groups: int, flip_weight: bool) -> torch.Tensor:
    """Valid correlation (``flip_weight=True``) or convolution (``False``) of ``x`` with ``w``."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    return F.conv2d(x, w, stride=stride, groups=groups)


def _transposed_weight(w: torch.Tensor, groups: int, flip_weight: bool) -> torch.Tensor:
    """The [in, out/groups, kh, kw] kernel that makes ``conv_transpose2d`` equal to
    correlating (``flip_weight``) or convolving with ``w`` over a zero-stuffed input."""
    out_ch, in_per_group, kh, kw = w.shape
    w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
    w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
    return w.flip([2, 3]) if flip_weight else w


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: IntPair = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Convolve ``x`` [N, C, H, W] with ``w`` [O, C/groups, kh, kw], up/downsampling with ``f``.

    ``flip_weight=True`` correlates (what ``torch.nn.functional.conv2d`` does),
    ``False`` convolves; the two are equivalent up to a flip of the learned weight.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError("conv2d_resample expects 4D input and weight")
    if w.dtype != x.dtype:
        raise TypeError(f"weight dtype {w.dtype} differs from input dtype {x.dtype}")
    if f is None and (up > 1 or down > 1):
        raise ValueError("up/down sampling needs a resampling filter f")
    up = _check_factor(up, "up")
    down = _check_factor(down, "down")
    _, _, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _as_padding(padding)

    # Room for the resampling filter, so the output stays centred.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    pads = [px0, px1, py0, py1]
    pointwise = kw == 1 and kh == 1

    if pointwise and up == 1 and down > 1:
        # Shrink first, then mix channels on the small image.
        x = upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter)
        return _correlate(x, w, 1, groups, flip_weight)
    if pointwise and up > 1 and down == 1:
        # Mix channels on the small image, then enlarge.
        x = _correlate(x, w, 1, groups, flip_weight)
        return upfirdn2d(x, f, up=up, padding=pads, gain=up * up, flip_filter=flip_filter)
    if up > 1 and min(pads) >= 0:
        # Correlating a zero-stuffed image == transposed convolution with stride `up`;
        # its output spans kw-1 extra samples on the left and kw-up fewer on the right.
        x = F.conv_transpose2d(x, _transposed_weight(w, groups, flip_weight), stride=up, groups=groups)
        fir_pads = [px0 - (kw - 1), px1 + up - kw, py0 - (kh - 1), py1 + up - kh]
        x = upfirdn2d(x, f, padding=fir_pads, gain=up * up, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if up == 1 and down > 1:
        # Low-pass first, then a strided convolution does the subsampling.
        x = upfirdn2d(x, f, padding=pads, flip_filter=flip_filter)
        return _correlate(x, w, down, groups, flip_weight)

    if up > 1:
        # Negative padding crops the upsampled image itself: keep the defining order.
        x = upfirdn2d(x, f, up=up, padding=pads, gain=up * up, flip_filter=flip_filter)
        x = _correlate(x, w, 1, groups, flip_weight)
        return upfirdn2d(x, f, down=down, flip_filter=flip_filter) if down > 1 else x

    # No resampling: a plain convolution.
    if px0 == px1 == py0 == py1 and px0 >= 0:
        if not flip_weight and (kh > 1 or kw > 1):
            w = w.flip([2, 3])
        return F.conv2d(x, w, padding=px0, groups=groups)
    return _correlate(upfirdn2d(x, None, padding=pads), w, 1, groups, flip_weight)
