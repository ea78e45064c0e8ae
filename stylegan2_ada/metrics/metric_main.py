"""The metric registry: published metric names, their sample counts, and the JSONL report.

Each registered function fixes the counts that make its number comparable with published
ones (``fid50k_full``: 50k generated images against every real image, ...) and which real
images it scores (``AS_STORED`` / ``NO_SUBSET``).  ``calc_metric`` runs one by name;
``report_metric`` appends the official JSONL line to ``<run_dir>/metric-<name>.jsonl``.
Training calls exactly these two after each snapshot.
"""

import json
import os
import time
from typing import Any, Callable, Dict, List, Optional

from ..dnnlib.util import EasyDict, atomic_write, format_time
from . import MetricError
from . import frechet_inception_distance, inception_score, kernel_inception_distance
from . import perceptual_path_length, precision_recall
from .metric_utils import MetricOptions, check_network_and_data

MetricFunction = Callable[[MetricOptions], Dict[str, float]]
_REGISTRY: Dict[str, MetricFunction] = {}

# Which real images a metric scores, whatever options training or the CLI passed (the
# official protocol).  The recommended metrics and is50k read the dataset exactly as it is
# stored, so `--mirror` or `--subset` at training time never changes their numbers; the older
# 50k metrics read every stored image and, when the options ask for it, the mirrored copies.
AS_STORED = dict(max_size=None, xflip=False)
NO_SUBSET = dict(max_size=None)


def register_metric(fn: MetricFunction) -> MetricFunction:
    """Decorator: make ``fn`` available under its own name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def is_valid_metric(metric: str) -> bool:
    return metric in _REGISTRY


def list_valid_metrics() -> List[str]:
    return list(_REGISTRY)


def calc_metric(metric: str, **kwargs: Any) -> EasyDict:
    """Run ``metric`` with ``MetricOptions(**kwargs)``; returns the fields of the official JSONL line.

    With sample-count overrides (``counts=`` or ``$MANGANIME_METRIC_COUNTS``) the result also
    carries ``counts``, so a quick number is never mistaken for a published-protocol one.
    """
    if not is_valid_metric(metric):
        raise MetricError(f"unknown metric '{metric}'; valid metrics: {', '.join(list_valid_metrics())}")
    opts = MetricOptions(**kwargs)
    check_network_and_data(opts)
    started = time.time()
    values = _REGISTRY[metric](opts)
    seconds = time.time() - started
    result = EasyDict(results=EasyDict(values), metric=metric, total_time=seconds,
                      total_time_str=format_time(seconds), num_gpus=opts.num_gpus)
    if opts.counts:
        result.counts = dict(opts.counts)
    return result


def report_metric(result_dict: Dict[str, Any], run_dir: Optional[str] = None,
                  snapshot_pkl: Optional[str] = None) -> None:
    """Print the JSONL line and, with ``run_dir``, append it to ``metric-<name>.jsonl`` there.

    The snapshot is named relative to ``run_dir`` when there is one.  The append rewrites the
    file through a temp file + rename, so a crash never leaves a torn line.
    """
    metric = result_dict["metric"]
    snapshot = snapshot_pkl if run_dir is None or snapshot_pkl is None else os.path.relpath(snapshot_pkl, run_dir)
    entry = {key: result_dict[key] for key in ("results", "metric", "total_time", "total_time_str", "num_gpus")}
    entry.update(snapshot_pkl=snapshot, timestamp=time.time())
    entry.update({key: value for key, value in result_dict.items() if key not in entry})  # e.g. counts, last
    line = json.dumps(entry)
    print(line)
    if run_dir is None or not os.path.isdir(run_dir):
        return
    path = os.path.join(run_dir, f"metric-{metric}.jsonl")
    previous = b""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            previous = f.read()
        if previous and not previous.endswith(b"\n"):
            previous += b"\n"
    with atomic_write(path) as f:
        f.write(previous + line.encode("utf-8") + b"\n")


# ---------------------------------------------------------------------------------------------
# Recommended metrics (the official release's primary set): real images as stored.


@register_metric
def fid50k_full(opts: MetricOptions) -> Dict[str, float]:
    opts = opts.with_dataset(**AS_STORED)
    fid = frechet_inception_distance.compute_fid(opts, max_real=opts.count("max_real", None),
                                                 num_gen=opts.count("num_gen", 50000))
    return {"fid50k_full": fid}


@register_metric
def kid50k_full(opts: MetricOptions) -> Dict[str, float]:
    opts = opts.with_dataset(**AS_STORED)
    kid = kernel_inception_distance.compute_kid(opts, max_real=opts.count("max_real", 1000000),
                                                num_gen=opts.count("num_gen", 50000),
                                                num_subsets=opts.count("num_subsets", 100),
                                                max_subset_size=opts.count("max_subset_size", 1000))
    return {"kid50k_full": kid}


@register_metric
def pr50k3_full(opts: MetricOptions) -> Dict[str, float]:
    opts = opts.with_dataset(**AS_STORED)
    precision, recall = precision_recall.compute_pr(opts, max_real=opts.count("max_real", 200000),
                                                    num_gen=opts.count("num_gen", 50000), nhood_size=3,
                                                    row_batch_size=10000, col_batch_size=10000)
    return {"pr50k3_full_precision": precision, "pr50k3_full_recall": recall}


@register_metric
def ppl2_wend(opts: MetricOptions) -> Dict[str, float]:
    # The dataset only supplies labels here; the official metric leaves its options as given.
    ppl = perceptual_path_length.compute_ppl(opts, num_samples=opts.count("num_samples", 50000), epsilon=1e-4,
                                             space="w", sampling="end", crop=False, batch_size=2)
    return {"ppl2_wend": ppl}


@register_metric
def is50k(opts: MetricOptions) -> Dict[str, float]:
    opts = opts.with_dataset(**AS_STORED)  # labels for a conditional G come from the stored images
    mean, std = inception_score.compute_is(opts, num_gen=opts.count("num_gen", 50000),
                                           num_splits=opts.count("num_splits", 10))
    return {"is50k_mean": mean, "is50k_std": std}


# ---------------------------------------------------------------------------------------------
# Legacy metrics (StyleGAN / StyleGAN2 papers' protocols): every image, x-flips as the options say.


@register_metric
def fid50k(opts: MetricOptions) -> Dict[str, float]:
    opts = opts.with_dataset(**NO_SUBSET)
    fid = frechet_inception_distance.compute_fid(opts, max_real=opts.count("max_real", 50000),
                                                 num_gen=opts.count("num_gen", 50000))
    return {"fid50k": fid}


@register_metric
def kid50k(opts: MetricOptions) -> Dict[str, float]:
    opts = opts.with_dataset(**NO_SUBSET)
    kid = kernel_inception_distance.compute_kid(opts, max_real=opts.count("max_real", 50000),
                                                num_gen=opts.count("num_gen", 50000),
                                                num_subsets=opts.count("num_subsets", 100),
                                                max_subset_size=opts.count("max_subset_size", 1000))
    return {"kid50k": kid}


@register_metric
def pr50k3(opts: MetricOptions) -> Dict[str, float]:
    opts = opts.with_dataset(**NO_SUBSET)
    precision, recall = precision_recall.compute_pr(opts, max_real=opts.count("max_real", 50000),
                                                    num_gen=opts.count("num_gen", 50000), nhood_size=3,
                                                    row_batch_size=10000, col_batch_size=10000)
    return {"pr50k3_precision": precision, "pr50k3_recall": recall}


def _ppl(opts: MetricOptions, space: str, sampling: str) -> float:
    """The StyleGAN paper's PPL variants: face crop, 50k paths."""
    return perceptual_path_length.compute_ppl(opts, num_samples=opts.count("num_samples", 50000), epsilon=1e-4,
                                              space=space, sampling=sampling, crop=True, batch_size=2)


@register_metric
def ppl_zfull(opts: MetricOptions) -> Dict[str, float]:
    return {"ppl_zfull": _ppl(opts, "z", "full")}


@register_metric
def ppl_wfull(opts: MetricOptions) -> Dict[str, float]:
    return {"ppl_wfull": _ppl(opts, "w", "full")}


@register_metric
def ppl_zend(opts: MetricOptions) -> Dict[str, float]:
    return {"ppl_zend": _ppl(opts, "z", "end")}


@register_metric
def ppl_wend(opts: MetricOptions) -> Dict[str, float]:
    return {"ppl_wend": _ppl(opts, "w", "end")}
