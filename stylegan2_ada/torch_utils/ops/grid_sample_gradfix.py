"""Bilinear ``grid_sample`` whose input gradient can itself be differentiated.

PyTorch's native backward of ``grid_sample`` is not differentiable, but R1
regularisation through the augmentation pipeline needs the gradient of the
input gradient.  That gradient is linear in the incoming gradient, and its own
derivative is simply ``grid_sample`` again, which is what we return.  Second
derivatives with respect to the sampling grid are not needed (the grid comes
from random augmentation parameters) and are refused.
"""

import torch
import torch.nn.functional as F

_BILINEAR, _ZEROS = 0, 0


def grid_sample(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(input, grid, 'bilinear', 'zeros', align_corners=False)`` with double backward."""
    return _GridSample2d.apply(input, grid)


class _GridSample2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(input, grid)
        return F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        input, grid = ctx.saved_tensors
        return _GridSample2dBackward.apply(grad_output, input, grid)


class _GridSample2dBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_output: torch.Tensor, input: torch.Tensor, grid: torch.Tensor):
        ctx.save_for_backward(grid)
        grad_input, grad_grid = torch.ops.aten.grid_sampler_2d_backward(
            grad_output, input, grid, _BILINEAR, _ZEROS, False, [ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        )
        return grad_input, grad_grid

    @staticmethod
    def backward(ctx, grad2_grad_input: torch.Tensor, grad2_grad_grid: torch.Tensor):
        (grid,) = ctx.saved_tensors
        if ctx.needs_input_grad[2]:
            raise NotImplementedError("second derivatives of grid_sample with respect to the grid are not supported")
        grad2_grad_output = None
        if ctx.needs_input_grad[0] and grad2_grad_input is not None:
            grad2_grad_output = grid_sample(grad2_grad_input, grid)
        return grad2_grad_output, None, None
