"""The shared training loop, split into setup, one training step, and per-tick maintenance.

``training_loop(**options)`` keeps the official entry point and keyword names. What is trained is a
*task* (``task.py``): StyleGAN2-ADA by default, any registered plug-in when ``task_kwargs.class_name``
names one. Every process runs the same code on its shard of each global batch; gradients and buffers
are averaged across processes, and only process 0 writes files.
"""

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import psutil
import torch
from tqdm import tqdm

from .. import dnnlib, legacy
from ..torch_utils import distributed, training_stats
from ..torch_utils.ops import compiled
from ..torch_utils.precision import PRECISIONS, Choice, PrecisionError, reduced_precision, resolve
from .loss import NonFiniteLossError
from .task import DEFAULT_TASK, TrainingError, TrainingTask


# ----------------------------------------------------------------------------------------------
# Data.


class ShardedInfiniteSampler(torch.utils.data.Sampler):
    """An endless shuffled stream of dataset indices, dealt out sample by sample across processes.

    Process ``r`` of ``W`` takes stream positions r, r+W, r+2W, ...; so one global
    batch is split across processes the same way as minibatch-std groups split
    it within one process, and W processes see exactly what one process would.
    """

    def __init__(self, dataset_size: int, rank: int = 0, num_replicas: int = 1, shuffle: bool = True, seed: int = 0):
        self.dataset_size = dataset_size
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        rnd = np.random.RandomState(self.seed)
        position = 0
        while True:
            order = rnd.permutation(self.dataset_size) if self.shuffle else np.arange(self.dataset_size)
            for idx in order:
                if position % self.num_replicas == self.rank:
                    yield int(idx)
                position += 1


# ----------------------------------------------------------------------------------------------
# State.


@dataclass
class Phase:
    """One optimisation phase: ``name`` is what the loss is asked to run (``Gmain``, ``Dreg``, ...)."""

    name: str
    network: str
    opt: torch.optim.Optimizer
    interval: int


@dataclass
class Session:
    """Everything the step and the maintenance need; built once by :func:`setup`."""

    options: Dict[str, Any]
    device: torch.device
    rank: int
    num_gpus: int
    training_set: Any
    data_iter: Any
    task: TrainingTask
    networks: Dict[str, Optional[torch.nn.Module]] = field(default_factory=dict)
    loss: Any = None
    phases: List[Phase] = field(default_factory=list)
    stats: Optional[training_stats.Collector] = None
    cur_nimg: int = 0
    cur_tick: int = 0
    batch_idx: int = 0
    tick_start_nimg: int = 0
    timing: Dict[str, float] = field(default_factory=dict)
    precision: Optional[Choice] = None  # the reduced-precision type in use; None = the device default

    # The StyleGAN2 names, for readers and for tasks that use them.
    G = property(lambda self: self.networks.get("G"))
    D = property(lambda self: self.networks.get("D"))
    G_ema = property(lambda self: self.networks.get("G_ema"))
    augment_pipe = property(lambda self: self.networks.get("augment_pipe"))

    def optimizer(self, network: str) -> torch.optim.Optimizer:
        """The optimiser of a trained network, found by the network's name."""
        return next(phase.opt for phase in self.phases if phase.network == network)


def log(session_or_rank, message: str, run_dir: Optional[str] = None) -> None:
    """Print on process 0 and append to the run's ``log.txt``."""
    rank = session_or_rank if isinstance(session_or_rank, int) else session_or_rank.rank
    if rank != 0:
        return
    print(message, flush=True)
    if run_dir:
        with open(os.path.join(run_dir, "log.txt"), "a", encoding="utf-8") as f:
            f.write(message + "\n")


# ----------------------------------------------------------------------------------------------
# Setup.


def _make_optimizer(params, opt_kwargs: Dict[str, Any], ratio: float) -> torch.optim.Optimizer:
    """The optimiser ``opt_kwargs`` names (Adam by default). With lazy regularisation (``ratio`` < 1)
    the learning rate and Adam's betas are raised to the power ``ratio`` = interval / (interval + 1),
    so the penalty's effective strength per image is unchanged."""
    kwargs = dict(opt_kwargs)
    class_name = kwargs.pop("class_name", "torch.optim.Adam")
    kwargs["lr"] = kwargs["lr"] * ratio
    if "betas" in kwargs:
        kwargs["betas"] = tuple(beta**ratio for beta in kwargs["betas"])
    params = list(params)
    if class_name == "torch.optim.Adam" and "fused" not in kwargs and "foreach" not in kwargs:
        try:
            # One kernel for all parameters: the same update, about 5x faster than Adam's per-tensor loop on a
            # CPU, where a small network's optimiser step is a noticeable share of the training step.
            return torch.optim.Adam(params, fused=True, **kwargs)
        except (RuntimeError, ValueError):
            pass  # torch < 2.4 has no fused Adam on the CPU; the default implementation does the same update
    return dnnlib.util.construct_class_by_name(params, class_name=class_name, **kwargs)


def _make_phases(session: Session, resumed: Optional[Dict[str, Any]]) -> List[Phase]:
    """``<name>main`` + ``<name>reg`` per trained network (``<name>both`` without lazy regularisation);
    optimiser moments come back from the resume file by network name when their layout matches."""
    opts = session.options
    phases = []
    for name in session.task.trained:
        interval = opts.get(f"{name}_reg_interval")
        ratio = 1 if interval is None else interval / (interval + 1)
        opt = _make_optimizer(session.task.trainable_parameters(session, name), opts[f"{name}_opt_kwargs"], ratio)
        saved = (resumed or {}).get(f"{name}_opt")
        if saved:
            try:
                opt.load_state_dict(saved)
            except (ValueError, KeyError):
                pass  # another optimiser layout (e.g. another --cfg): its moments start afresh
        if interval is None:
            phases.append(Phase(name + "both", name, opt, 1))
        else:
            phases += [Phase(name + "main", name, opt, 1), Phase(name + "reg", name, opt, interval)]
    return phases


def _load_resume_file(opts: Dict[str, Any], rank: int, task: TrainingTask) -> Optional[Dict[str, Any]]:
    """The snapshot to continue from, which must hold every network the task trains."""
    if not opts.get("resume_pkl"):
        return None
    try:
        with dnnlib.util.open_url(opts["resume_pkl"], verbose=(rank == 0)) as f:
            return legacy.load_network_pkl(f, require=tuple(task.trained))
    except (legacy.NetworkLoadError, OSError) as err:
        raise TrainingError(f"--resume: {' '.join(str(err).split())}") from None


def _resolve_precision(opts: Dict[str, Any], device: torch.device) -> Optional[Choice]:
    """The run's precision (option ``precision``: fp32, bf16, fp16 or auto), decided once on process 0
    and shared, so that a timing probe cannot make processes disagree. The concrete choice replaces
    ``auto`` in the options written to training_options.json. Without the option: the device default."""
    requested = opts.get("precision")
    if requested is None:
        return None
    try:
        choice = resolve(requested, device)
    except PrecisionError as err:
        raise TrainingError(f"--precision {err}") from None
    if distributed.is_initialized():
        index = torch.tensor(PRECISIONS.index(choice.name), device=device)
        torch.distributed.broadcast(index, src=0)
        if PRECISIONS[int(index)] != choice.name:
            choice = Choice(PRECISIONS[int(index)], "process 0's choice")
    opts["precision"] = choice.name
    return choice


def setup(opts: Dict[str, Any], rank: int, num_gpus: int, device: torch.device) -> Session:
    """Data stream, task, networks (fresh or resumed), loss and optimisers, identical on every process."""
    seed = opts["random_seed"]
    np.random.seed(seed * num_gpus + rank)
    torch.manual_seed(seed * num_gpus + rank)
    torch.backends.cudnn.benchmark = opts.get("cudnn_benchmark", True)
    torch.backends.cuda.matmul.allow_tf32 = opts.get("allow_tf32", False)
    torch.backends.cudnn.allow_tf32 = opts.get("allow_tf32", False)

    if opts.get("compile_ops"):
        compiled.enable()  # torch.compile of bias_act's and upfirdn2d's kernels (train.py --compile)
    training_set = dnnlib.util.construct_class_by_name(**opts["training_set_kwargs"])
    sampler = ShardedInfiniteSampler(len(training_set), rank=rank, num_replicas=num_gpus, seed=seed)
    loader = torch.utils.data.DataLoader(training_set, sampler=sampler, batch_size=opts["batch_gpu"],
                                         **opts.get("data_loader_kwargs", {}))
    task_kwargs = dict(opts.get("task_kwargs") or {})
    task = dnnlib.util.construct_class_by_name(options=opts, class_name=task_kwargs.pop("class_name", DEFAULT_TASK),
                                               **task_kwargs)
    session = Session(options=opts, device=device, rank=rank, num_gpus=num_gpus, training_set=training_set,
                      data_iter=None, task=task, stats=training_stats.Collector(device=device),
                      precision=_resolve_precision(opts, device))

    resumed = _load_resume_file(opts, rank, task)
    session.networks = task.build_networks(session, resumed)
    for module in session.networks.values():
        if module is not None:
            distributed.broadcast_module_(module)
    session.loss = task.build_loss(session)
    session.phases = _make_phases(session, resumed)
    session.data_iter = iter(loader)  # after the networks: starting the stream draws from torch's global RNG
    if resumed is not None:
        progress = resumed.get("progress") or {}
        session.cur_nimg = int(progress.get("cur_nimg", 0))
        session.cur_tick = int(progress.get("cur_tick", -1)) + 1
        session.batch_idx = int(progress.get("batch_idx", 0))
        task.restore(session, resumed)
    session.tick_start_nimg = session.cur_nimg
    return session


# ----------------------------------------------------------------------------------------------
# One training step.


def training_step(session: Session) -> None:
    """All phases due at this step, then buffer sync, the EMA update and the task's own bookkeeping."""
    opts = session.options
    rounds = opts["batch_size"] // (session.num_gpus * opts["batch_gpu"])
    batch = session.task.next_batch(session, rounds)

    for phase in session.phases:
        inputs = session.task.phase_inputs(session, phase, batch)
        if session.batch_idx % phase.interval != 0:
            continue
        params = [p for group in phase.opt.param_groups for p in group["params"]]
        started = time.time()
        for p in params:
            p.requires_grad_(True)
        phase.opt.zero_grad(set_to_none=True)
        for loss_inputs in inputs:
            try:
                session.loss.accumulate_gradients(phase=phase.name, sync=True, gain=phase.interval / rounds,
                                                  **loss_inputs)
            except NonFiniteLossError as err:
                raise TrainingError(
                    f"non-finite loss in tick {session.cur_tick} (kimg {session.cur_nimg / 1000:.1f}), phase "
                    f"{err.phase}: stopping; lower the learning rate or the regularisation weight, "
                    "or resume from the last snapshot") from None
        for p in params:
            p.requires_grad_(False)
        distributed.average_gradients(params)
        phase.opt.step()
        session.timing[phase.name] = session.timing.get(phase.name, 0) + time.time() - started

    trained_buffers = [b for name in session.task.trained for b in session.networks[name].buffers()]
    distributed.average_tensors_(trained_buffers)
    _update_ema(session)
    session.cur_nimg += opts["batch_size"]
    session.batch_idx += 1
    session.task.after_step(session)


@torch.no_grad()
def _update_ema(session: Session) -> None:
    """Each EMA copy tracks its network with a half-life of ema_kimg (optionally ramped up with training
    length); buffers are copied as they are."""
    opts = session.options
    half_life = opts["ema_kimg"] * 1000
    if opts.get("ema_rampup") is not None:
        half_life = min(half_life, session.cur_nimg * opts["ema_rampup"])
    beta = 0.5 ** (opts["batch_size"] / max(half_life, 1e-8))
    for copy_name, source_name in session.task.ema.items():
        ema, source = session.networks[copy_name], session.networks[source_name]
        for p_ema, p in zip(ema.parameters(), source.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(ema.buffers(), source.buffers()):
            b_ema.copy_(b)


# ----------------------------------------------------------------------------------------------
# Maintenance: ticks, logs, grids, snapshots, metrics.


def _format_time(seconds: float) -> str:
    s = int(np.rint(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"


def _snapshot_path(run_dir: str, cur_nimg: int) -> str:
    return os.path.join(run_dir, f"network-snapshot-{cur_nimg // 1000:06d}.pkl")


def save_snapshot(session: Session, path: str) -> None:
    """Networks, optimiser moments (by network name), progress and the task's own state, atomically,
    so a killed run resumes exactly."""
    progress = dict(cur_nimg=session.cur_nimg, cur_tick=session.cur_tick, batch_idx=session.batch_idx,
                    **session.task.snapshot_state(session))
    optimizers = {f"{name}_opt": session.optimizer(name).state_dict() for name in session.task.trained}
    legacy.save_network_pkl(path, dict(session.networks, **optimizers, progress=progress,
                                       training_set_kwargs=dict(session.options["training_set_kwargs"])))


def _tick_line(session: Session, tick_time: float, start_time: float, maintenance: float) -> str:
    """The official per-tick line, with the task's own numbers (ADA's p for StyleGAN2) at the end."""
    kimg = session.cur_nimg / 1000
    sec_per_kimg = tick_time / max((session.cur_nimg - session.tick_start_nimg) / 1000, 1e-8)
    cpumem = psutil.Process(os.getpid()).memory_info().rss / 2**30
    gpumem = torch.cuda.max_memory_allocated(session.device) / 2**30 if session.device.type == "cuda" else 0.0
    reported = {"Progress/tick": session.cur_tick, "Progress/kimg": kimg, "Timing/sec_per_tick": tick_time,
                "Timing/sec_per_kimg": sec_per_kimg, "Timing/maintenance_sec": maintenance,
                "Resources/cpu_mem_gb": cpumem, "Resources/peak_gpu_mem_gb": gpumem}
    extra = session.task.tick_fields(session)
    reported.update({f"Progress/{name}": value for name, value in extra.items()})
    for name, value in reported.items():
        training_stats.report0(name, value)
    fields = [
        f"tick {session.cur_tick:<5d}", f"kimg {kimg:<8.1f}", f"time {_format_time(time.time() - start_time):<12s}",
        f"sec/tick {tick_time:<7.1f}", f"sec/kimg {sec_per_kimg:<7.2f}", f"maintenance {maintenance:<6.1f}",
        f"cpumem {cpumem:<6.2f}", f"gpumem {gpumem:<6.2f}",
    ] + [f"{name} {value:.3f}" for name, value in extra.items()]
    return " ".join(fields)


def _end_of_tick(session: Session, run_dir: str, start_time: float, tick_start_time: float,
                 last_maintenance: float, done: bool) -> float:
    """Log the tick, write stats, grids and snapshots when due; returns the time maintenance took."""
    opts = session.options
    maintenance_start = time.time()
    line = _tick_line(session, maintenance_start - tick_start_time, start_time, last_maintenance)
    log(session, line, run_dir)
    for name, seconds in session.timing.items():
        training_stats.report0(f"Timing/phase/{name}", seconds)
    session.timing.clear()

    snap_due = lambda ticks: ticks and (done or session.cur_tick % ticks == 0)  # noqa: E731
    if session.rank == 0 and snap_due(opts["image_snapshot_ticks"]):
        session.task.save_images(session, run_dir)
    if snap_due(opts["network_snapshot_ticks"]):
        snapshot_path = _snapshot_path(run_dir, session.cur_nimg)
        if session.rank == 0:
            save_snapshot(session, snapshot_path)
        session.task.evaluate(session, run_dir, snapshot_path)

    session.stats.update()
    if session.rank == 0:
        entry = dict(session.stats.as_dict(), timestamp=time.time())
        with open(os.path.join(run_dir, "stats.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
    return time.time() - maintenance_start


# ----------------------------------------------------------------------------------------------
# Entry point.


def training_loop(run_dir: str = ".", rank: int = 0, num_gpus: int = 1, device: Optional[torch.device] = None,
                  abort_fn: Optional[Callable[[], bool]] = None, **opts: Any) -> Session:
    """Train until ``total_kimg``; ``opts`` are the resolved options written to training_options.json."""
    device = device or distributed.pick_device(rank)
    session = setup(opts, rank, num_gpus, device)
    if rank == 0:
        os.makedirs(run_dir, exist_ok=True)
        with dnnlib.util.atomic_write(os.path.join(run_dir, "training_options.json")) as f:
            f.write(json.dumps(opts, indent=2).encode("utf-8"))
    if opts.get("resume_pkl"):
        log(session, f"Resuming from {opts['resume_pkl']}: the networks keep the resume file's architecture; "
                     "the options set only the optimisation side.", run_dir)
    if session.precision is not None:
        log(session, f"Precision: {session.precision.name} in the reduced-precision layers "
                     f"({session.precision.reason}).", run_dir)
    with reduced_precision(None if session.precision is None else session.precision.name):
        _train(session, run_dir, abort_fn)
    log(session, "Exiting...", run_dir)
    session.stats.close()
    session.task.close(session)
    return session


def _past_deadline(session: Session, deadline: Optional[float]) -> bool:
    """Whether ``--max-minutes`` is spent: rank 0's clock decides for every process, so all stop at the same step.

    A single process only reads its clock; the broadcast (and its device sync) is paid only where several
    processes must agree."""
    if deadline is None:
        return False
    late = time.time() >= deadline
    if session.num_gpus == 1:
        return late
    flag = torch.tensor([float(late)], device=session.device)
    torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())


def _train(session: Session, run_dir: str, abort_fn: Optional[Callable[[], bool]]) -> None:
    """Steps and ticks until ``total_kimg`` (or ``abort_fn``), inside the run's precision scope."""
    opts = session.options
    start_time = time.time()
    log(session, f"Training for {opts['total_kimg']} kimg from kimg {session.cur_nimg / 1000:.1f} "
                 f"on {session.num_gpus} process(es), device {session.device}...", run_dir)
    if session.rank == 0:
        session.task.begin(session, run_dir)

    total_nimg = int(opts["total_kimg"] * 1000)
    bar = tqdm(total=total_nimg / 1000, initial=session.cur_nimg / 1000, unit="kimg", leave=False,
               disable=(session.rank != 0 or not sys.stderr.isatty()),
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg")
    tick_start_time = time.time()
    maintenance = 0.0
    deadline = start_time + opts["max_minutes"] * 60 if opts.get("max_minutes") else None
    while session.cur_nimg < total_nimg:
        training_step(session)
        bar.update(opts["batch_size"] / 1000)
        out_of_time = _past_deadline(session, deadline)
        if out_of_time:
            log(session, f"Time budget of {opts['max_minutes']:g} minutes spent at kimg {session.cur_nimg / 1000:.1f}; "
                         "stopping with a final snapshot.", run_dir)
        done = session.cur_nimg >= total_nimg or out_of_time or bool(abort_fn and abort_fn())
        # Tick 0 ends after the first step, so a run shows its first numbers (and snapshot) at once.
        if not done and session.cur_tick != 0 and session.cur_nimg < session.tick_start_nimg + opts["kimg_per_tick"] * 1000:
            continue
        maintenance = _end_of_tick(session, run_dir, start_time, tick_start_time, maintenance, done)
        session.cur_tick += 1
        session.tick_start_nimg = session.cur_nimg
        tick_start_time = time.time()
        if done:
            break
    bar.close()
