"""Improved precision and recall (Kynkäänniemi et al. 2019).

Each set of VGG16 features approximates its manifold by hyperspheres: around every sample,
one reaching its k-th nearest neighbour in the same set.  Precision is the fraction of
generated samples inside the real manifold, recall the fraction of real samples inside the
generated one.  Distances are computed in row x column blocks, so memory stays
O(row_batch · col_batch) even for 200k x 200k comparisons.

Precision follows the published protocol: both feature sets are cast to float16 and every
distance is computed in float16 (``PR_DTYPE``); k-NN radii are selected in float32 from those
distances and kept as float16.  Rounding moves samples near a sphere's surface in or out,
which can change PR in the second decimal against a float32 computation of the same features.
"""

from typing import Optional, Tuple

import torch

from . import MetricError
from .detectors import VGG16_URL
from .metric_utils import MetricOptions, compute_feature_stats_for_dataset, compute_feature_stats_for_generator

PR_DTYPE = torch.float16  # the precision the official metric computes distances in


def pairwise_distances(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Euclidean distance ``[R, C]`` between every row and column vector, in their own dtype.

    Computed as ``sqrt(max(|r|² - 2 r·c + |c|², 0))`` with the two squared norms folded into
    one matrix product (``[-2r, |r|², 1] · [c, 1, |c|²]``).  That is exactly what
    ``torch.cdist`` does for more than 25 rows or columns, which is how the official metric
    gets its float16 distances from 10000-row batches.  Calling it directly (a) gives the same
    float16 numbers for blocks of any size (cdist switches to a direct formula at <= 25 rows
    and columns) and (b) works on CPUs, where float16 cdist has no kernel for that direct
    formula.  Norms and products round to the dtype as cdist's do, so large norms lose
    relative precision in the difference: that is part of the protocol being matched.
    """
    row_sq = rows.square().sum(dim=1, keepdim=True)
    col_sq = cols.square().sum(dim=1, keepdim=True)
    lhs = torch.cat([rows * -2, row_sq, torch.ones_like(row_sq)], dim=1)
    rhs = torch.cat([cols, torch.ones_like(col_sq), col_sq], dim=1)
    return (lhs @ rhs.T).clamp_min(0).sqrt()


def kth_neighbour_radii(features: torch.Tensor, k: int, row_batch_size: int, col_batch_size: int) -> torch.Tensor:
    """Distance from every row to its k-th nearest *other* row, in the dtype of ``features``.

    Distances are computed in that dtype; the running selection is done in (at least) float32.
    The block minimum keeps the k + 1 smallest distances of each row so far; the extra one is
    the row's distance to itself (zero, up to rounding).
    """
    if features.shape[0] <= k:
        raise ValueError(f"a {k}-NN manifold needs more than {k} samples, got {features.shape[0]}")
    select_dtype = torch.promote_types(features.dtype, torch.float32)
    radii = []
    for rows in features.split(row_batch_size):
        nearest = torch.empty([rows.shape[0], 0], dtype=select_dtype, device=features.device)
        for cols in features.split(col_batch_size):
            candidates = torch.cat([nearest, pairwise_distances(rows, cols).to(select_dtype)], dim=1)
            nearest = candidates.topk(min(k + 1, candidates.shape[1]), dim=1, largest=False).values
        radii.append(nearest[:, k])
    return torch.cat(radii).to(features.dtype)


def fraction_inside(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor,
                    row_batch_size: int, col_batch_size: int) -> float:
    """Fraction of ``probes`` within ``radii[i]`` (inclusive) of at least one ``manifold[i]``, all in one dtype."""
    inside = []
    for rows in probes.split(row_batch_size):
        hit = torch.zeros([rows.shape[0]], dtype=torch.bool, device=rows.device)
        for cols, cols_radii in zip(manifold.split(col_batch_size), radii.split(col_batch_size)):
            hit |= (pairwise_distances(rows, cols) <= cols_radii[None, :]).any(dim=1)
        inside.append(hit)
    return float(torch.cat(inside).to(torch.float64).mean())


def precision_recall(real: torch.Tensor, gen: torch.Tensor, nhood_size: int, row_batch_size: int,
                     col_batch_size: int, dtype: torch.dtype = PR_DTYPE) -> Tuple[float, float]:
    """``(precision, recall)`` of ``gen`` against ``real`` with ``nhood_size``-NN hyperspheres.

    Both sets are cast to ``dtype`` first: float16 by default, as the published numbers are
    computed; a wider dtype gives the exact-arithmetic answer (the tests compare the two).
    """
    real, gen = real.to(dtype), gen.to(dtype)
    real_radii = kth_neighbour_radii(real, nhood_size, row_batch_size, col_batch_size)
    gen_radii = kth_neighbour_radii(gen, nhood_size, row_batch_size, col_batch_size)
    precision = fraction_inside(gen, real, real_radii, row_batch_size, col_batch_size)
    recall = fraction_inside(real, gen, gen_radii, row_batch_size, col_batch_size)
    return precision, recall


def compute_pr(opts: MetricOptions, max_real: Optional[int], num_gen: int, nhood_size: int, row_batch_size: int,
               col_batch_size: int) -> Tuple[float, float]:
    """Precision and recall of ``opts.G`` in VGG16 feature space; NaNs on ranks other than 0."""
    wanted = {"return_features": True}
    real = compute_feature_stats_for_dataset(opts, VGG16_URL, wanted, capture_all=True, max_items=max_real)
    gen = compute_feature_stats_for_generator(opts, VGG16_URL, wanted, capture_all=True, max_items=num_gen)
    if min(real.num_items, gen.num_items) <= nhood_size:
        raise MetricError(f"a {nhood_size}-NN manifold needs more than {nhood_size} real and generated images, "
                          f"got {real.num_items} and {gen.num_items}")
    if opts.rank != 0:
        return float("nan"), float("nan")
    real_t, gen_t = real.get_all_torch().to(opts.device), gen.get_all_torch().to(opts.device)
    return precision_recall(real_t, gen_t, nhood_size, row_batch_size, col_batch_size)
