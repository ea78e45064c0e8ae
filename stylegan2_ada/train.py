"""Train StyleGAN2-ADA: ``python -m stylegan2_ada.train --outdir=runs --data=dataset.zip``.

Flags follow the official release (plus the finer controls from StyleGAN3's
train.py).  This module only parses and resolves options, in one place, then
hands them to ``training.training_loop``.  One process runs per device: several
GPUs on one node with ``--gpus=N``, or any number of nodes with
``torchrun --nnodes=.. --nproc_per_node=.. -m stylegan2_ada.train ...``.
"""

import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import click
import torch

from . import dnnlib
from .torch_utils import distributed
from .torch_utils.precision import PRECISIONS
from .training import training_loop as loop
from .training.dataset import DatasetError, ImageFolderDataset


@dataclass(frozen=True)
class CfgSpec:
    ref_gpus: int
    kimg: int
    batch: int
    mbstd: int
    fmaps: float
    lrate: float
    gamma: float
    ema: float
    ramp: Optional[float]
    map: int


# -1 = derived from the resolution and GPU count ('auto').
CFG_SPECS = {
    "auto": CfgSpec(-1, 25000, -1, -1, -1, -1, -1, -1, 0.05, 2),
    "stylegan2": CfgSpec(8, 25000, 32, 4, 1, 0.002, 10, 10, None, 8),
    "paper256": CfgSpec(8, 25000, 64, 8, 0.5, 0.0025, 1, 20, None, 8),
    "paper512": CfgSpec(8, 25000, 64, 8, 1, 0.0025, 0.5, 20, None, 8),
    "paper1024": CfgSpec(8, 25000, 32, 4, 1, 0.002, 2, 10, None, 8),
    "cifar": CfgSpec(2, 100000, 64, 32, 1, 0.0025, 0.01, 500, 0.05, 2),
}

RESUME_BASE = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/"
RESUME_SHORTHANDS = {
    "ffhq256": "ffhq-res256-mirror-paper256-noaug.pkl",
    "ffhq512": "ffhq-res512-mirror-stylegan2-noaug.pkl",
    "ffhq1024": "ffhq-res1024-mirror-stylegan2-noaug.pkl",
    "celebahq256": "celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl",
    "lsundog256": "lsundog-res256-paper256-kimg100000-noaug.pkl",
}
AUGPIPES = ["blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc"]


def resolve_cfg(cfg: str, resolution: int, gpus: int) -> CfgSpec:
    """The preset's numbers; 'auto' derives them from the resolution and GPU count."""
    spec = CFG_SPECS[cfg]
    if cfg != "auto":
        return spec
    batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return CfgSpec(ref_gpus=gpus, kimg=spec.kimg, batch=batch, mbstd=min(batch // gpus, 4),
                   fmaps=1 if resolution >= 512 else 0.5, lrate=0.002 if resolution >= 1024 else 0.0025,
                   gamma=0.0002 * resolution**2 / batch, ema=batch * 10 / 32, ramp=spec.ramp, map=spec.map)


def dataset_options(data: str, cond: bool, subset: Optional[int], mirror: bool) -> Dict[str, Any]:
    """Open the dataset once to validate it (one-line errors naming the flag) and learn its name and size."""
    kwargs = dnnlib.EasyDict(class_name="stylegan2_ada.training.dataset.ImageFolderDataset", path=data,
                             use_labels=cond, max_size=subset, xflip=mirror)
    try:
        dataset = ImageFolderDataset(path=data, use_labels=cond, max_size=subset, xflip=mirror)
        if cond and not dataset.has_labels:
            raise DatasetError(f"{data} has no labels")
    except DatasetError as err:
        # Only on failure: open without labels to tell a data problem from a labels problem.
        blame = "--data"
        if cond:
            try:
                ImageFolderDataset(path=data, max_size=subset, xflip=mirror)
                blame = "--cond"
            except DatasetError:
                pass
        hint = " (drop --cond to train without labels)" if blame == "--cond" else ""
        raise click.BadParameter(" ".join(str(err).split()) + hint, param_hint=blame) from None
    kwargs.update(resolution=dataset.resolution)
    name = dataset.name
    return dict(training_set_kwargs=kwargs, dataset_name=name)


def resume_url(resume: str) -> Optional[str]:
    if resume == "noresume":
        return None
    return RESUME_BASE + RESUME_SHORTHANDS[resume] if resume in RESUME_SHORTHANDS else resume


def network_options(spec: CfgSpec, cfg: str, cbase: Optional[int], cmax: Optional[int], map_layers: Optional[int],
                    mbstd_group: Optional[int], fp32: bool, nhwc: bool, freezed: int, noise: bool) -> Dict[str, Any]:
    channel_base = cbase if cbase is not None else int(spec.fmaps * 32768)
    channel_max = cmax if cmax is not None else 512
    fp16 = dict(num_fp16_res=0, conv_clamp=None) if fp32 else dict(num_fp16_res=4, conv_clamp=256)
    G_kwargs = dict(class_name="stylegan2_ada.training.networks.Generator", z_dim=512, w_dim=512,
                    mapping_kwargs=dict(num_layers=map_layers or spec.map),
                    synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max, **fp16))
    D_kwargs = dict(class_name="stylegan2_ada.training.networks.Discriminator",
                    channel_base=channel_base, channel_max=channel_max, **fp16,
                    block_kwargs=dict(freeze_layers=freezed),
                    epilogue_kwargs=dict(mbstd_group_size=mbstd_group if mbstd_group is not None else spec.mbstd))
    if not noise:
        G_kwargs["synthesis_kwargs"]["use_noise"] = False  # the official layers' own switch: no noise_const/noise_strength
    if nhwc:
        G_kwargs["synthesis_kwargs"]["fp16_channels_last"] = True
        D_kwargs["block_kwargs"]["fp16_channels_last"] = True
    if cfg == "cifar":
        D_kwargs["architecture"] = "orig"
    return dict(G_kwargs=G_kwargs, D_kwargs=D_kwargs)


def _ema_rampup(spec: CfgSpec, override: Optional[float], resuming: bool) -> Optional[float]:
    """--ema-rampup when given; else the preset's, except when resuming (the average is already long)."""
    if override is not None:
        return override
    return None if resuming else spec.ramp


def optimisation_options(spec: CfgSpec, cfg: str, gpus: int, gamma: Optional[float], kimg: Optional[int],
                         batch: Optional[int], batch_gpu: Optional[int], glr: Optional[float],
                         dlr: Optional[float], ema_rampup: Optional[float], resuming: bool) -> Dict[str, Any]:
    batch_size = batch if batch is not None else spec.batch
    if batch_size % gpus != 0:
        raise click.BadParameter(f"{batch_size} is not divisible by --gpus={gpus}", param_hint="--batch")
    batch_gpu = batch_gpu if batch_gpu is not None else batch_size // gpus
    if batch_gpu < 1 or (batch_size // gpus) % batch_gpu != 0:
        raise click.BadParameter(f"--batch / --gpus = {batch_size // gpus} must be a multiple of it", param_hint="--batch-gpu")
    loss_kwargs = dict(class_name="stylegan2_ada.training.loss.StyleGAN2Loss",
                       r1_gamma=gamma if gamma is not None else spec.gamma)
    if cfg == "cifar":
        loss_kwargs.update(pl_weight=0, style_mixing_prob=0)
    return dict(
        G_opt_kwargs=dict(lr=glr if glr is not None else spec.lrate, betas=[0, 0.99], eps=1e-8),
        D_opt_kwargs=dict(lr=dlr if dlr is not None else spec.lrate, betas=[0, 0.99], eps=1e-8),
        loss_kwargs=loss_kwargs, total_kimg=kimg if kimg is not None else spec.kimg,
        batch_size=batch_size, batch_gpu=batch_gpu, ema_kimg=spec.ema,
        ema_rampup=_ema_rampup(spec, ema_rampup, resuming), G_reg_interval=4, D_reg_interval=16)


def augmentation_options(aug: str, p: Optional[float], target: Optional[float], augpipe: str) -> Dict[str, Any]:
    if aug == "fixed" and p is None:
        raise click.BadParameter("--aug=fixed needs --p", param_hint="--p")
    if aug != "fixed" and p is not None:
        raise click.BadParameter("only valid with --aug=fixed", param_hint="--p")
    if aug != "ada" and target is not None:
        raise click.BadParameter("only valid with --aug=ada", param_hint="--target")
    if target is not None and not 0 <= target <= 1:
        raise click.BadParameter("must be between 0 and 1", param_hint="--target")
    if aug == "noaug":
        return dict(augment_kwargs=None, augment_p=0, ada_target=None)
    from .training.augment import AUGPIPE_SPECS

    return dict(augment_kwargs=dict(AUGPIPE_SPECS[augpipe]), augment_p=p if p is not None else 0,
                ada_target=(target if target is not None else 0.6) if aug == "ada" else None,
                ada_interval=4, ada_kimg=500)


def precision_option(precision: str, fp32: bool) -> str:
    """``--precision`` as written to the options; the training loop resolves ``auto`` on its device.

    ``--fp32`` (the official flag) builds networks without reduced-precision layers, so it implies
    fp32 and contradicts an explicit bf16 or fp16.
    """
    if not fp32:
        return precision
    if precision in ("bf16", "fp16"):
        raise click.BadParameter(f"{precision} needs the reduced-precision layers that --fp32 turns off "
                                 "(drop one of the two)", param_hint="--precision")
    return "fp32"


def run_description(o: Dict[str, Any], cfg: str, gpus: int, flags: Dict[str, Any]) -> str:
    """Run folder suffix in the official spirit: dataset, then each choice that differs from the defaults."""
    parts = [o["dataset_name"]]
    parts += ["cond"] if flags["cond"] else []
    parts += [f"subset{flags['subset']}"] if flags["subset"] else []
    parts += ["mirror"] if flags["mirror"] else []
    parts += [f"{cfg}{gpus}" if cfg == "auto" else cfg]
    for flag, fmt in [("gamma", "gamma{:g}"), ("kimg", "kimg{:g}"), ("batch", "batch{}"), ("freezed", "freezed{}")]:
        parts += [fmt.format(flags[flag])] if flags[flag] else []
    parts += [flags["aug"]] if flags["aug"] != "ada" else []
    parts += [flags["augpipe"]] if flags["augpipe"] != "bgc" and flags["aug"] != "noaug" else []
    parts += [f"resume{flags['resume']}" if flags["resume"] in RESUME_SHORTHANDS else "resumecustom"] if flags["resume"] != "noresume" else []
    parts += ["fp32"] if flags["fp32"] else []
    parts += ["nonoise"] if not flags["noise"] else []
    parts += [flags["precision"]] if flags["precision"] in ("bf16", "fp16") else []
    return "-".join(re.sub(r"[^\w.]+", "_", part) for part in parts)


def next_run_dir(outdir: str, desc: str) -> str:
    existing = [int(m.group(1)) for name in (os.listdir(outdir) if os.path.isdir(outdir) else [])
                if (m := re.match(r"^(\d+)", name))]
    return os.path.join(outdir, f"{max(existing, default=-1) + 1:05d}-{desc}")


def run_process(rank: int, options: Dict[str, Any], run_dir: str, num_gpus: int, init_method: Optional[str]) -> None:
    """One training process: join the group (if several), train, and turn user-level errors into one line."""
    distributed.init_process_group(rank, num_gpus, init_method)
    if num_gpus > 1 and not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_gpus))  # CPU processes share the cores
    try:
        loop.training_loop(run_dir=run_dir, rank=rank, num_gpus=num_gpus, **options)
    finally:
        if distributed.is_initialized():
            torch.distributed.destroy_process_group()


def launch(options: Dict[str, Any], run_dir: str, gpus: int) -> None:
    try:
        if distributed.launched_by_torchrun():
            run_process(int(os.environ["RANK"]), options, run_dir, int(os.environ["WORLD_SIZE"]), None)
        elif gpus == 1:
            run_process(0, options, run_dir, 1, None)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                init_method = "file://" + os.path.abspath(os.path.join(tmp, ".torch_distributed_init"))
                torch.multiprocessing.spawn(_spawned, args=(options, run_dir, gpus, init_method), nprocs=gpus)
    except loop.TrainingError as err:
        raise click.ClickException(str(err)) from None
    except torch.multiprocessing.ProcessRaisedException as err:
        last = [line for line in str(err).strip().splitlines() if line.strip()][-1]
        raise click.ClickException(f"a training process failed: {last}") from None


def _spawned(rank: int, options: Dict[str, Any], run_dir: str, gpus: int, init_method: str) -> None:
    run_process(rank, options, run_dir, gpus, init_method)


def bool_option(name: str, help: str) -> Callable:
    """A boolean option spelt either way: ``--mirror=1`` as the official release writes it, or a bare ``--mirror``."""
    return click.option(name, type=bool, is_flag=False, flag_value=True, default=False, show_default=True,
                        metavar="BOOL", help=help)


@click.command()
@click.option("--outdir", help="Where to save the results", metavar="DIR", required=True)
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes on this node: one per GPU (CPU processes with gloo when there is no GPU)")
@click.option("--snap", type=click.IntRange(min=1), default=50, show_default=True, help="Snapshot interval in ticks")
@click.option("--metrics", default="none", show_default=True, help="Comma-separated metrics at each snapshot, or 'none'")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed")
@click.option("--dry-run", is_flag=True, help="Print the training options and exit")
@click.option("--data", help="Training data (directory or zip)", metavar="PATH", required=True)
@bool_option("--cond", "Train a conditional model on the dataset labels")
@click.option("--subset", type=click.IntRange(min=1), help="Train on this many images only")
@bool_option("--mirror", "Add x-flipped copies of the images (doubles the dataset)")
@click.option("--cfg", type=click.Choice(list(CFG_SPECS)), default="auto", show_default=True, help="Base configuration")
@click.option("--gamma", type=click.FloatRange(min=0), help="Override the R1 gamma")
@click.option("--kimg", type=click.FloatRange(min=0, min_open=True), help="Override the training length in thousands of images (fractions allowed)")
@click.option("--batch", type=click.IntRange(min=1), help="Override the total batch size")
@click.option("--aug", type=click.Choice(["ada", "noaug", "fixed"]), default="ada", show_default=True, help="Augmentation mode")
@click.option("--p", type=click.FloatRange(min=0, max=1), help="Augmentation probability for --aug=fixed")
@click.option("--target", type=float, help="ADA target value for --aug=ada [default: 0.6]")
@click.option("--augpipe", type=click.Choice(AUGPIPES), default="bgc", show_default=True, help="Augmentation pipeline")
@click.option("--resume", default="noresume", show_default=True,
              help="Resume from a network pickle (path, URL, or ffhq256/ffhq512/ffhq1024/celebahq256/lsundog256)")
@click.option("--freezed", type=click.IntRange(min=0), default=0, show_default=True, help="Freeze-D: number of D layers to freeze")
@bool_option("--fp32", "Disable mixed precision")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Type of the reduced-precision layers: auto = fp16 on CUDA, bf16 on CPUs where it pays, else fp32")
@bool_option("--nhwc", "Use NHWC memory format with FP16")
@click.option("--compile", "compile_ops", is_flag=True,
              help="torch.compile the bias_act/upfirdn2d kernels (slow first steps; unmeasured on GPUs)")
@bool_option("--nobench", "Disable cuDNN benchmarking")
@bool_option("--allow-tf32", "Allow TF32 for matmul and convolutions")
@click.option("--workers", type=click.IntRange(min=0), default=3, show_default=True, help="DataLoader worker processes")
@click.option("--cbase", type=click.IntRange(min=1), help="Override the capacity multiplier (channel_base)")
@click.option("--cmax", type=click.IntRange(min=1), help="Override the max feature maps (channel_max)")
@click.option("--map", "map_layers", type=click.IntRange(min=1), help="Override the mapping network depth")
@click.option("--glr", type=click.FloatRange(min=0, min_open=True), help="Override the G learning rate")
@click.option("--dlr", type=click.FloatRange(min=0, min_open=True), help="Override the D learning rate")
@click.option("--ema-rampup", type=click.FloatRange(min=0, min_open=True),
              help="Override the G_ema ramp-up: half-life at most this fraction of the images seen so far")
@click.option("--noise", type=bool, default=True, show_default=True, metavar="BOOL",
              help="Per-pixel noise inputs in G's synthesis layers (--noise=0: none; outlines without their checkerboard sooner in short CPU runs)")
@click.option("--mbstd-group", type=click.IntRange(min=1), help="Override the minibatch-std group size")
@click.option("--batch-gpu", type=click.IntRange(min=1), help="Samples per process per accumulation round")
@click.option("--tick", type=click.FloatRange(min=0, min_open=True), default=4, show_default=True, help="Progress print interval in kimg")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True),
              help="Also stop after this many minutes of training, with the final snapshot as at --kimg")
def main(**flags: Any) -> None:
    """Train a StyleGAN2-ADA network (official flags; see README)."""
    options = build_options(flags)
    resolution = options["training_set_kwargs"]["resolution"]
    desc = options.pop("run_desc")
    run_dir = next_run_dir(flags["outdir"], desc)
    print_summary(options, run_dir, flags, resolution)
    if flags["dry_run"]:
        click.echo("Dry run; exiting.")
        return
    launch(options, run_dir, flags["gpus"])


def build_options(flags: Dict[str, Any]) -> Dict[str, Any]:
    """All training options, resolved once from the flags and written to training_options.json."""
    gpus = int(os.environ.get("WORLD_SIZE", flags["gpus"])) if distributed.launched_by_torchrun() else flags["gpus"]
    if torch.cuda.is_available() and not distributed.launched_by_torchrun() and gpus > torch.cuda.device_count():
        raise click.BadParameter(f"only {torch.cuda.device_count()} GPU(s) available", param_hint="--gpus")
    metrics = [] if flags["metrics"].lower() == "none" else [m.strip() for m in flags["metrics"].split(",") if m.strip()]
    o: Dict[str, Any] = dict(dataset_options(flags["data"], flags["cond"], flags["subset"], flags["mirror"]))
    spec = resolve_cfg(flags["cfg"], o["training_set_kwargs"]["resolution"], gpus)
    resume = resume_url(flags["resume"])
    o.update(network_options(spec, flags["cfg"], flags["cbase"], flags["cmax"], flags["map_layers"],
                             flags["mbstd_group"], flags["fp32"], flags["nhwc"], flags["freezed"], flags["noise"]))
    o.update(optimisation_options(spec, flags["cfg"], gpus, flags["gamma"], flags["kimg"], flags["batch"],
                                  flags["batch_gpu"], flags["glr"], flags["dlr"], flags["ema_rampup"],
                                  resuming=resume is not None))
    o.update(augmentation_options(flags["aug"], flags["p"], flags["target"], flags["augpipe"]))
    o.update(metrics=metrics, random_seed=flags["seed"], resume_pkl=resume, kimg_per_tick=flags["tick"],
             max_minutes=flags["max_minutes"],
             precision=precision_option(flags["precision"], flags["fp32"]), compile_ops=flags["compile_ops"],
             image_snapshot_ticks=flags["snap"], network_snapshot_ticks=flags["snap"],
             cudnn_benchmark=not flags["nobench"], allow_tf32=flags["allow_tf32"],
             data_loader_kwargs=dict(num_workers=flags["workers"], pin_memory=torch.cuda.is_available(),
                                     persistent_workers=flags["workers"] > 0))
    o["run_desc"] = run_description(o, flags["cfg"], gpus, flags)
    o.pop("dataset_name")
    return o


def print_summary(options: Dict[str, Any], run_dir: str, flags: Dict[str, Any], resolution: int) -> None:
    if distributed.launched_by_torchrun() and int(os.environ["RANK"]) != 0:
        return
    click.echo("Training options:")
    click.echo(json.dumps(options, indent=2))
    click.echo(f"Output directory:   {run_dir}")
    click.echo(f"Training data:      {flags['data']} ({resolution}x{resolution})")
    click.echo(f"Number of images:   {options['total_kimg']} kimg, batch {options['batch_size']}")
    if options["resume_pkl"]:
        click.echo("Resuming: G and D are built from the resume file's own constructor arguments; "
                   "--cfg and the other flags set only the optimisation side.")


if __name__ == "__main__":
    main()  # pylint: disable=no-value-for-parameter
