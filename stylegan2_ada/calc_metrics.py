"""Compute quality metrics of a network snapshot and append them to metric-<name>.jsonl beside it.

    python -m stylegan2_ada.calc_metrics --metrics=fid50k_full,kid50k_full --network=snapshot.pkl \\
        --data=dataset.zip [--mirror=1] [--gpus=N] [--detector-dir=DIR]

Flags follow the official release's ``calc_metrics.py``.  The CLI only parses arguments and
calls ``metrics.metric_main``; problems the user can fix end in one line.  Which real images
a metric scores is the metric's business (see ``metric_main``): ``--mirror`` only reaches the
older fid50k / kid50k / pr50k3; the ``*_full`` metrics and is50k always read the stored images.
"""

import copy
import os
import tempfile
from typing import Any, Dict, List, Optional

import click
import torch

from . import legacy
from .dnnlib.util import EasyDict, open_url
from .metrics import MetricError, metric_main
from .metrics.metric_utils import MetricOptions, check_network_and_data
from .torch_utils.precision import PRECISIONS, PrecisionError, resolve

DATASET_CLASS = "stylegan2_ada.training.dataset.ImageFolderDataset"
# Dataset classes a snapshot's training_set_kwargs may name (official pickles say 'training.dataset...').
KNOWN_DATASET_CLASSES = {"training.dataset.ImageFolderDataset": DATASET_CLASS, DATASET_CLASS: DATASET_CLASS}


def load_snapshot(network_pkl: str) -> Dict[str, Any]:
    """Snapshot dict from a path or URL; any problem with the file becomes a one-line ClickException."""
    try:
        with open_url(network_pkl) as f:
            return legacy.load_network_pkl(f)
    except (legacy.NetworkLoadError, OSError, ValueError) as err:
        raise click.ClickException(" ".join(str(err).split())) from None


def dataset_kwargs_for(data: Optional[str], mirror: Optional[bool], training_set_kwargs: Optional[Dict[str, Any]],
                       c_dim: int) -> EasyDict:
    """Real-data options: ``--data`` if given, else the snapshot's training set; labels iff G needs them.

    ``max_size`` is cleared (no metric scores a training subset) and ``xflip`` is ``--mirror`` when
    given, else what training used; the metrics then apply their own protocol on top.
    """
    if data is not None:
        kwargs = EasyDict(class_name=DATASET_CLASS, path=data, xflip=False)
    elif training_set_kwargs:
        kwargs = EasyDict(copy.deepcopy(training_set_kwargs))
        if kwargs.get("class_name") not in KNOWN_DATASET_CLASSES:
            raise click.UsageError(f"the snapshot's dataset class {kwargs.get('class_name')!r} is unknown; pass --data")
        kwargs.class_name = KNOWN_DATASET_CLASSES[kwargs.class_name]
    else:
        raise click.UsageError("--data is required: the snapshot does not record its training data")
    kwargs.update(use_labels=c_dim > 0, max_size=None)
    if mirror is not None:
        kwargs.xflip = mirror
    return kwargs


def run_metrics(network_pkl: str, metrics: List[str], dataset_kwargs: Dict[str, Any], detector_dir: Optional[str],
                verbose: bool, num_gpus: int = 1, rank: int = 0, G: Optional[torch.nn.Module] = None,
                precision: Optional[str] = None) -> None:
    """Compute each metric in this process (one rank of ``num_gpus``); rank 0 reports it next to the snapshot.
    ``precision`` (fp32, bf16 or fp16) is the type of G's reduced-precision layers; None = the device default."""
    device = torch.device("cuda", rank) if torch.cuda.is_available() else torch.device("cpu")
    if G is None:
        G = load_snapshot(network_pkl)["G_ema"]
    run_dir = os.path.dirname(os.path.abspath(network_pkl)) if os.path.isfile(network_pkl) else None
    for metric in metrics:
        result = metric_main.calc_metric(metric, G=G, dataset_kwargs=dataset_kwargs, num_gpus=num_gpus, rank=rank,
                                         device=device, progress=verbose, detector_dir=detector_dir,
                                         precision=precision)
        if rank == 0:
            metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=network_pkl)


def _distributed_worker(rank: int, num_gpus: int, init_file: str, job: Dict[str, Any]) -> None:
    """One process per GPU: join the group, then compute its share of every metric."""
    torch.cuda.set_device(rank)
    torch.distributed.init_process_group(backend="nccl", init_method=f"file://{init_file}", rank=rank,
                                         world_size=num_gpus)
    try:
        run_metrics(num_gpus=num_gpus, rank=rank, **job)
    finally:
        torch.distributed.destroy_process_group()


def _metric_list(ctx: click.Context, param: click.Parameter, value: str) -> List[str]:
    """click callback: comma-separated metric names, each one we know."""
    metrics = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in metrics if not metric_main.is_valid_metric(name)]
    if unknown or not metrics:
        raise click.BadParameter(f"unknown metric '{unknown[0] if unknown else value}'; "
                                 f"valid: {', '.join(metric_main.list_valid_metrics())}")
    return metrics


@click.command()
@click.option("--network", "network_pkl", required=True, help="Network snapshot path or URL")
@click.option("--metrics", default="fid50k_full", show_default=True, callback=_metric_list,
              help="Comma-separated metric names")
@click.option("--data", type=click.Path(exists=True), help="Dataset zip or folder [default: the snapshot's]")
@click.option("--mirror", type=bool,
              help="Add x-flipped real images for fid50k/kid50k/pr50k3 (*_full and is50k never flip) "
                   "[default: the snapshot's]")
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True, help="Number of GPUs")
@click.option("--verbose", type=bool, default=True, show_default=True, help="Progress bars")
@click.option("--detector-dir", type=click.Path(exists=True, file_okay=False),
              help="Folder holding inception-2015-12-05.pt / vgg16.pt [default: $MANGANIME_METRIC_NETWORKS, "
                   "else the download cache]")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Type of G's reduced-precision layers: auto = fp16 on CUDA, bf16 on CPUs where it pays, else fp32")
def main(network_pkl: str, metrics: List[str], data: Optional[str], mirror: Optional[bool], gpus: int,
         verbose: bool, detector_dir: Optional[str], precision: str) -> None:
    """Compute quality metrics (FID, KID, precision/recall, IS, PPL) of a trained network."""
    if gpus > 1 and torch.cuda.device_count() < gpus:
        raise click.UsageError(f"--gpus={gpus} needs {gpus} CUDA devices, found {torch.cuda.device_count()}")
    try:
        precision = resolve(precision, torch.device("cuda" if torch.cuda.is_available() else "cpu")).name
    except PrecisionError as err:
        raise click.BadParameter(str(err), param_hint="--precision") from None
    snapshot = load_snapshot(network_pkl)
    dataset_kwargs = dataset_kwargs_for(data, mirror, snapshot.get("training_set_kwargs"), snapshot["G_ema"].c_dim)
    try:
        check_network_and_data(MetricOptions(G=snapshot["G_ema"], dataset_kwargs=dataset_kwargs))
        if gpus == 1:
            run_metrics(network_pkl, metrics, dataset_kwargs, detector_dir, verbose, G=snapshot["G_ema"],
                        precision=precision)
            return
        job = dict(network_pkl=network_pkl, metrics=metrics, dataset_kwargs=dataset_kwargs,
                   detector_dir=detector_dir, verbose=verbose, precision=precision)
        with tempfile.TemporaryDirectory() as rendezvous:
            init_file = os.path.join(rendezvous, ".torch_distributed_init")
            torch.multiprocessing.spawn(_distributed_worker, args=(gpus, init_file, job), nprocs=gpus)
    except MetricError as err:
        raise click.ClickException(str(err)) from None
    except torch.multiprocessing.ProcessRaisedException as err:
        last_line = [line for line in str(err).splitlines() if line.strip()][-1]
        raise click.ClickException(f"a GPU process failed: {last_line}") from None


if __name__ == "__main__":
    main()  # pylint: disable=no-value-for-parameter (click fills the arguments)
