"""Thin helpers over torch.distributed: one process per device, gradients averaged by hand.

Works the same whether processes were started by ``torchrun`` (possibly across
nodes), by ``train.py --gpus=N`` on one node, or not at all (a single process).
NCCL on GPUs, gloo on CPUs.
"""

import os
from typing import Iterable, Optional

import torch
import torch.distributed as dist


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def init_process_group(rank: int, world_size: int, init_method: Optional[str] = None) -> None:
    """Join the process group (env:// under torchrun, else ``init_method``), picking the backend from the device."""
    if world_size <= 1 or is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, init_method=init_method or "env://", rank=rank, world_size=world_size)


def pick_device(local_rank: int = 0) -> torch.device:
    """CUDA device ``local_rank`` when there is one, else Apple MPS for a single process, else the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if get_world_size() == 1 and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over all processes in one collective (DistributedDataParallel's job, done by hand)."""
    params = [p for p in params if p.grad is not None]
    if not params or not is_initialized():
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= get_world_size()
    for param, grad in zip(params, flat.split([p.numel() for p in params])):
        param.grad.copy_(grad.view_as(param.grad))


def average_tensors_(tensors: Iterable[torch.Tensor]) -> None:
    """Average floating-point tensors (e.g. running means in buffers) in place over all processes."""
    tensors = [t for t in tensors if t.is_floating_point()]
    if not tensors or not is_initialized():
        return
    flat = torch.cat([t.detach().flatten() for t in tensors])
    dist.all_reduce(flat)
    flat /= get_world_size()
    for tensor, value in zip(tensors, flat.split([t.numel() for t in tensors])):
        tensor.detach().copy_(value.view_as(tensor))


def broadcast_module_(module: torch.nn.Module, src: int = 0) -> None:
    """Make every process start from the same parameters and buffers as process ``src``."""
    if not is_initialized():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=src)
