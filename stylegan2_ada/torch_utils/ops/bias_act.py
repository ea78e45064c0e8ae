"""Add a bias, apply an activation, scale and clamp: the tail of every StyleGAN2 layer.

Each activation has a default ``alpha`` (its shape parameter) and a default
``gain`` chosen so that the activation roughly preserves the signal's variance
(``sqrt(2)`` for the ReLU family).  Clamping happens last, after the gain.
"""

import math
from typing import Callable, Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F

from . import compiled


class _ActivationSpec(NamedTuple):
    func: Callable
    def_alpha: float
    def_gain: float
    has_2nd_grad: bool


activation_funcs: Dict[str, _ActivationSpec] = {
    "linear": _ActivationSpec(lambda x, alpha: x, 0, 1, False),
    "relu": _ActivationSpec(lambda x, alpha: F.relu(x), 0, math.sqrt(2), False),
    "lrelu": _ActivationSpec(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2), False),
    "tanh": _ActivationSpec(lambda x, alpha: torch.tanh(x), 0, 1, True),
    "sigmoid": _ActivationSpec(lambda x, alpha: torch.sigmoid(x), 0, 1, True),
    "elu": _ActivationSpec(lambda x, alpha: F.elu(x), 0, 1, True),
    "selu": _ActivationSpec(lambda x, alpha: F.selu(x), 0, 1, True),
    "softplus": _ActivationSpec(lambda x, alpha: F.softplus(x), 0, 1, True),
    "swish": _ActivationSpec(lambda x, alpha: torch.sigmoid(x) * x, 0, math.sqrt(2), True),
}


def bias_act(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    impl: str = "ref",
) -> torch.Tensor:
    """Return ``clamp(act(x + b, alpha) * gain)`` with ``b`` broadcast along dimension ``dim``.

    ``alpha``/``gain`` default to the activation's own values; ``clamp=None`` disables clamping.
    """
    if act not in activation_funcs:
        raise ValueError(f"unknown activation '{act}'; expected one of {sorted(activation_funcs)}")
    spec = activation_funcs[act]
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias of shape {list(b.shape)} does not match dimension {dim} of {list(x.shape)}")
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp) if clamp is not None and clamp >= 0 else None
    slope = alpha if act == "lrelu" else 1.0
    if act in ("linear", "lrelu") and slope > 0 and gain > 0:
        if torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)):
            return _PiecewiseLinearBiasAct.apply(x, b, dim, slope, gain, clamp)
        return _bias_act_inplace(x, b, dim, slope, gain, clamp)

    if b is not None:
        x = x + _broadcastable(b, x.ndim, dim)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def _broadcastable(b: torch.Tensor, ndim: int, dim: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[dim] = -1
    return b.reshape(shape)


@compiled.kernel
def _bias_act_inplace(
    x: torch.Tensor, b: Optional[torch.Tensor], dim: int, slope: float, gain: float, clamp: Optional[float]
) -> torch.Tensor:
    """``clamp(gain * lrelu(x + b, slope))`` computed in one output buffer (``slope=1`` is linear).

    On CPUs these memory-bound steps cost more in allocations than in arithmetic.
    """
    x = x + _broadcastable(b, x.ndim, dim) if b is not None else x.clone()
    if slope != 1:
        torch.nn.functional.leaky_relu_(x, slope)
    if gain != 1:
        x.mul_(gain)
    if clamp is not None:
        x.clamp_(-clamp, clamp)
    return x


@compiled.kernel
def _piecewise_slope_grad(grad: torch.Tensor, y: torch.Tensor, slope: float, gain: float, clamp: Optional[float]) -> torch.Tensor:
    """``grad`` times the local slope of the activation, read off its output ``y``.

    ``y > 0`` exactly where the input was > 0 (gain > 0), and clamped outputs pass no gradient.
    """
    if slope != 1:
        grad = torch.ops.aten.leaky_relu_backward(grad, y, slope, True)
        if gain != 1:
            grad.mul_(gain)
    else:
        grad = grad * gain if gain != 1 else grad.clone()
    if clamp is not None:
        grad.masked_fill_(y.abs() >= clamp, 0)
    return grad


def _reaches(y: torch.Tensor, clamp: float) -> bool:
    """Whether any output sits at the clamp. On a CPU one min/max pass costs a fraction of building
    the mask (|y|, the comparison and the masked fill), and with ``conv_clamp`` 256 in fp32 training
    the clamp almost never acts; on a GPU reading the answer back would stall the stream."""
    low, high = torch.aminmax(y)
    return bool(high >= clamp) or bool(low <= -clamp)


class _PiecewiseLinearBiasAct(torch.autograd.Function):
    """linear/lrelu bias_act with a hand-written gradient that needs only the output.

    Autograd through the four separate steps would keep four tensors alive and run
    four backward kernels; the derivative of a piecewise-linear map is a mask.
    """

    @staticmethod
    def forward(ctx, x, b, dim, slope, gain, clamp):
        y = _bias_act_inplace(x, b, dim, slope, gain, clamp)
        ctx.save_for_backward(y)
        ctx.params = (dim, slope, gain, clamp, b is not None)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (y,) = ctx.saved_tensors
        dim, slope, gain, clamp, has_bias = ctx.params
        grad_x = _PiecewiseSlopeGrad.apply(grad_y, y, slope, gain, clamp)
        grad_b = None
        if has_bias and ctx.needs_input_grad[1]:
            grad_b = grad_x.sum([d for d in range(grad_x.ndim) if d != dim])
        return grad_x, grad_b, None, None, None, None


class _PiecewiseSlopeGrad(torch.autograd.Function):
    """The gradient map above; linear in the incoming gradient, so its own gradient is itself."""

    @staticmethod
    def forward(ctx, grad, y, slope, gain, clamp):
        if clamp is not None and y.device.type == "cpu" and not _reaches(y, clamp):
            clamp = None  # nothing was clamped, so there is nothing to mask
        ctx.save_for_backward(y)
        ctx.params = (slope, gain, clamp)
        return _piecewise_slope_grad(grad, y, slope, gain, clamp)

    @staticmethod
    def backward(ctx, grad_grad):
        (y,) = ctx.saved_tensors
        return _PiecewiseSlopeGrad.apply(grad_grad, y, *ctx.params), None, None, None, None
