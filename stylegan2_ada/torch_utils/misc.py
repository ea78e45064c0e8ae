"""Small torch helpers shared by networks, training and tools."""

from typing import Iterable, Optional, Sequence, Union

import torch


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[Optional[Union[int, torch.Tensor]]]) -> None:
    """Fail loudly when ``tensor`` does not have ``ref_shape`` (``None`` matches any size).

    Cheap checks at module boundaries turn silent broadcasting bugs into one-line errors.
    """
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f"Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}")
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor):
            ref_size = int(ref_size)
        if int(size) != int(ref_size):
            raise AssertionError(f"Wrong size for dimension {idx}: got {int(size)}, expected {int(ref_size)}")


def named_params_and_buffers(module: torch.nn.Module) -> Iterable:
    """All parameters and buffers of ``module`` as ``(dotted_name, tensor)`` pairs."""
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(src_module: torch.nn.Module, dst_module: torch.nn.Module, require_all: bool = False) -> None:
    """Copy every parameter and buffer of ``src_module`` into the same-named tensor of ``dst_module``."""
    src_tensors = dict(named_params_and_buffers(src_module))
    for name, tensor in named_params_and_buffers(dst_module):
        if name in src_tensors:
            tensor.copy_(src_tensors[name].detach()).requires_grad_(tensor.requires_grad)
        elif require_all:
            raise KeyError(f"{name} is missing from the source module")
