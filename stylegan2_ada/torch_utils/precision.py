"""Which floating-point type the reduced-precision layers use, and on which hardware it pays.

StyleGAN2-ADA marks its finest resolutions for half precision (``num_fp16_res``; the mapping network,
the 4x4 block, the discriminator's epilogue, losses and optimiser state always stay float32). What
"half" means depends on the hardware:

* ``fp16`` on CUDA GPUs, as the official release does (``conv_clamp`` keeps activations in range);
* ``bf16`` on CPUs with bfloat16 matrix units (Intel AMX, AVX512-BF16): float32's exponent range at
  half the bytes, so no clamping or loss scaling is needed for range;
* ``fp32`` where neither pays: the marked layers then compute in float32, with unchanged results.

A run names one of these, or ``auto``, and :func:`resolve` turns it into a concrete choice once, at
start-up. The choice is then applied by :func:`reduced_precision`, a scope around the code that runs
the networks; outside any scope the networks keep their historical behaviour (float16 on CUDA,
float32 elsewhere), so code that never mentions precision computes exactly what it always did.
"""

import contextlib
import contextvars
import functools
import time
from dataclasses import dataclass
from typing import Dict, Iterator, Optional

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES: Dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# auto on a CPU with AVX512-BF16 but no AMX picks bf16 only if a short probe runs it at least this much
# faster than float32: without AMX the bf16 dot-product units can be slower than float32 FMAs.
PROBE_MIN_SPEEDUP = 1.2

_scope: contextvars.ContextVar[Optional[torch.dtype]] = contextvars.ContextVar("reduced_precision", default=None)


class PrecisionError(ValueError):
    """A precision this device cannot run (a one-line message naming it)."""


@dataclass(frozen=True)
class Choice:
    """A resolved precision: ``name`` is fp32, bf16 or fp16; ``reason`` says why, for the log."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]


# --- what the hardware has ---------------------------------------------------------------------------

def cpu_bf16_units() -> Dict[str, bool]:
    """The CPU's native bfloat16 instructions, as the ISA report torch reads from CPUID gives them.

    ``amx_bf16``: AMX tiles (Sapphire Rapids and later); ``avx512_bf16``: AVX-512 bf16 dot products.
    Older torch without ``torch.cpu.get_capabilities`` falls back to the kernel's flags on Linux.
    """
    report = getattr(torch.cpu, "get_capabilities", None)
    if report is not None:
        caps = report()
        return {unit: bool(caps.get(unit, False)) for unit in ("amx_bf16", "avx512_bf16")}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        flags = set()
    return {unit: unit in flags for unit in ("amx_bf16", "avx512_bf16")}


def _conv_step_seconds(dtype: torch.dtype, x: torch.Tensor, w: torch.Tensor) -> float:
    """One 3x3 convolution forward and backward (input and weight gradients) in ``dtype``, NHWC."""
    x = x.to(dtype).requires_grad_(True)
    w = w.to(dtype).requires_grad_(True)
    start = time.perf_counter()
    y = torch.nn.functional.conv2d(x, w, padding=1)
    y.backward(torch.ones_like(y))
    return time.perf_counter() - start


@functools.lru_cache(maxsize=1)
def bf16_probe_speedup(rounds: int = 3) -> float:
    """float32 seconds over bfloat16 seconds for a small training-like convolution on this CPU.

    Rounds alternate the two types and each keeps its fastest time, so other load on the machine
    hurts both alike; one thread, because threads fighting over busy cores distort both far more
    than they differ. About a second, most of it oneDNN building its kernels; cached for the process.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([8, 128, 16, 16], generator=gen).to(memory_format=torch.channels_last)
    w = torch.randn([128, 128, 3, 3], generator=gen).to(memory_format=torch.channels_last)
    best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for dtype in best:  # first calls build oneDNN's kernels; not timed
            _conv_step_seconds(dtype, x, w)
        for _ in range(rounds):
            for dtype in best:
                best[dtype] = min(best[dtype], _conv_step_seconds(dtype, x, w))
    finally:
        torch.set_num_threads(threads)
    return best[torch.float32] / best[torch.bfloat16]


# --- resolving a requested precision -------------------------------------------------------------------

def _auto_cpu() -> Choice:
    units = cpu_bf16_units()
    if not any(units.values()):
        return Choice("fp32", "auto: this CPU reports no native bfloat16 (no AMX-BF16, no AVX512-BF16)")
    native = "AMX-BF16" if units["amx_bf16"] else "AVX512-BF16 without AMX"
    speedup = bf16_probe_speedup()
    if speedup >= PROBE_MIN_SPEEDUP:
        return Choice("bf16", f"auto: {native}; a bf16 convolution probe ran {speedup:.2f}x float32")
    return Choice("fp32", f"auto: {native}, but a bf16 convolution probe ran only {speedup:.2f}x float32 "
                          f"(bf16 needs >= {PROBE_MIN_SPEEDUP}x)")


def resolve(requested: str, device: torch.device) -> Choice:
    """Turn fp32/bf16/fp16/auto into a concrete choice for ``device``.

    ``auto``: float16 on CUDA (the official mixed precision), bfloat16 on a CPU whose bf16 units
    run it faster than float32, float32 otherwise. An explicit choice is kept; fp16 and bf16 also
    run on the CPU (slowly where there are no native units), which is how the GPU path is tested.
    """
    if requested not in PRECISIONS:
        raise PrecisionError(f"unknown precision '{requested}' (expected one of {', '.join(PRECISIONS)})")
    device = torch.device(device)
    if requested != "auto":
        if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise PrecisionError("bf16: this GPU has no bfloat16 support; use fp16 or fp32")
        return Choice(requested, "requested")
    if device.type == "cuda":
        return Choice("fp16", "auto: CUDA, float16 as the official release")
    if device.type == "cpu":
        return _auto_cpu()
    return Choice("fp32", f"auto: float32 on {device.type}")


# --- applying it ------------------------------------------------------------------------------------------

@contextlib.contextmanager
def reduced_precision(name: Optional[str]) -> Iterator[None]:
    """Within this scope the layers marked for half precision compute in ``name``'s type
    (fp32, bf16 or fp16); ``None`` leaves the device default in place."""
    if name is None:
        yield
        return
    if name not in DTYPES:
        raise PrecisionError(f"reduced_precision needs a resolved precision ({', '.join(DTYPES)}), got '{name}'")
    token = _scope.set(DTYPES[name])
    try:
        yield
    finally:
        _scope.reset(token)


def reduced_dtype(device: torch.device) -> torch.dtype:
    """The type of a half-precision layer on ``device`` right now: the scope's, else float16 on CUDA
    and float32 elsewhere."""
    chosen = _scope.get()
    if chosen is not None:
        return chosen
    return torch.float16 if device.type == "cuda" else torch.float32
