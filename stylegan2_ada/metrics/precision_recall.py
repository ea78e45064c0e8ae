"""Improved precision and recall (Kynkäänniemi et al. 2019).

Each set of VGG16 features approximates its manifold by hyperspheres: around every sample,
one reaching its k-th nearest neighbour in the same set.  Precision is the fraction of
generated samples inside the real manifold, recall the fraction of real samples inside the
generated one.  Distances are computed in row x column blocks, so memory stays
O(row_batch · col_batch) even for 200k x 200k comparisons.
"""

from typing import Optional, Tuple

import torch

from . import MetricError
from .detectors import VGG16_URL
from .metric_utils import MetricOptions, compute_feature_stats_for_dataset, compute_feature_stats_for_generator


def kth_neighbour_radii(features: torch.Tensor, k: int, row_batch_size: int, col_batch_size: int) -> torch.Tensor:
    """Distance from every row to its k-th nearest *other* row.

    The block minimum keeps the k + 1 smallest distances of each row so far; the extra one is
    the row's zero distance to itself.
    """
    if features.shape[0] <= k:
        raise ValueError(f"a {k}-NN manifold needs more than {k} samples, got {features.shape[0]}")
    radii = []
    for rows in features.split(row_batch_size):
        nearest = torch.empty([rows.shape[0], 0], dtype=features.dtype, device=features.device)
        for cols in features.split(col_batch_size):
            candidates = torch.cat([nearest, torch.cdist(rows, cols)], dim=1)
            nearest = candidates.topk(min(k + 1, candidates.shape[1]), dim=1, largest=False).values
        radii.append(nearest[:, k])
    return torch.cat(radii)


def fraction_inside(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor,
                    row_batch_size: int, col_batch_size: int) -> float:
    """Fraction of ``probes`` within ``radii[i]`` (inclusive) of at least one ``manifold[i]``."""
    inside = []
    for rows in probes.split(row_batch_size):
        hit = torch.zeros([rows.shape[0]], dtype=torch.bool, device=rows.device)
        for cols, cols_radii in zip(manifold.split(col_batch_size), radii.split(col_batch_size)):
            hit |= (torch.cdist(rows, cols) <= cols_radii[None, :]).any(dim=1)
        inside.append(hit)
    return float(torch.cat(inside).to(torch.float64).mean())


def precision_recall(real: torch.Tensor, gen: torch.Tensor, nhood_size: int, row_batch_size: int,
                     col_batch_size: int) -> Tuple[float, float]:
    """``(precision, recall)`` of ``gen`` against ``real`` with ``nhood_size``-NN hyperspheres."""
    real_radii = kth_neighbour_radii(real, nhood_size, row_batch_size, col_batch_size)
    gen_radii = kth_neighbour_radii(gen, nhood_size, row_batch_size, col_batch_size)
    precision = fraction_inside(gen, real, real_radii, row_batch_size, col_batch_size)
    recall = fraction_inside(real, gen, gen_radii, row_batch_size, col_batch_size)
    return precision, recall


def compute_pr(opts: MetricOptions, max_real: Optional[int], num_gen: int, nhood_size: int, row_batch_size: int,
               col_batch_size: int) -> Tuple[float, float]:
    """Precision and recall of ``opts.G`` in VGG16 feature space; NaNs on ranks other than 0."""
    detector_kwargs = dict(return_features=True)
    real = compute_feature_stats_for_dataset(opts, VGG16_URL, detector_kwargs, capture_all=True, max_items=max_real)
    gen = compute_feature_stats_for_generator(opts, VGG16_URL, detector_kwargs, capture_all=True, max_items=num_gen)
    if min(real.num_items, gen.num_items) <= nhood_size:
        raise MetricError(f"a {nhood_size}-NN manifold needs more than {nhood_size} real and generated images, "
                          f"got {real.num_items} and {gen.num_items}")
    if opts.rank != 0:
        return float("nan"), float("nan")
    real_t, gen_t = real.get_all_torch().to(opts.device), gen.get_all_torch().to(opts.device)
    return precision_recall(real_t, gen_t, nhood_size, row_batch_size, col_batch_size)
