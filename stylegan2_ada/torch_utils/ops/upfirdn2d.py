"""Upsample, FIR-filter and downsample 2D images: the resampling primitive of StyleGAN2.

``upfirdn2d(x, f, up, down, padding)`` is, per channel and per axis:
insert ``up - 1`` zeros after every sample, pad (or crop, for negative values),
convolve with the FIR filter ``f`` (a *true* convolution unless
``flip_filter=True``), and keep every ``down``-th sample.  The helpers
``filter2d``/``upsample2d``/``downsample2d`` choose the padding that keeps the
image centred.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

from . import compiled

FilterLike = Union[None, float, Sequence[float], np.ndarray, torch.Tensor]
IntPair = Union[int, Sequence[int]]


def _as_pair(value: IntPair) -> Tuple[int, int]:
    """``up``/``down`` factors as (x, y)."""
    if isinstance(value, int):
        return value, value
    x, y = value
    return int(x), int(y)


def _as_padding(padding: IntPair) -> Tuple[int, int, int, int]:
    """Padding as (x0, x1, y0, y1) from an int, [x, y] or [x0, x1, y0, y1]."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return tuple(padding)  # type: ignore[return-value]
    raise ValueError(f"padding must be an int or a list of 2 or 4 ints, got {padding}")


def _filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """(width, height) of a 1D (separable) or 2D filter; 1x1 when there is none."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1D or 2D, got {f.ndim}D")
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(
    f: FilterLike,
    device: torch.device = torch.device("cpu"),
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: Optional[bool] = None,
) -> torch.Tensor:
    """Turn a list/array of taps into the float32 filter tensor the other ops take.

    A 1D list becomes its outer product (a 2D filter) unless it is long enough
    (>= 8 taps) for separable application to pay off, or ``separable`` says so.
    ``normalize`` makes the taps sum to one; ``gain`` is spread over the axes so
    that the overall amplification equals ``gain``.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f.reshape(1)
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError("filter taps must be a non-empty 1D or 2D array")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("a separable filter must be 1D")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _rank_one_factors(f: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Column and row vectors whose outer product is exactly ``f``, if ``f`` is rank one.

    Filtering with two 1D passes costs 2k instead of k^2 multiply-adds per pixel.
    The check is exact up to float rounding, so results stay within tolerance.
    """
    if f.ndim != 2 or min(f.shape) < 2 or f.requires_grad:
        return None
    pivot_row = int(f.abs().sum(dim=1).argmax())
    pivot_col = int(f[pivot_row].abs().argmax())
    pivot = f[pivot_row, pivot_col]
    if pivot == 0:
        return None
    col = f[:, pivot_col]
    row = f[pivot_row] / pivot
    if not torch.allclose(torch.outer(col, row), f, rtol=1e-6, atol=1e-7 * float(f.abs().max())):
        return None
    return col, row


def _zero_stuff(x: torch.Tensor, upx: int, upy: int) -> torch.Tensor:
    """Insert ``up - 1`` zeros after every sample along each axis."""
    if upx == 1 and upy == 1:
        return x
    n, c, h, w = x.shape
    out = x.new_zeros([n, c, h, upy, w, upx])
    out[:, :, :, 0, :, 0] = x
    return out.reshape(n, c, h * upy, w * upx)


def _pad_or_crop(x: torch.Tensor, pads: Tuple[int, int, int, int]) -> torch.Tensor:
    """Zero-pad positive amounts and crop negative ones, (x0, x1, y0, y1)."""
    x0, x1, y0, y1 = pads
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-y0, 0) : h - max(-y1, 0), max(-x0, 0) : w - max(-x1, 0)]


def _depthwise(x: torch.Tensor, taps: torch.Tensor, stride: Tuple[int, int] = (1, 1)) -> torch.Tensor:
    """Correlate every channel of ``x`` with the same 2D kernel ``taps``."""
    channels = x.shape[1]
    weight = taps[None, None].expand(channels, 1, *taps.shape)
    return F.conv2d(x, weight, stride=stride, groups=channels)


def _fir_axis(x: torch.Tensor, taps: List[float], dim: int, pad0: int, pad1: int, stride: int) -> torch.Tensor:
    """Zero-pad ``x`` by (pad0, pad1) along ``dim``, correlate with ``taps``, keep every ``stride``-th sample.

    CPU path: a depthwise convolution is several times slower there than adding
    a few shifted, scaled views of the input into one output buffer, and the
    padding is folded into which part of the buffer each view lands in (no
    padded copy is made).  Negative padding crops.
    """
    length, num_taps = x.shape[dim], len(taps)
    out_len = (length + pad0 + pad1 - num_taps) // stride + 1
    if out_len <= 0:
        raise ValueError(f"a {num_taps}-tap filter does not fit an input of size {length} padded by ({pad0}, {pad1})")
    spans = []
    for offset, tap in enumerate(taps):
        # Output i reads input i * stride + offset - pad0; keep the i where that exists.
        first = max(0, -((offset - pad0) // stride))
        last = min(out_len, (length - 1 + pad0 - offset) // stride + 1)
        if tap != 0 and last > first:
            spans.append((last - first < out_len, first, last, offset, tap))
    spans.sort()  # taps covering the whole output first: the first one initialises the buffer

    out = None
    for partial, first, last, offset, tap in spans:
        view = x.narrow(dim, first * stride + offset - pad0, (last - first - 1) * stride + 1)
        if stride > 1:
            view = view[:, :, ::stride] if dim == 2 else view[:, :, :, ::stride]
        if out is None and not partial:
            out = view * tap
            continue
        if out is None:
            out = x.new_zeros(x.shape[:dim] + (out_len,) + x.shape[dim + 1:])
        out.narrow(dim, first, last - first).add_(view, alpha=tap)
    return out if out is not None else x.new_zeros(x.shape[:dim] + (out_len,) + x.shape[dim + 1:])


def upfirdn2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: IntPair = 1,
    down: IntPair = 1,
    padding: IntPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "ref",
) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter and downsample ``x`` of shape [N, C, H, W].

    Output height is ``(H * up + pad_y0 + pad_y1 - filter_h) // down + 1`` (same for width).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError("upfirdn2d expects a 4D tensor [N, C, H, W]")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    up, down, pads = _as_pair(up), _as_pair(down), _as_padding(padding)
    prepared = _prepared_filter(f, flip_filter, gain, x.dtype)
    cpu_separable = x.device.type == "cpu" and prepared.factors is not None
    if not f.requires_grad and (cpu_separable or compiled.enabled()):
        return _UpFirDn2dFixedFilter.apply(x, f, prepared, up, down, pads, flip_filter, gain)
    return _upfirdn2d_conv(x, prepared.taps, prepared.factors, up, down, pads)


class _PreparedFilter(NamedTuple):
    """A filter made ready for one call: oriented taps with the gain, their rank-one (column, row)
    split when there is one, and that split as Python floats for the CPU's shifted-view sums."""

    taps: torch.Tensor
    factors: Optional[Tuple[torch.Tensor, torch.Tensor]]
    factor_lists: Optional[Tuple[List[float], List[float]]]


# Per filter tensor (the networks' resample filters are fixed buffers), keyed by what the preparation
# reads. Working it out takes a dozen small ops and four host reads, about 0.2 ms a call on a CPU: more
# than filtering a small feature map, and a training step calls the op dozens of times.
_prepared_cache: "WeakIdKeyDictionary" = WeakIdKeyDictionary()


# While torch.compile traces a caller, the cache (a Python dict keyed by tensor identity) stays out of the graph.
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


def _prepared_filter(f: torch.Tensor, flip_filter: bool, gain: float, dtype: torch.dtype) -> _PreparedFilter:
    """Taps and factors of ``f`` for this call, from the cache when ``f`` has not changed since.

    Filters being learnt (``requires_grad``) and inference tensors (no version counter to notice
    in-place changes by) are prepared afresh every time, and so is everything under
    ``torch.inference_mode`` (its taps could not be saved for a later backward pass) or torch.compile tracing."""
    cacheable = (not f.requires_grad and not f.is_inference() and not torch.is_inference_mode_enabled()
                 and not torch.jit.is_tracing() and not _is_compiling())
    if not cacheable:
        return _prepare(f, flip_filter, gain, dtype)
    per_filter = _prepared_cache.get(f)
    if per_filter is None or per_filter[0] != f._version:  # new, or changed in place since
        per_filter = _prepared_cache[f] = (f._version, {})
    key = (bool(flip_filter), float(gain), dtype)  # the device is the filter's own, fixed with it
    if key not in per_filter[1]:
        per_filter[1][key] = _prepare(f, flip_filter, gain, dtype)
    return per_filter[1][key]


def _prepare(f: torch.Tensor, flip_filter: bool, gain: float, dtype: torch.dtype) -> _PreparedFilter:
    taps = _oriented_taps(f, flip_filter, gain, dtype)
    factors = (taps, taps) if taps.ndim == 1 else _rank_one_factors(taps)
    lists = None if factors is None or factors[0].requires_grad else (factors[0].tolist(), factors[1].tolist())
    return _PreparedFilter(taps, factors, lists)


def _oriented_taps(f: torch.Tensor, flip_filter: bool, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """The filter with its gain, flipped unless ``flip_filter``: conv2d correlates, and
    flipping the taps makes that the convolution the op is defined as."""
    taps = (f * (gain ** (f.ndim / 2))).to(dtype)
    return taps if flip_filter else taps.flip(list(range(taps.ndim)))


def _upfirdn2d_conv(x, taps, factors, up, down, pads) -> torch.Tensor:
    """Reference formulation with depthwise convolutions (GPUs, learnable or non-separable filters).

    ``taps`` are the oriented filter taps; ``factors`` their (column, row) split when separable.
    """
    x = _pad_or_crop(_zero_stuff(x, *up), pads)
    if factors is None:
        return _depthwise(x, taps, stride=(down[1], down[0]))
    col, row = factors
    x = _depthwise(x, row[None, :], stride=(1, down[0]))
    return _depthwise(x, col[:, None], stride=(down[1], 1))


@compiled.kernel
def _separable_sums(x: torch.Tensor, row: List[float], col: List[float], up: Tuple[int, int],
                    down: Tuple[int, int], pads: Tuple[int, int, int, int]) -> torch.Tensor:
    """The CPU kernel: zero insertion, then the row pass and the column pass as sums of shifted views."""
    y = _zero_stuff(x, *up)
    y = _fir_axis(y, row, dim=3, pad0=pads[0], pad1=pads[1], stride=down[0])
    return _fir_axis(y, col, dim=2, pad0=pads[2], pad1=pads[3], stride=down[1])


# The depthwise-convolution form for use without autograd (inside the Function below) only.
_compiled_conv = compiled.kernel(_upfirdn2d_conv)


class _UpFirDn2dFixedFilter(torch.autograd.Function):
    """upfirdn2d with a fixed filter as one autograd node: the CPU's separable sums, or the
    depthwise-convolution form compiled (``compiled.enable``), with its own gradient.

    The gradient of upfirdn2d is upfirdn2d again, with the filter flipped, up and
    down swapped and the padding mirrored; calling the public op for it keeps
    higher derivatives available and avoids autograd's costly bookkeeping for
    the in-place view arithmetic of :func:`_fir_axis`.
    """

    @staticmethod
    def forward(ctx, x, f, prepared, up, down, pads, flip_filter, gain):
        ctx.save_for_backward(f)
        ctx.params = (up, down, pads, flip_filter, gain, x.shape)
        if x.device.type == "cpu" and prepared.factor_lists is not None:
            col, row = prepared.factor_lists
            y = _separable_sums(x, row, col, up, down, pads)
        else:
            y = _compiled_conv(x, prepared.taps, prepared.factors, up, down, pads)
        ctx.out_shape = y.shape
        return y

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        up, down, pads, flip_filter, gain, in_shape = ctx.params
        fw, fh = _filter_size(f)
        grad_pads = []
        for in_len, out_len, u, d, k, p0 in [(in_shape[3], ctx.out_shape[3], up[0], down[0], fw, pads[0]),
                                            (in_shape[2], ctx.out_shape[2], up[1], down[1], fh, pads[2])]:
            g0 = k - 1 - p0
            grad_pads += [g0, (in_len - 1) * u + k - out_len * d - g0]
        grad_x = upfirdn2d(grad, f, up=down, down=up, padding=grad_pads, flip_filter=not flip_filter, gain=gain)
        return grad_x, None, None, None, None, None, None, None


def filter2d(
    x: torch.Tensor, f: Optional[torch.Tensor], padding: IntPair = 0, flip_filter: bool = False, gain: float = 1, impl: str = "ref"
) -> torch.Tensor:
    """Filter ``x`` with ``f`` keeping its size (plus ``padding``)."""
    x0, x1, y0, y1 = _as_padding(padding)
    fw, fh = _filter_size(f)
    pads = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pads, flip_filter=flip_filter, gain=gain)


def upsample2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: IntPair = 2,
    padding: IntPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "ref",
) -> torch.Tensor:
    """Upsample ``x`` by ``up`` with the interpolation filter ``f``; the output is ``up`` times larger."""
    upx, upy = _as_pair(up)
    x0, x1, y0, y1 = _as_padding(padding)
    fw, fh = _filter_size(f)
    pads = [x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2, y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=pads, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    down: IntPair = 2,
    padding: IntPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "ref",
) -> torch.Tensor:
    """Low-pass filter ``x`` with ``f`` and keep every ``down``-th sample."""
    downx, downy = _as_pair(down)
    x0, x1, y0, y1 = _as_padding(padding)
    fw, fh = _filter_size(f)
    pads = [x0 + (fw - downx + 1) // 2, x1 + (fw - downx) // 2, y0 + (fh - downy + 1) // 2, y1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter, gain=gain)

