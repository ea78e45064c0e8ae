"""``train_cond.py``: train, evaluate and roll out manga-conditioned next-frame predictors (parsing only).

``python train_cond.py --data=PAIRED.zip --network=UNCOND.pkl --cond=warpstyle --outdir=runs`` trains
(the default command); ``train_cond.py eval`` and ``train_cond.py rollout`` are the other two. The
training itself is ``conditioning.task`` running on stylegan2_ada's shared loop and launcher.
"""

import json
import os
from typing import Any, Dict, Optional, Sequence

import click
import torch

from manganime_ext.cli.errors import user_errors
from manganime_ext.conditioning import evaluation, figures, rollout
from manganime_ext.conditioning.data import NextFrameDataset
from manganime_ext.conditioning.predictor import PARAMETER_GROUPS, PREDICTORS, build_predictor
from manganime_ext.conditioning.task import load_generator_snapshot, load_predictor  # registers the predictors
from manganime_ext.data.paired_dataset import PairedDatasetError
from manganime_ext.io.json_files import write_json
from manganime_ext.io.outputs import atomic_output_dir
from stylegan2_ada import train as main_trainer
from stylegan2_ada.torch_utils import distributed
from stylegan2_ada.torch_utils.precision import PRECISIONS

TASK_CLASS = "manganime_ext.conditioning.task.NextFrameTask"
DATASET_CLASS = "manganime_ext.conditioning.data.NextFrameDataset"


class DefaultCommandGroup(click.Group):
    """A group whose first command runs when no command name is given (``train_cond.py --data=...``)."""

    def parse_args(self, ctx: click.Context, args: list) -> list:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = [next(iter(self.commands))] + list(args)
        return super().parse_args(ctx, args)


def _named_models(values: Sequence[str], flag: str) -> Dict[str, str]:
    models = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r} is not NAME=SNAPSHOT", param_hint=flag)
        models[name] = path
    return models


def _open_pairs(data: str, split: str) -> NextFrameDataset:
    try:
        dataset = NextFrameDataset(data, split=split)
    except PairedDatasetError as err:
        raise click.BadParameter(" ".join(str(err).split()), param_hint="--data") from None
    if len(dataset) == 0:
        hint = " (export-conditional --val-episodes holds episodes out for it)" if split == "val" else ""
        raise click.BadParameter(f"{data}: the {split} split has no pairs{hint}", param_hint="--data")
    return dataset


def build_options(flags: Dict[str, Any]) -> Dict[str, Any]:
    """Resolve and validate every option once, before any run directory exists."""
    train_set, val_set = _open_pairs(flags["data"], "train"), _open_pairs(flags["data"], "val")
    gpus = int(os.environ.get("WORLD_SIZE", flags["gpus"])) if distributed.launched_by_torchrun() else flags["gpus"]
    if flags["batch"] % gpus:
        raise click.BadParameter(f"{flags['batch']} is not divisible by --gpus={gpus}", param_hint="--batch")
    batch_gpu = flags["batch_gpu"] or flags["batch"] // gpus
    if (flags["batch"] // gpus) % batch_gpu:
        raise click.BadParameter(f"--batch / --gpus = {flags['batch'] // gpus} must be a multiple of it",
                                 param_hint="--batch-gpu")
    if flags["kimg"] is not None and flags["steps"] is not None:
        raise click.BadParameter("give --kimg or --steps, not both", param_hint="--steps")
    steps = flags["steps"] if flags["steps"] is not None else (None if flags["kimg"] is not None else 4000)
    total_kimg = flags["kimg"] if steps is None else steps * flags["batch"] / 1000
    predictor_kwargs: Dict[str, Any] = dict(page_window=flags["page_window"])
    if flags["cond"] == "warpstyle":
        predictor_kwargs.update(context_frames=flags["context"])
    if flags["resume"] is None:
        if not flags["network"]:
            raise click.BadParameter("needed unless --resume continues a train_cond.py run", param_hint="--network")
        source = _checked(lambda: load_generator_snapshot(flags["network"], need_discriminator=flags["adv"] > 0))
        G = _checked(lambda: build_predictor(flags["cond"], source["G_ema"].init_kwargs, **predictor_kwargs))
        if G.img_resolution != train_set.resolution:
            raise click.BadParameter(f"{flags['network']} makes {G.img_resolution}x{G.img_resolution} images but "
                                     f"{flags['data']} holds {train_set.resolution}x{train_set.resolution} frames",
                                     param_hint="--network")
        _checked(lambda: G.trainable(flags["train"]))
    compare = _named_models(flags["compare"], "--compare")
    return dict(
        task_kwargs=dict(class_name=TASK_CLASS, cond=flags["cond"], network_pkl=flags["network"] or "",
                         predictor_kwargs=predictor_kwargs, train=flags["train"], eval_pairs=flags["val_pairs"],
                         rollout_steps=flags["rollout_steps"], compare=compare, detector_dir=flags["detector_dir"]),
        training_set_kwargs=dict(class_name=DATASET_CLASS, path=flags["data"], split="train"),
        data_loader_kwargs=dict(num_workers=flags["workers"], pin_memory=torch.cuda.is_available(),
                                persistent_workers=flags["workers"] > 0),
        G_opt_kwargs=dict(class_name="torch.optim.Adam", lr=flags["lr"], betas=[0.9, 0.999], eps=1e-8),
        D_opt_kwargs=dict(class_name="torch.optim.Adam", lr=flags["dlr"], betas=[0, 0.99], eps=1e-8),
        G_reg_interval=None, D_reg_interval=16,
        loss_kwargs=dict(mse_weight=flags["mse"], lpips_weight=flags["lpips"], adv_weight=flags["adv"],
                         r1_gamma=flags["r1"]),
        total_kimg=total_kimg, batch_size=flags["batch"], batch_gpu=batch_gpu, ema_kimg=flags["ema"], ema_rampup=None,
        kimg_per_tick=flags["tick"], image_snapshot_ticks=flags["snap"], network_snapshot_ticks=flags["snap"],
        random_seed=flags["seed"], resume_pkl=flags["resume"], metrics=[], cudnn_benchmark=True, allow_tf32=False,
        precision=flags["precision"],
        pairs=dict(train=len(train_set), val=len(val_set)))


def _checked(make):
    """Run ``make``; a user-fixable problem (bad snapshot, predictor options) becomes a one-line error."""
    from manganime_ext.conditioning.predictor import PredictorError
    from stylegan2_ada.training.task import TrainingError

    try:
        return make()
    except (TrainingError, PredictorError) as err:
        raise click.ClickException(" ".join(str(err).split())) from None


@click.group(cls=DefaultCommandGroup)
def cli() -> None:
    """Manga-conditioned next-frame prediction on a pretrained StyleGAN2 (train is the default command)."""


@cli.command()
@click.option("--data", required=True, metavar="PAIRED", help="Paired export (export-conditional), zip or folder")
@click.option("--network", metavar="PKL", help="Unconditional snapshot to start from (ours or official; path or URL)")
@click.option("--cond", type=click.Choice(sorted(PREDICTORS)), default="warpstyle", show_default=True,
              help="Predictor: the study's recipe or ours")
@click.option("--outdir", required=True, metavar="DIR", help="Where run folders are made")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Total batch size")
@click.option("--batch-gpu", type=click.IntRange(min=1), help="Samples per process per accumulation round")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True, help="Adam learning rate")
@click.option("--kimg", type=click.FloatRange(min=0, min_open=True), help="Training length in thousands of pairs")
@click.option("--steps", type=click.IntRange(min=1), help="Training length in batches [default: 4000, the study's]")
@click.option("--train", type=click.Choice(PARAMETER_GROUPS), default="all", show_default=True, help="Parameters to update")
@click.option("--mse", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Weight of the pixel MSE (0-255 scale)")
@click.option("--lpips", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Weight of VGG16-LPIPS (needs vgg16.pt)")
@click.option("--adv", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Weight of the adversarial loss (snapshot's D)")
@click.option("--r1", type=click.FloatRange(min=0), default=1.0, show_default=True, help="R1 gamma of D (with --adv)")
@click.option("--dlr", type=click.FloatRange(min=0, min_open=True), default=0.002, show_default=True, help="D learning rate (with --adv)")
@click.option("--ema", type=click.FloatRange(min=0), default=0.0, show_default=True, help="EMA half-life in kimg (0 = none)")
@click.option("--page-window", type=click.Choice(["1", "3"]), default="1", show_default=True,
              callback=lambda _c, _p, v: int(v), help="Pages fed: p, or p-1, p, p+1 (the authors' code)")
@click.option("--context", type=click.Choice(["1", "2"]), default="2", show_default=True,
              callback=lambda _c, _p, v: int(v), help="warpstyle: past frames it sees (2 = F_{n-1}, F_n)")
@click.option("--tick", type=click.FloatRange(min=0, min_open=True), default=4, show_default=True, help="Log interval in kimg")
@click.option("--snap", type=click.IntRange(min=1), default=4, show_default=True, help="Snapshot/evaluation interval in ticks")
@click.option("--val-pairs", type=click.IntRange(min=1), default=512, show_default=True, help="Held-out pairs scored per snapshot")
@click.option("--rollout-steps", type=click.IntRange(min=1), default=16, show_default=True,
              help="Longest rollout of the k-step curve at snapshots")
@click.option("--compare", multiple=True, metavar="NAME=PKL", help="Also evaluate this trained predictor at snapshots")
@click.option("--resume", metavar="PKL", help="Continue a train_cond.py run from its snapshot")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Type of the generator's reduced-precision layers (see stylegan2_ada.train --precision)")
@click.option("--workers", type=click.IntRange(min=0), default=3, show_default=True, help="DataLoader worker processes")
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True, help="Processes on this node")
@click.option("--detector-dir", metavar="DIR", help="Folder holding vgg16.pt (for --lpips)")
@click.option("--dry-run", is_flag=True, help="Print the options and exit")
@user_errors
def train(**flags: Any) -> None:
    """Train a next-frame predictor (F_n, page) -> F_{n+1} on the shared StyleGAN2-ADA training loop."""
    options = build_options(flags)
    data_name = os.path.splitext(os.path.basename(os.path.normpath(flags["data"])))[0]
    run_dir = main_trainer.next_run_dir(flags["outdir"], f"{data_name}-{flags['cond']}-train{flags['train']}")
    click.echo(json.dumps(options, indent=2))
    click.echo(f"Output directory: {run_dir}")
    if flags["dry_run"]:
        click.echo("Dry run; exiting.")
        return
    options.pop("pairs")
    main_trainer.launch(options, run_dir, flags["gpus"])


def _device() -> torch.device:
    return distributed.pick_device(0)


@cli.command(name="eval")
@click.option("--data", required=True, metavar="PAIRED", help="Paired export; its validation split is scored")
@click.option("--network", "networks", multiple=True, required=True, metavar="[NAME=]PKL",
              help="train_cond.py snapshot(s) to score (NAME= to label several, e.g. paper=... ours=...)")
@click.option("--out", required=True, metavar="DIR", help="Folder for evaluation.json and evaluation.png")
@click.option("--max-pairs", type=click.IntRange(min=1), help="Score this many pairs, evenly spread [default: all]")
@click.option("--rollout-steps", type=click.IntRange(min=1), default=16, show_default=True, help="Longest rollout")
@click.option("--force", is_flag=True, help="Replace an existing --out")
@user_errors
def eval_cmd(data: str, networks: Sequence[str], out: str, max_pairs: Optional[int], rollout_steps: int, force: bool) -> None:
    """Score predictors and the baselines (copy-last, linear extrapolation) on the held-out episodes."""
    dataset = _open_pairs(data, "val")
    if max_pairs:
        dataset = NextFrameDataset(data, split="val", max_size=max_pairs)
    named = _named_models([n if "=" in n else f"{os.path.splitext(os.path.basename(n))[0]}={n}" for n in networks],
                          "--network")
    device = _device()
    models = {name: _checked(lambda p=path: load_predictor(p, device)) for name, path in named.items()}
    report = evaluation.evaluate(models, dataset, device, rollout_steps=rollout_steps)
    with atomic_output_dir(out, force) as tmp:
        write_json(os.path.join(tmp, "evaluation.json"), report)
        figures.plot_evaluation(report, os.path.join(tmp, "evaluation.png"), title=os.path.basename(data))
    for name, row in report["one_step"].items():
        click.echo(f"{name:<24} PSNR {row['psnr']:6.2f} dB   SSIM {row['ssim']:.4f}   MSE {row['mse']:8.2f}")
    click.echo(f"Wrote {out}/evaluation.json and evaluation.png")


@cli.command(name="rollout")
@click.option("--network", required=True, metavar="PKL", help="train_cond.py snapshot")
@click.option("--out", required=True, metavar="DIR", help="Folder for rollout.mp4, side_by_side.mp4, figure.png")
@click.option("--video", type=click.Path(), help="Episode to start from (its later frames are the ground truth)")
@click.option("--first-frame", type=click.Path(), help="Or: one image to start from")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="Stored frame to start at")
@click.option("--stride", type=click.IntRange(min=1), default=2, show_default=True, help="Keep every k-th video frame (as frames --stride)")
@click.option("--frames", "steps", type=click.IntRange(min=1), default=48, show_default=True, help="Frames to generate")
@click.option("--page", type=click.Path(), help="One manga page for every frame")
@click.option("--page-function", type=click.Path(), help="Or: page function JSON (frames as stored, after --stride)")
@click.option("--manga", type=click.Path(), help="Volume folder the page function's pages index")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=12, show_default=True, help="Frame rate of the mp4s")
@click.option("--force", is_flag=True, help="Replace an existing --out")
@user_errors
def rollout_cmd(network: str, out: str, **flags: Any) -> None:
    """Autoregressive video F_{n+1} = G(F_n, M(n)) -> mp4, side-by-side mp4 and the study's figure."""
    device = _device()
    model = _checked(lambda: load_predictor(network, device))
    summary = rollout.rollout_to_folder(model, out, flags.pop("steps"), device, page_function_path=flags.pop("page_function"),
                                        **flags)
    click.echo(f"Wrote {summary['frames']} frames to {out}/rollout.mp4"
               + (f" (ground truth beside it: {summary['ground_truth']} frames)" if summary["ground_truth"] else ""))

