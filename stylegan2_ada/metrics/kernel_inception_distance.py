"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased estimate of the squared MMD between
real and generated Inception features under the cubic polynomial kernel, averaged over random subsets."""

from typing import Optional

import numpy as np

from . import MetricError
from .detectors import INCEPTION_URL
from .metric_utils import MetricOptions, compute_feature_stats_for_dataset, compute_feature_stats_for_generator


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``k(a, b) = (a·b / d + 1)³`` for every row pair, d = feature dimension."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of equal-size samples: off-diagonal means of k(x, x) and k(y, y) minus twice the mean of k(x, y).

    Dropping the diagonals (a point compared with itself) is what makes the estimate unbiased,
    so two samples of one distribution score 0 on average, not a positive bias.
    """
    m = x.shape[0]
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * polynomial_kernel(x, y).mean())


def kernel_inception_distance(real: np.ndarray, gen: np.ndarray, num_subsets: int, max_subset_size: int,
                              seed: int = 0) -> float:
    """Mean of ``mmd2_unbiased`` over ``num_subsets`` random subsets (without replacement) of both sets.

    Subsets keep the cost at O(num_subsets · m²) instead of O(N²) for 50k-image sets.
    """
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 real and 2 generated samples")
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        # float64 per subset only: a float64 copy of every real feature would double the memory.
        x = np.asarray(gen[rng.choice(gen.shape[0], m, replace=False)], np.float64)
        y = np.asarray(real[rng.choice(real.shape[0], m, replace=False)], np.float64)
        total += mmd2_unbiased(x, y)
    return total / num_subsets


def compute_kid(opts: MetricOptions, max_real: Optional[int], num_gen: int, num_subsets: int,
                max_subset_size: int) -> float:
    """KID of ``opts.G`` against up to ``max_real`` dataset images; NaN on ranks other than 0."""
    pool_features = {"return_features": True}
    real = compute_feature_stats_for_dataset(opts, INCEPTION_URL, pool_features, capture_all=True,
                                             max_items=max_real)
    gen = compute_feature_stats_for_generator(opts, INCEPTION_URL, pool_features, capture_all=True,
                                              max_items=num_gen)
    if min(real.num_items, gen.num_items) < 2:
        raise MetricError(f"KID needs at least 2 real and 2 generated images, got {real.num_items} and {gen.num_items}")
    if opts.rank != 0:
        return float("nan")
    return kernel_inception_distance(real.get_all(), gen.get_all(), num_subsets, max_subset_size)
