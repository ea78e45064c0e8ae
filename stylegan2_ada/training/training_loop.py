"""The StyleGAN2-ADA training loop, split into setup, one training step, and per-tick maintenance.

``training_loop(**options)`` keeps the official entry point and keyword names.
Every process runs the same code on its shard of each global batch; gradients,
running statistics and ADA's overfitting signal are averaged across processes,
and only process 0 writes files.
"""

import copy
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
from . import image_grid
from .loss import NonFiniteLossError, StyleGAN2Loss
from .networks import Discriminator, Generator


class TrainingError(RuntimeError):
    """A problem the user can act on (bad data/resume file, non-finite loss); one line, no traceback."""


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


def _to_model_range(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] on ``device``."""
    return images.to(device).to(torch.float32) / 127.5 - 1


# ----------------------------------------------------------------------------------------------
# State.


@dataclass
class Phase:
    name: str
    module: torch.nn.Module
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
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    augment_pipe: Optional[torch.nn.Module]
    loss: StyleGAN2Loss
    phases: List[Phase]
    latent_rng: torch.Generator
    label_rng: np.random.RandomState
    ada_stats: Optional[training_stats.Collector]
    stats: training_stats.Collector
    cur_nimg: int = 0
    cur_tick: int = 0
    batch_idx: int = 0
    tick_start_nimg: int = 0
    timing: Dict[str, float] = field(default_factory=dict)
    grid: Optional[Dict[str, Any]] = None


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


def _build_networks(opts: Dict[str, Any], training_set, resumed: Optional[Dict[str, Any]], device: torch.device):
    """G, D, G_ema: from the resume file's own constructor arguments when resuming, else from the options."""
    common = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution,
                  img_channels=training_set.num_channels)
    if resumed is not None:
        G, D, G_ema = resumed["G"], resumed["D"], resumed["G_ema"]
        if G is None or D is None:
            raise TrainingError("the resume file has no G or D network (only G_ema): it cannot be trained further")
        for name, net in [("G", G), ("D", D)]:
            have = (net.c_dim, net.img_resolution, net.img_channels)
            want = (common["c_dim"], common["img_resolution"], common["img_channels"])
            if have != want:
                raise TrainingError(f"the resume network's {name} has (labels, resolution, channels) = {have}, "
                                    f"but the dataset has {want}")
    else:
        G = Generator(**opts["G_kwargs"], **common)
        D = Discriminator(**opts["D_kwargs"], **common)
        G_ema = copy.deepcopy(G)
    G = G.to(device).train().requires_grad_(False)
    D = D.to(device).train().requires_grad_(False)
    G_ema = G_ema.to(device).eval().requires_grad_(False)
    return G, D, G_ema


def _make_phases(opts: Dict[str, Any], G: torch.nn.Module, D: torch.nn.Module, resumed: Optional[Dict[str, Any]]) -> List[Phase]:
    """Main and (lazy) regularisation phases; with lazy regularisation Adam's lr and betas are
    adjusted by ratio = interval / (interval + 1), so the penalty's effective strength is unchanged."""
    phases = []
    for name, module, opt_kwargs, reg_interval in [("G", G, opts["G_opt_kwargs"], opts["G_reg_interval"]),
                                                   ("D", D, opts["D_opt_kwargs"], opts["D_reg_interval"])]:
        lr, betas, eps = opt_kwargs["lr"], tuple(opt_kwargs["betas"]), opt_kwargs.get("eps", 1e-8)
        if reg_interval is None:
            opt = torch.optim.Adam(module.parameters(), lr=lr, betas=betas, eps=eps)
            phases.append(Phase(name + "both", module, opt, 1))
            continue
        ratio = reg_interval / (reg_interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=tuple(b**ratio for b in betas), eps=eps)
        phases += [Phase(name + "main", module, opt, 1), Phase(name + "reg", module, opt, reg_interval)]
    if resumed is not None:
        for key, opt in [("G_opt", phases[0].opt), ("D_opt", phases[-1].opt)]:
            if resumed.get(key):
                try:
                    opt.load_state_dict(resumed[key])
                except (ValueError, KeyError):
                    pass  # different optimiser layout (e.g. another --cfg): start its moments afresh
    return phases


def setup(opts: Dict[str, Any], rank: int, num_gpus: int, device: torch.device) -> Session:
    seed = opts["random_seed"]
    np.random.seed(seed * num_gpus + rank)
    torch.manual_seed(seed * num_gpus + rank)
    torch.backends.cudnn.benchmark = opts.get("cudnn_benchmark", True)
    torch.backends.cuda.matmul.allow_tf32 = opts.get("allow_tf32", False)
    torch.backends.cudnn.allow_tf32 = opts.get("allow_tf32", False)

    training_set = dnnlib.util.construct_class_by_name(**opts["training_set_kwargs"])
    sampler = ShardedInfiniteSampler(len(training_set), rank=rank, num_replicas=num_gpus, seed=seed)
    loader = torch.utils.data.DataLoader(training_set, sampler=sampler, batch_size=opts["batch_gpu"],
                                         **opts.get("data_loader_kwargs", {}))

    resumed = None
    if opts.get("resume_pkl"):
        try:
            with dnnlib.util.open_url(opts["resume_pkl"], verbose=(rank == 0)) as f:
                resumed = legacy.load_network_pkl(f)
        except (legacy.NetworkLoadError, OSError) as err:
            raise TrainingError(f"--resume: {' '.join(str(err).split())}") from None
    G, D, G_ema = _build_networks(opts, training_set, resumed, device)

    augment_pipe = None
    ada_stats = None
    if opts.get("augment_kwargs") is not None:
        from .augment import AugmentPipe

        augment_pipe = AugmentPipe(**opts["augment_kwargs"]).train().requires_grad_(False).to(device)
        augment_pipe.p.copy_(torch.as_tensor(opts.get("augment_p", 0)))
        if resumed is not None and resumed.get("augment_pipe") is not None and opts.get("ada_target") is not None:
            augment_pipe.p.copy_(resumed["augment_pipe"].p)
        if opts.get("ada_target") is not None:
            ada_stats = training_stats.Collector(regex="Loss/signs/real", device=device)

    for module in [G, D, G_ema]:
        distributed.broadcast_module_(module)
    loss = StyleGAN2Loss(device=device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                         augment_pipe=augment_pipe, **opts["loss_kwargs"])
    phases = _make_phases(opts, G, D, resumed)

    session = Session(options=opts, device=device, rank=rank, num_gpus=num_gpus, training_set=training_set,
                      data_iter=iter(loader), G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe, loss=loss,
                      phases=phases, latent_rng=torch.Generator().manual_seed(seed),
                      label_rng=np.random.RandomState(seed), ada_stats=ada_stats,
                      stats=training_stats.Collector(device=device))
    if resumed is not None:
        progress = resumed.get("progress") or {}
        session.cur_nimg = int(progress.get("cur_nimg", 0))
        session.cur_tick = int(progress.get("cur_tick", -1)) + 1
        session.batch_idx = int(progress.get("batch_idx", 0))
        if "pl_mean" in progress:
            loss.pl_mean.fill_(float(progress["pl_mean"]))
    session.tick_start_nimg = session.cur_nimg
    return session


# ----------------------------------------------------------------------------------------------
# One training step.


def _next_real_batch(session: Session):
    images, labels = next(session.data_iter)
    return _to_model_range(images, session.device), labels.to(session.device)


def _draw_latents(session: Session, count: int):
    """z and labels for ``count`` global samples, identical on every process (then sharded)."""
    opts = session.options
    z = torch.randn([count, session.G.z_dim], generator=session.latent_rng)
    ts = session.training_set
    labels = [ts.get_label(int(i)) for i in session.label_rng.randint(len(ts), size=count)]
    c = torch.from_numpy(np.stack(labels)) if labels else torch.zeros([count, 0])
    shard = slice(session.rank, None, session.num_gpus)
    return z[shard].to(session.device).split(opts["batch_gpu"]), c[shard].to(session.device).split(opts["batch_gpu"])


def training_step(session: Session) -> None:
    """All phases due at this step, then the EMA update, buffer sync and the ADA adjustment."""
    opts = session.options
    batch_size = opts["batch_size"]
    rounds = batch_size // (session.num_gpus * opts["batch_gpu"])
    real = [_next_real_batch(session) for _ in range(rounds)]

    for phase in session.phases:
        gen_z, gen_c = _draw_latents(session, batch_size)  # drawn even when skipped: same stream every run
        if session.batch_idx % phase.interval != 0:
            continue
        start = time.time()
        phase.module.requires_grad_(True)
        phase.opt.zero_grad(set_to_none=True)
        for (real_img, real_c), z, c in zip(real, gen_z, gen_c):
            try:
                session.loss.accumulate_gradients(phase.name, real_img, real_c, z, c, sync=True,
                                                  gain=phase.interval / rounds)
            except NonFiniteLossError as err:
                raise TrainingError(
                    f"non-finite loss in tick {session.cur_tick} (kimg {session.cur_nimg / 1000:.1f}), phase "
                    f"{err.phase}: stopping; lower --glr/--dlr/--gamma or resume from the last snapshot") from None
        phase.module.requires_grad_(False)
        distributed.average_gradients(phase.module.parameters())
        phase.opt.step()
        session.timing[phase.name] = session.timing.get(phase.name, 0) + time.time() - start

    distributed.average_tensors_(list(session.G.buffers()) + [session.loss.pl_mean])
    _update_ema(session)
    session.cur_nimg += batch_size
    session.batch_idx += 1

    if session.ada_stats is not None and session.batch_idx % opts["ada_interval"] == 0:
        session.ada_stats.update()
        signs = session.ada_stats.mean("Loss/signs/real")
        if np.isfinite(signs):
            step = np.sign(signs - opts["ada_target"]) * (batch_size * opts["ada_interval"]) / (opts["ada_kimg"] * 1000)
            p = session.augment_pipe.p
            p.copy_((p + step).clamp(min=0))


@torch.no_grad()
def _update_ema(session: Session) -> None:
    """G_ema tracks G with a half-life of ema_kimg (optionally ramped up with training length)."""
    opts = session.options
    ema_nimg = opts["ema_kimg"] * 1000
    if opts.get("ema_rampup") is not None:
        ema_nimg = min(ema_nimg, session.cur_nimg * opts["ema_rampup"])
    beta = 0.5 ** (opts["batch_size"] / max(ema_nimg, 1e-8))
    for p_ema, p in zip(session.G_ema.parameters(), session.G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(session.G_ema.buffers(), session.G.buffers()):
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


def _setup_grid(session: Session, run_dir: str) -> None:
    ts = session.training_set
    grid_size = image_grid.grid_shape(ts.resolution, len(ts))
    images, labels = image_grid.pick_grid_items(ts, grid_size, random_seed=session.options["random_seed"])
    image_grid.save_image_grid(images, os.path.join(run_dir, "reals.png"), drange=(0, 255), grid_size=grid_size)
    grid_z = torch.randn([labels.shape[0], session.G.z_dim], generator=torch.Generator().manual_seed(123))
    grid_c = torch.from_numpy(labels)
    session.grid = dict(size=grid_size, z=grid_z.to(session.device), c=grid_c.to(session.device))
    _save_fakes(session, os.path.join(run_dir, "fakes_init.png"))


def _save_fakes(session: Session, path: str) -> None:
    grid = session.grid
    images = image_grid.generate_grid(session.G_ema, grid["z"], grid["c"], batch=session.options["batch_gpu"])
    image_grid.save_image_grid(images, path, drange=(-1, 1), grid_size=grid["size"])


def _snapshot_path(run_dir: str, cur_nimg: int) -> str:
    return os.path.join(run_dir, f"network-snapshot-{cur_nimg // 1000:06d}.pkl")


def save_snapshot(session: Session, path: str) -> None:
    """Networks, ADA state, optimiser moments and progress, atomically, so a killed run resumes exactly."""
    progress = dict(cur_nimg=session.cur_nimg, cur_tick=session.cur_tick, batch_idx=session.batch_idx,
                    pl_mean=float(session.loss.pl_mean))
    legacy.save_network_pkl(path, dict(
        G=session.G, D=session.D, G_ema=session.G_ema, augment_pipe=session.augment_pipe,
        training_set_kwargs=dict(session.options["training_set_kwargs"]), progress=progress,
        G_opt=session.phases[0].opt.state_dict(), D_opt=session.phases[-1].opt.state_dict()))


def _tick_line(session: Session, tick_time: float, start_time: float, maintenance: float) -> str:
    kimg = session.cur_nimg / 1000
    tick_kimg = (session.cur_nimg - session.tick_start_nimg) / 1000
    cpumem = psutil.Process(os.getpid()).memory_info().rss / 2**30
    gpumem = torch.cuda.max_memory_allocated(session.device) / 2**30 if session.device.type == "cuda" else 0.0
    p = float(session.augment_pipe.p) if session.augment_pipe is not None else 0.0
    fields = [
        f"tick {session.cur_tick:<5d}", f"kimg {kimg:<8.1f}", f"time {_format_time(time.time() - start_time):<12s}",
        f"sec/tick {tick_time:<7.1f}", f"sec/kimg {tick_time / max(tick_kimg, 1e-8):<7.2f}",
        f"maintenance {maintenance:<6.1f}", f"cpumem {cpumem:<6.2f}", f"gpumem {gpumem:<6.2f}", f"augment {p:.3f}",
    ]
    training_stats.report0("Progress/tick", session.cur_tick)
    training_stats.report0("Progress/kimg", kimg)
    training_stats.report0("Timing/sec_per_tick", tick_time)
    training_stats.report0("Timing/sec_per_kimg", tick_time / max(tick_kimg, 1e-8))
    training_stats.report0("Timing/maintenance_sec", maintenance)
    training_stats.report0("Resources/cpu_mem_gb", cpumem)
    training_stats.report0("Resources/peak_gpu_mem_gb", gpumem)
    training_stats.report0("Progress/augment", p)
    return " ".join(fields)


def _run_metrics(session: Session, run_dir: str, snapshot_path: Optional[str]) -> None:
    metrics = session.options.get("metrics") or []
    if not metrics or snapshot_path is None:
        return
    from ..metrics import metric_main  # optional until the metrics land

    for metric in metrics:
        result = metric_main.calc_metric(metric=metric, G=session.G_ema,
                                         dataset_kwargs=session.options["training_set_kwargs"],
                                         num_gpus=session.num_gpus, rank=session.rank, device=session.device)
        if session.rank == 0:
            metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_path)


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

    snapshot_path = None
    snap_due = lambda ticks: ticks and (done or session.cur_tick % ticks == 0)  # noqa: E731
    if session.rank == 0 and snap_due(opts["image_snapshot_ticks"]):
        _save_fakes(session, os.path.join(run_dir, f"fakes{session.cur_nimg // 1000:06d}.png"))
    if snap_due(opts["network_snapshot_ticks"]):
        snapshot_path = _snapshot_path(run_dir, session.cur_nimg)
        if session.rank == 0:
            save_snapshot(session, snapshot_path)
        _run_metrics(session, run_dir, snapshot_path)

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
        log(session, f"Resuming from {opts['resume_pkl']}: G and D keep the resume file's architecture; "
                     "the options set only the optimisation side.", run_dir)
    start_time = time.time()
    log(session, f"Training for {opts['total_kimg']} kimg from kimg {session.cur_nimg / 1000:.1f} "
                 f"on {num_gpus} process(es), device {device}...", run_dir)
    if rank == 0:
        _setup_grid(session, run_dir)

    total_nimg = int(opts["total_kimg"] * 1000)
    bar = tqdm(total=total_nimg / 1000, initial=session.cur_nimg / 1000, unit="kimg", leave=False,
               disable=(rank != 0 or not sys.stderr.isatty()), bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg")
    tick_start_time = time.time()
    maintenance = 0.0
    while session.cur_nimg < total_nimg:
        training_step(session)
        bar.update(opts["batch_size"] / 1000)
        done = session.cur_nimg >= total_nimg or bool(abort_fn and abort_fn())
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
    log(session, "Exiting...", run_dir)
    for collector in [session.stats, session.ada_stats]:
        if collector is not None:
            collector.close()
    return session
