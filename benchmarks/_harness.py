"""What the StyleGAN2-ADA benchmarks share: the implementation under test, the in-run baselines, the rounds.

This machine is shared and noisy, so a speed figure only means something next to a baseline measured
in the same run. There are two:

- the conv peak: a representative 3x3 convolution, timed in the same process just before each
  measurement, so a workload's GFLOP/s can be read as a fraction of what the machine gives right now;
- the official release, when ``--official PATH`` names a local clone of NVlabs' StyleGAN2-ADA PyTorch
  code: it runs the same workload through the same public API, in rounds interleaved with ours
  (ours, official, ours, official, ...), and the medians are compared.

Ours runs in every precision asked for (``--precision fp32,bf16``: float32, and bfloat16 in the
layers train.py marks for reduced precision, ``num_fp16_res=4, conv_clamp=256``); the official code
runs in float32, as it does on a CPU. Each of these runs in a worker process of its own (the bench
script run again with a hidden flag), and rounds visit them in turn: fp32, bf16, official, fp32, ... The official worker puts PATH first on ``sys.path`` and imports its top-level ``training``
package from there; nothing of ours is loaded into that process, so the official ``dnnlib``,
``torch_utils`` and ``training`` cannot clash with anything. Parent and workers exchange one JSON
object per line: the worker writes to its original stdout, and anything else it prints goes to stderr.
"""

import argparse
import contextlib
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

WORKER_FLAG = "--worker-spec"
OURS_PACKAGE = "stylegan2_ada.training"
OFFICIAL_PACKAGE = "training"  # top-level inside the official clone, next to dnnlib/ and torch_utils/
BENCH_PRECISIONS = ("fp32", "bf16", "fp16")
# Reduced-precision runs use train.py's defaults without --fp32: the 4 finest resolutions, clamped at 256.
REDUCED_ARCH = dict(num_fp16_res=4, conv_clamp=256)
FP32_ARCH = dict(num_fp16_res=0, conv_clamp=None)


class BenchError(Exception):
    """Something the user can fix (a bad --official PATH, a clone that does not import): one line, exit 1."""


# ------------------------------------------------------------------------------------------------
# The implementation under test (worker side).


@dataclass
class Implementation:
    """Where ``networks``, ``loss`` and ``augment`` come from: our package or the official clone's."""

    label: str  # "ours" or "official"
    package: str  # the package holding networks.py, loss.py and augment.py

    def module(self, name: str) -> Any:
        return importlib.import_module(f"{self.package}.{name}")

    def source(self) -> str:
        """The folder the modules are really imported from (so a run shows which code it measured)."""
        return os.path.dirname(os.path.abspath(self.module("networks").__file__))


def official_path_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a clone of the official release, or None when it looks like one."""
    if not os.path.isdir(path):
        return f"--official {path}: no such folder"
    if not os.path.isfile(os.path.join(path, OFFICIAL_PACKAGE, "networks.py")):
        return f"--official {path}: does not look like the StyleGAN2-ADA PyTorch release (no training/networks.py)"
    return None


def load_implementation(official: Optional[str]) -> Implementation:
    """Ours from the installed package; the official one from ``official`` (first on sys.path)."""
    if official is None:
        try:
            importlib.import_module(OURS_PACKAGE)
        except ImportError as err:
            raise BenchError(f"cannot import {OURS_PACKAGE} ({err}): install the project first "
                             "(`pip install -e .`, or `make env`)") from None
        return Implementation("ours", OURS_PACKAGE)
    sys.path.insert(0, official)
    impl = Implementation("official", OFFICIAL_PACKAGE)
    try:
        found = impl.source()
    except Exception as err:  # whatever the clone raises on import, the user has to fix the clone
        raise BenchError(f"--official {official}: importing {OFFICIAL_PACKAGE}.networks failed: "
                         f"{type(err).__name__}: {err}") from None
    expected = os.path.realpath(os.path.join(official, OFFICIAL_PACKAGE))
    if os.path.realpath(found) != expected:
        raise BenchError(f"--official {official}: {OFFICIAL_PACKAGE}.networks came from {found}, not from that clone")
    return impl


# ------------------------------------------------------------------------------------------------
# Measuring (worker side).


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock time covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _GlobalTotalOnly:
    """Stands in for FlopCounterMode's per-module tracker, whose autograd hooks make
    ``torch.autograd.grad`` with respect to a leaf input fail (R1 does exactly that); the
    benchmarks need only the global total, which the counter files under ``Global``."""

    parents = ("Global",)

    def __enter__(self) -> "_GlobalTotalOnly":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of one call, as torch.utils.flop_counter counts them (matmuls, convs)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalTotalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def best_seconds(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Fastest of ``repeats`` timed calls after one untimed call: the least disturbed by other users."""
    fn()
    synchronize(device)
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


class ConvPeak:
    """The machine's conv peak right now: a [batch, channels, size, size] 3x3 convolution, channels -> channels,
    in the worker's precision (float32 NCHW; a reduced type in NHWC, the layout its kernels prefer)."""

    def __init__(self, batch: int, channels: int, size: int, device: torch.device, precision: str = "fp32"):
        gen = torch.Generator().manual_seed(0)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        layout = torch.contiguous_format if precision == "fp32" else torch.channels_last
        self.x = torch.randn([batch, channels, size, size], generator=gen).to(device, dtype, memory_format=layout)
        self.w = torch.randn([channels, channels, 3, 3], generator=gen).to(device, dtype, memory_format=layout)
        self.device = device
        self.shape = f"{batch}x{channels}x{size}x{size}, 3x3, {channels}->{channels}, {precision}"
        self.flops = count_flops(self._conv)

    def _conv(self) -> torch.Tensor:
        return torch.nn.functional.conv2d(self.x, self.w, padding=1)

    def gflops(self, repeats: int) -> float:
        return self.flops / best_seconds(self._conv, repeats, self.device) / 1e9


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def describe_process(impl: Implementation, device: torch.device) -> Dict[str, Any]:
    return dict(label=impl.label, source=impl.source(), device=str(device), torch=torch.__version__,
                threads=torch.get_num_threads())


def architecture(config: Dict[str, Any]) -> Dict[str, Any]:
    """num_fp16_res and conv_clamp for the worker's precision (see REDUCED_ARCH)."""
    return dict(FP32_ARCH if config.get("precision", "fp32") == "fp32" else REDUCED_ARCH)


def cpu_description() -> Dict[str, Any]:
    """The CPU the figures come from: its model name and whether it has native bfloat16 units."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return dict(model=model, cores=os.cpu_count(), amx_bf16=caps.get("amx_bf16"), avx512_bf16=caps.get("avx512_bf16"))


def serve(spec_json: str, build: Callable[[Implementation, Dict[str, Any]], Any]) -> int:
    """The worker: build the workload, say so, then answer each ``round`` with one measurement.

    ``build(impl, config)`` returns an object with ``describe() -> dict`` (sent once, after set-up)
    and ``measure_round() -> dict``.
    """
    spec = json.loads(spec_json)
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything the code under test prints goes to stderr, never into the replies
    sys.stdout = sys.stderr

    def reply(message: Dict[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    threads = spec["config"].get("threads")
    if threads:
        torch.set_num_threads(threads)
    if spec["config"].get("compile") and spec["official"] is None:
        from stylegan2_ada.torch_utils.ops import compiled

        compiled.enable()
    with _precision_scope(spec):
        return _serve_rounds(spec, build, reply)


def _precision_scope(spec: Dict[str, Any]) -> Any:
    """Our precision scope for a reduced-precision worker of ours; nothing of ours for the official one."""
    name = spec["config"].get("precision", "fp32")
    if spec["official"] is not None or name == "fp32":
        return contextlib.nullcontext()
    from stylegan2_ada.torch_utils.precision import reduced_precision

    return reduced_precision(name)


def _serve_rounds(spec: Dict[str, Any], build: Callable[[Implementation, Dict[str, Any]], Any],
                  reply: Callable[[Dict[str, Any]], None]) -> int:
    try:
        impl = load_implementation(spec["official"])
        workload = build(impl, spec["config"])
        reply(dict(ready=True, **workload.describe()))
    except BenchError as err:
        reply(dict(error=str(err)))
        return 1
    except Exception as err:
        if spec["official"] is None:
            raise  # ours failing to set up is a bug: keep the traceback
        traceback.print_exc()
        reply(dict(error=f"--official {spec['official']}: setting up the benchmark failed: "
                         f"{type(err).__name__}: {err} (traceback above)"))
        return 1
    for command in sys.stdin:
        if command.strip() != "round":
            break
        reply(workload.measure_round())
    return 0


# ------------------------------------------------------------------------------------------------
# Orchestration (parent side).


@dataclass
class Contender:
    """One worker of a run: ours in one precision, or the official release (float32)."""

    label: str  # "fp32", "bf16", ... or "official"
    official: Optional[str]  # the clone's path for the official release, else None
    precision: str


def contenders(precisions: Sequence[str], official: Optional[str]) -> List[Contender]:
    """Ours in each precision, then the official release when a clone is given, in round order."""
    ours = [Contender(name, None, name) for name in precisions]
    return ours + ([Contender("official", official, "fp32")] if official else [])


class Worker:
    """One contender's worker process, driven one JSON line at a time."""

    def __init__(self, script: str, contender: Contender, config: Dict[str, Any]):
        self.label = contender.label
        spec = json.dumps(dict(official=contender.official, config=dict(config, precision=contender.precision)))
        self.process = subprocess.Popen([sys.executable, script, WORKER_FLAG, spec], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def receive(self) -> Dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise BenchError(f"the {self.label} worker exited with status {self.process.returncode} "
                             "(its error is above)")
        message = json.loads(line)
        if "error" in message:
            raise BenchError(message["error"])
        return message

    def measure_round(self) -> Dict[str, Any]:
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self, abort: bool = False) -> None:
        """Let the worker finish (end of its input), or, when the run failed, stop it at once."""
        if self.process.poll() is None:
            if abort:
                self.process.kill()
            else:
                self.process.stdin.close()
            self.process.wait()


@dataclass
class Runs:
    """What the workers said: each implementation's description and its per-round measurements."""

    info: Dict[str, Dict[str, Any]]
    rounds: Dict[str, List[Dict[str, Any]]]


def run_interleaved(script: str, config: Dict[str, Any], entrants: Sequence[Contender], rounds: int,
                    on_ready: Callable[[Dict[str, Dict[str, Any]]], None],
                    on_round: Callable[[int, Dict[str, Dict[str, Any]]], None]) -> Runs:
    """Start a worker per contender, then run ``rounds`` rounds visiting them in turn (fp32, bf16,
    official, fp32, ...). Nothing is printed until every worker has set up, so a clone that does
    not work fails with one line and no partial output."""
    labels = [entrant.label for entrant in entrants]
    workers = [Worker(script, entrant, config) for entrant in entrants]
    failed = True
    try:
        # The official worker is heard first: a clone that does not work is the likeliest failure.
        ready = {worker.label: worker.receive() for worker in reversed(workers)}
        info = {label: ready[label] for label in labels}
        on_ready(info)
        measured: Dict[str, List[Dict[str, Any]]] = {label: [] for label in labels}
        for index in range(rounds):
            this_round = {}
            for worker in workers:
                this_round[worker.label] = worker.measure_round()
                measured[worker.label].append(this_round[worker.label])
            on_round(index, this_round)
        failed = False
        return Runs(info, measured)
    finally:
        for worker in workers:
            worker.close(abort=failed)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def add_common_arguments(parser: argparse.ArgumentParser, rounds: int) -> None:
    parser.add_argument("--rounds", type=int, default=rounds,
                        help=f"interleaved measurement rounds, medians reported (default {rounds})")
    parser.add_argument("--official", metavar="PATH",
                        help="a local clone of the official StyleGAN2-ADA PyTorch release to compare against")
    parser.add_argument("--threads", type=int,
                        help="torch threads per worker (default: torch's choice); 1 is steadier on a busy machine")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile our bias_act/upfirdn2d kernels (stylegan2_ada.train --compile); "
                             "compilation happens while the workers set up")
    parser.add_argument("--precision", default="fp32,bf16",
                        help="our precisions to measure side by side, comma-separated from "
                             f"{', '.join(BENCH_PRECISIONS)} (default fp32,bf16); the official code runs in fp32")
    parser.add_argument(WORKER_FLAG, help=argparse.SUPPRESS)


def parse_precisions(text: str) -> List[str]:
    """``--precision`` as a list without repeats, or a BenchError naming the bad entry."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in BENCH_PRECISIONS:
            raise BenchError(f"--precision {text}: '{name}' is not one of {', '.join(BENCH_PRECISIONS)}")
    if not names or len(set(names)) != len(names):
        raise BenchError(f"--precision {text}: name each precision once")
    return names


def workload_config(args: argparse.Namespace) -> Dict[str, Any]:
    """What the workers build and time: the network size, batch and timing flags every bench script shares."""
    return dict(resolution=args.resolution, channel_base=args.cbase, channel_max=args.cmax, batch=args.batch,
                repeats=args.repeats, threads=args.threads, compile=args.compile)


def main(parser: argparse.ArgumentParser, build: Callable[[Implementation, Dict[str, Any]], Any],
         report: Callable[[argparse.Namespace, Dict[str, Any], List[Contender]], None]) -> None:
    """A bench script's entry point: worker mode, or check the flags and hand over to ``report``."""
    args = parser.parse_args()
    spec = getattr(args, WORKER_FLAG.lstrip("-").replace("-", "_"))
    if spec is not None:
        sys.exit(serve(spec, build))
    official = None if args.official is None else os.path.abspath(args.official)
    try:
        if args.rounds < 1:
            raise BenchError(f"--rounds {args.rounds}: need at least 1")
        if args.threads is not None and args.threads < 1:
            raise BenchError(f"--threads {args.threads}: need at least 1")
        problem = None if official is None else official_path_problem(official)
        if problem:
            raise BenchError(problem)
        report(args, workload_config(args), contenders(parse_precisions(args.precision), official))
    except BenchError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        sys.exit(1)


def ratio(numerator: float, denominator: float) -> Optional[float]:
    return numerator / denominator if denominator > 0 else None


def ratios(speeds: Dict[str, float]) -> Dict[str, Optional[float]]:
    """Every reduced precision over fp32, and each of ours over the official code, for the labels present:
    ``{"bf16_over_fp32": ..., "fp32_over_official": ..., "bf16_over_official": ...}``."""
    ours = [label for label in speeds if label != "official"]
    pairs = [(label, "fp32") for label in ours if label != "fp32" and "fp32" in speeds]
    pairs += [(label, "official") for label in ours if "official" in speeds]
    return {f"{top}_over_{bottom}": ratio(speeds[top], speeds[bottom]) for top, bottom in pairs}


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits (timings on a shared machine carry no more), recursively."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(item) for item in value]
    return value


def emit_json(record: Dict[str, Any]) -> None:
    """The machine-readable summary: always the script's last line of output."""
    print(json.dumps(_rounded(record)), flush=True)
