"""What every metric shares: its options, and streaming images (real or generated) into FeatureStats.

Images reach the feature network exactly as the published metrics feed them: uint8 NCHW,
3 channels (grey repeated), generator output mapped by ``x * 127.5 + 128`` then clamped.
Dataset statistics are cached on disk, keyed by the dataset, the network and the options,
because they are the expensive half of FID and never change between snapshots.
Under torch.distributed every rank streams a disjoint slice and the pieces are summed
(means/covariances) or gathered (captured rows), so no item is counted twice.
"""

import contextlib
import copy
import hashlib
import json
import os
import sys
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from ..dnnlib.util import EasyDict, construct_class_by_name, make_cache_dir_path
from ..torch_utils.precision import DTYPES, reduced_precision
from . import MetricError
from .detectors import detector_source_name, get_feature_detector
from .feature_stats import FeatureStats

__all__ = ["MetricError", "MetricOptions", "FeatureStats", "get_feature_detector", "check_network_and_data",
           "compute_feature_stats_for_dataset", "compute_feature_stats_for_generator", "frozen_generator", "gather_rows",
           "image_options", "make_label_sampler", "parse_counts", "rank_share", "seeded_global_rng"]

COUNTS_ENV = "MANGANIME_METRIC_COUNTS"
COUNT_NAMES = ("num_gen", "max_real", "num_subsets", "max_subset_size", "num_splits", "num_samples")


def parse_counts(spec: Union[None, str, Dict[str, int]]) -> Dict[str, int]:
    """Sample-count overrides (tests, quick looks): ``'num_gen=64,max_real=100'`` or a dict; names in COUNT_NAMES."""
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs = [part.split("=", 1) for part in spec.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise MetricError(f"sample counts '{spec}' are not of the form name=N,name=N")
        spec = {name.strip(): value.strip() for name, value in pairs}
    counts = {}
    for name, value in spec.items():
        if name not in COUNT_NAMES:
            raise MetricError(f"unknown sample count '{name}'; known: {', '.join(COUNT_NAMES)}")
        try:
            counts[name] = int(value)
        except ValueError:
            raise MetricError(f"sample count {name}={value} is not a whole number") from None
        if counts[name] < 1:
            raise MetricError(f"sample count {name}={value} must be at least 1")
    return counts


class MetricOptions:
    """Everything a metric function needs, passed as one object (the official ``opts``)."""

    def __init__(
        self,
        G: Optional[torch.nn.Module] = None,  # Generator to evaluate (usually G_ema); None for dataset-only work.
        G_kwargs: Optional[Dict[str, Any]] = None,  # Extra G(z, c, ...) arguments, e.g. noise_mode.
        dataset_kwargs: Optional[Dict[str, Any]] = None,  # dict(class_name=..., path=..., ...) of the real data.
        num_gpus: int = 1,  # Number of processes in the torch.distributed group.
        rank: int = 0,  # This process's rank in that group.
        device: Optional[torch.device] = None,  # None = cuda:<rank> when CUDA is available, else CPU.
        progress: Optional[bool] = None,  # tqdm bars on rank 0: True, False, None = when stderr is a terminal.
        cache: bool = True,  # Cache dataset feature statistics on disk?
        detector_dir: Optional[str] = None,  # Folder with the .pt feature networks; None = $MANGANIME_METRIC_NETWORKS.
        counts: Union[None, str, Dict[str, int]] = None,  # Sample-count overrides; None = $MANGANIME_METRIC_COUNTS.
        num_workers: Optional[int] = None,  # DataLoader worker processes for real images; None = min(3, CPUs).
        precision: Optional[str] = None,  # G's reduced-precision layers: fp32, bf16 or fp16; None = as called.
    ):
        if not 0 <= rank < num_gpus:
            raise MetricError(f"rank {rank} is outside 0..{num_gpus - 1}")
        if num_gpus > 1 and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            raise MetricError(f"num_gpus={num_gpus} needs an initialised torch.distributed process group")
        self.G = G
        self.G_kwargs = EasyDict(G_kwargs or {})
        self.dataset_kwargs = EasyDict(dataset_kwargs or {})
        self.num_gpus = num_gpus
        self.rank = rank
        if device is None:
            device = torch.device("cuda", rank) if torch.cuda.is_available() else torch.device("cpu")
        self.device = torch.device(device)
        self.show_progress = rank == 0 and (sys.stderr.isatty() if progress is None else bool(progress))
        self.cache = cache
        self.detector_dir = detector_dir
        self.counts = parse_counts(os.environ.get(COUNTS_ENV) if counts is None else counts)
        self.num_workers = min(3, os.cpu_count() or 1) if num_workers is None else num_workers
        if precision is not None and precision not in DTYPES:
            raise MetricError(f"precision must be one of {', '.join(DTYPES)} (resolve 'auto' first), got '{precision}'")
        self.precision = precision

    def count(self, name: str, default: Optional[int]) -> Optional[int]:
        """The published sample count ``default`` unless an override names ``name``."""
        return self.counts.get(name, default)

    def with_dataset(self, **overrides: Any) -> "MetricOptions":
        """A copy whose real-data options have ``overrides`` applied (this object is left alone).

        Metrics use it to fix which real images they score, whatever training used: e.g.
        ``max_size=None, xflip=False`` scores the dataset exactly as stored.  Without a dataset
        (an unconditional network scored on generated images only) there is nothing to override.
        """
        if not self.dataset_kwargs:
            return self
        scoped = copy.copy(self)
        scoped.dataset_kwargs = EasyDict(self.dataset_kwargs, **overrides)
        return scoped

    def detector(self, url: str, required_args: Sequence[str] = ("return_features",)) -> torch.jit.ScriptModule:
        return get_feature_detector(url, device=self.device, num_gpus=self.num_gpus, rank=self.rank,
                                    verbose=self.show_progress, detector_dir=self.detector_dir,
                                    required_args=required_args)


# ---------------------------------------------------------------------------------------------
# Data and network checks.


def open_dataset(opts: MetricOptions) -> Any:
    """Construct the real dataset from ``opts.dataset_kwargs``; problems become one-line MetricErrors."""
    if not opts.dataset_kwargs:
        raise MetricError("this metric needs the real dataset: pass --data (dataset_kwargs)")
    try:
        return construct_class_by_name(**opts.dataset_kwargs)
    except (OSError, ValueError) as err:
        where = opts.dataset_kwargs.get("path", opts.dataset_kwargs.get("class_name"))
        raise MetricError(f"cannot open dataset {where}: {' '.join(str(err).split())}") from None


def check_network_and_data(opts: MetricOptions) -> None:
    """Fail before any expensive work when the dataset cannot be compared with ``opts.G``."""
    if opts.G is None or not opts.dataset_kwargs:
        return
    G = opts.G
    if G.img_channels not in (1, 3):
        raise MetricError(f"the feature networks take grey or RGB images, "
                          f"but the network makes {G.img_channels}-channel ones")
    try:
        dataset = open_dataset(opts)
    except MetricError as err:
        if G.c_dim > 0:  # the labels it needs are a likely cause: say that the network asks for them
            raise MetricError(f"{err} (the network is conditional, c_dim={G.c_dim})") from None
        raise
    where = opts.dataset_kwargs.get("path", "the dataset")
    if dataset.resolution != G.img_resolution:
        raise MetricError(f"{where} has {dataset.resolution}x{dataset.resolution} images, "
                          f"but the network makes {G.img_resolution}x{G.img_resolution}")
    if dataset.num_channels != G.img_channels:
        raise MetricError(f"{where} has {dataset.num_channels}-channel images, "
                          f"but the network makes {G.img_channels}-channel ones")
    if G.c_dim > 0 and not dataset.has_labels:
        raise MetricError(f"the network is conditional (c_dim={G.c_dim}) but {where} has no labels "
                          "(dataset.json 'labels', loaded with use_labels=True)")
    if G.c_dim > 0 and dataset.label_dim != G.c_dim:
        raise MetricError(f"{where} has {dataset.label_dim}-dim labels, but the network expects c_dim={G.c_dim}")


def make_label_sampler(opts: MetricOptions, c_dim: int, seed: int) -> Callable[[int], torch.Tensor]:
    """``sample(n) -> [n, c_dim]`` labels of random dataset items, as the published metrics condition G."""
    if c_dim == 0:
        return lambda n: torch.zeros([n, 0], device=opts.device)
    dataset = open_dataset(opts)
    rng = np.random.RandomState(seed)

    def sample(n: int) -> torch.Tensor:
        labels = np.stack([dataset.get_label(int(i)) for i in rng.randint(len(dataset), size=n)])
        return torch.from_numpy(labels.astype(np.float32)).to(opts.device)

    return sample


def to_detector_input(images: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` images -> 3 channels, grey repeated (the published convention)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise MetricError(f"metrics need 1- or 3-channel images, got a batch of shape {list(images.shape)}")
    return images.repeat([1, 3, 1, 1]) if images.shape[1] == 1 else images


@contextlib.contextmanager
def seeded_global_rng(opts: MetricOptions, seed: int) -> Iterator[None]:
    """Seed torch's global RNG (which G's random noise inputs draw from) for a block, then restore it.

    Metrics repeat exactly, and the caller's random stream (training's) is left as it was.
    """
    with torch.random.fork_rng(devices=[opts.device] if opts.device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def frozen_generator(opts: MetricOptions) -> torch.nn.Module:
    """A private copy of ``opts.G`` in eval mode, without gradients, on ``opts.device``.

    A copy, because metrics run in the middle of training and must not touch the live module.
    """
    G = copy.deepcopy(opts.G)
    return G.eval().requires_grad_(False).to(opts.device)


def generated_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Generator output in about [-1, 1] -> uint8 NCHW, rounded as the published metrics round it."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# torch.distributed plumbing (a no-op with one process).


def rank_share(total: int, opts: MetricOptions) -> int:
    """How many of ``total`` items this rank produces: the shares add up to exactly ``total``."""
    return total // opts.num_gpus + int(opts.rank < total % opts.num_gpus)


def _all_reduce_sum(array: np.ndarray, opts: MetricOptions) -> np.ndarray:
    tensor = torch.as_tensor(array).to(opts.device)
    torch.distributed.all_reduce(tensor)
    return tensor.cpu().numpy()


def gather_rows(rows: np.ndarray, opts: MetricOptions) -> np.ndarray:
    """Concatenate every rank's ``[n_rank, ...]`` array (sizes may differ) on every rank."""
    if opts.num_gpus == 1:
        return rows
    rows_t = torch.as_tensor(np.ascontiguousarray(rows)).to(opts.device)
    sizes = [torch.zeros([], dtype=torch.int64, device=opts.device) for _ in range(opts.num_gpus)]
    torch.distributed.all_gather(sizes, torch.tensor(rows_t.shape[0], device=opts.device))
    padded = torch.zeros([int(max(sizes)), *rows_t.shape[1:]], dtype=rows_t.dtype, device=opts.device)
    padded[: rows_t.shape[0]] = rows_t
    parts = [torch.empty_like(padded) for _ in range(opts.num_gpus)]
    torch.distributed.all_gather(parts, padded)
    return torch.cat([part[: int(size)] for part, size in zip(parts, sizes)]).cpu().numpy()


def _gather_stats(stats: FeatureStats, opts: MetricOptions) -> FeatureStats:
    """Sum the running sums and concatenate the captured rows of all ranks."""
    if opts.num_gpus == 1:
        return stats
    # A rank that got no items has not seen the feature dimension yet; it needs it for the shapes.
    stats.set_num_features(int(gather_rows(np.array([stats.num_features or -1]), opts).max()))
    state = stats.state()
    state["num_items"] = _all_reduce_sum(state["num_items"], opts)
    if stats.capture_mean_cov:
        state["sum"] = _all_reduce_sum(state["sum"], opts)
        state["sum_outer"] = _all_reduce_sum(state["sum_outer"], opts)
    if stats.capture_all:
        state["all"] = gather_rows(state["all"], opts)
    return FeatureStats.from_state(state)


def _broadcast_flag(flag: bool, opts: MetricOptions) -> bool:
    """Rank 0's answer, so all ranks take the same branch (e.g. cache hit) and collectives stay matched."""
    if opts.num_gpus == 1:
        return flag
    tensor = torch.tensor(int(flag), device=opts.device)
    torch.distributed.broadcast(tensor, src=0)
    return bool(tensor.item())


# ---------------------------------------------------------------------------------------------
# Streaming.


def image_options(dataset_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The dataset options that decide which images are read, in one canonical form.

    Labels and the resolution check do not change the images, and the subset seed matters
    only with a subset; ``max_size`` and ``xflip`` are spelled out with their defaults.  So the
    options training records and the ones ``calc_metrics`` builds name the same statistics
    when they read the same images, and different ones whenever a subset or mirroring
    changes the images.
    """
    options = dict(dataset_kwargs)
    options.pop("use_labels", None)
    options.pop("resolution", None)  # a check on the images, never a change to them
    options.setdefault("max_size", None)
    options["xflip"] = bool(options.get("xflip", False))
    if options["max_size"] is None:
        options.pop("random_seed", None)
    return options


def _stats_cache_file(opts: MetricOptions, detector_url: str, key: Dict[str, Any]) -> str:
    """``gan-metrics/<dataset>-<network>-<md5>.npz`` in the dnnlib cache.

    The key holds the options the statistics were computed with (after any override the
    metric applied, see ``MetricOptions.with_dataset``), and the dataset file's size and
    mtime, so statistics of a dataset rewritten in place are not reused.
    """
    path = opts.dataset_kwargs.get("path")
    if path is not None and os.path.exists(path):
        info = os.stat(path)
        key = dict(key, dataset_file=[info.st_size, info.st_mtime_ns])
    key = dict(key, dataset_kwargs=image_options(opts.dataset_kwargs), detector_url=detector_url,
               detector_file=detector_source_name(detector_url, opts.detector_dir))
    md5 = hashlib.md5(json.dumps(key, sort_keys=True, default=repr).encode("utf-8")).hexdigest()
    dataset_name = os.path.splitext(os.path.basename(str(path or "dataset").rstrip("/")))[0]
    detector_name = os.path.splitext(os.path.basename(detector_url))[0]
    return make_cache_dir_path("gan-metrics", f"{dataset_name}-{detector_name}-{md5}.npz")


def compute_feature_stats_for_dataset(opts: MetricOptions, detector_url: str, detector_kwargs: Dict[str, Any],
                                      capture_all: bool = False, capture_mean_cov: bool = False,
                                      max_items: Optional[int] = None, batch_size: int = 64) -> FeatureStats:
    """Features of the first ``max_items`` dataset items (all when None), streamed in batches.

    Memory is the DataLoader's prefetch plus the stats: O(dim²) for mean/cov, O(max_items·dim)
    only when ``capture_all`` asks for the rows.
    """
    dataset = open_dataset(opts)
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    cache_file = None
    if opts.cache:
        key = dict(detector_kwargs=detector_kwargs, capture_all=capture_all, capture_mean_cov=capture_mean_cov,
                   num_items=num_items)
        cache_file = _stats_cache_file(opts, detector_url, key)
        cached = _broadcast_flag(os.path.isfile(cache_file), opts)
        if cached:
            return FeatureStats.load(cache_file)  # every rank reads it: all need the same stats

    detector = opts.detector(detector_url, required_args=tuple(detector_kwargs))
    indices = list(range(opts.rank, num_items, opts.num_gpus))
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=len(indices))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size,
                                         num_workers=opts.num_workers, pin_memory=opts.device.type == "cuda")
    with torch.no_grad(), tqdm(total=len(indices), desc="dataset features", unit="img",
                               disable=not opts.show_progress) as bar:
        for images, _labels in loader:
            features = detector(to_detector_input(images).to(opts.device), **detector_kwargs)
            stats.append_torch(features)
            bar.update(images.shape[0])
    stats = _gather_stats(stats, opts)
    if opts.rank == 0 and cache_file:
        stats.save(cache_file)
    return stats


def compute_feature_stats_for_generator(opts: MetricOptions, detector_url: str, detector_kwargs: Dict[str, Any],
                                        capture_all: bool = False, capture_mean_cov: bool = False,
                                        max_items: int = 50000, batch_size: int = 32) -> FeatureStats:
    """Features of ``max_items`` generated images: z ~ N(0, I), labels of random dataset items, ``G(z, c, **G_kwargs)``.

    ``G_kwargs`` defaults to nothing, i.e. truncation 1 and random noise, as the published numbers use.
    Latents, labels and noise are seeded by rank, so re-evaluating a snapshot repeats its numbers.
    """
    G = frozen_generator(opts)
    sample_labels = make_label_sampler(opts, G.c_dim, seed=opts.rank)
    z_rng = torch.Generator().manual_seed(opts.rank)
    detector = opts.detector(detector_url, required_args=tuple(detector_kwargs))
    count = rank_share(max_items, opts)
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=count)
    with torch.no_grad(), seeded_global_rng(opts, seed=opts.rank), reduced_precision(opts.precision), \
            tqdm(total=count, desc="generated features", unit="img", disable=not opts.show_progress) as bar:
        for done in range(0, count, batch_size):
            n = min(batch_size, count - done)
            z = torch.randn([n, G.z_dim], generator=z_rng).to(opts.device)
            images = generated_to_uint8(G(z, sample_labels(n), **opts.G_kwargs))
            stats.append_torch(detector(to_detector_input(images), **detector_kwargs))
            bar.update(n)
    return _gather_stats(stats, opts)
