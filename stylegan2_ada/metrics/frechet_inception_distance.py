"""Fréchet Inception Distance (Heusel et al. 2017): the Fréchet (2-Wasserstein) distance between
Gaussians fitted to Inception-v3 pool features of real and generated images."""

from typing import Optional

import numpy as np

from .detectors import INCEPTION_URL
from .metric_utils import MetricOptions, compute_feature_stats_for_dataset, compute_feature_stats_for_generator


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance; eigenvalues that rounding pushed below zero count as zero."""
    eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½)`` in float64.

    ``tr (sigma1 sigma2)^½`` is computed as ``tr (A sigma2 A)^½`` with ``A = sigma1^½``: the two
    matrices are similar, but the second is symmetric positive semi-definite, so a symmetric
    eigensolver gives real, non-negative eigenvalues even when the covariances are (nearly)
    singular.  A general matrix square root of the non-symmetric product (scipy's ``sqrtm``,
    Schur based) can return spurious imaginary parts or lose accuracy there; on well-conditioned
    covariances both routes agree to rounding (see the tests).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def compute_fid(opts: MetricOptions, max_real: Optional[int], num_gen: int) -> float:
    """FID of ``opts.G`` against the first ``max_real`` dataset images (None = all); NaN on ranks other than 0."""
    detector_kwargs = dict(return_features=True)
    real = compute_feature_stats_for_dataset(opts, INCEPTION_URL, detector_kwargs, capture_mean_cov=True,
                                             max_items=max_real)
    gen = compute_feature_stats_for_generator(opts, INCEPTION_URL, detector_kwargs, capture_mean_cov=True,
                                              max_items=num_gen)
    if opts.rank != 0:
        return float("nan")
    return frechet_distance(*real.get_mean_cov(), *gen.get_mean_cov())
