"""Optional ``torch.compile`` of the ops' inner kernels (``train.py --compile``; off by default).

The official release fuses ``bias_act`` and ``upfirdn2d`` into hand-written CUDA kernels; ours are
chains of PyTorch calls, one memory pass each. Compiling lets TorchInductor fuse them. Only the
*forward kernels* are compiled, and only where they run without autograd (inside our
``autograd.Function``s, whose backward passes call the public ops again): compiled graphs do not
support double backward, which R1 and the path-length penalty need, while this arrangement keeps
every derivative order available.

Kernels are compiled on first use for each combination of argument shapes, types and constants (a
few dozen per network), so the first steps of a run are slow. Measured on the CPU only (see README); the GPU
benefit is unmeasured, which is why this stays off unless asked for.
"""

import functools
from typing import Any, Callable, Dict, Optional, Tuple

import torch

# Enough compiled variants per kernel for every layer shape, type and layout of G and D (shapes are
# static: the CPU kernel orders its taps by their extents, which dynamo cannot do with symbolic sizes).
RECOMPILE_LIMIT = 256

_backend: Optional[str] = None
_compiled: Dict[Tuple[Callable, str], Callable] = {}


def enable(backend: str = "inductor") -> None:
    """Compile the decorated kernels from now on (``backend``: any torch.compile backend)."""
    global _backend
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
    _backend = backend


def disable() -> None:
    """Back to the plain PyTorch kernels (compiled ones are kept for a later ``enable``)."""
    global _backend
    _backend = None


def enabled() -> bool:
    return _backend is not None


def kernel(fn: Callable) -> Callable:
    """Decorator: call ``fn`` itself, or its compiled version while compilation is enabled."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if _backend is None:
            return fn(*args, **kwargs)
        key = (fn, _backend)
        if key not in _compiled:
            _compiled[key] = torch.compile(fn, backend=_backend, dynamic=False)
        return _compiled[key](*args, **kwargs)

    return run
