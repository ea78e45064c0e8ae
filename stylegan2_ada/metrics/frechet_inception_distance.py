"""Fréchet Inception Distance (Heusel et al. 2017): the Fréchet (2-Wasserstein) distance between
Gaussians fitted to Inception-v3 pool features of real and generated images."""

from typing import Optional, Tuple

import numpy as np

from .detectors import INCEPTION_URL
from .metric_utils import MetricOptions, compute_feature_stats_for_dataset, compute_feature_stats_for_generator


def _psd_eig(matrix: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a covariance with eigenvalues below its rounding level set to exactly 0.

    ``eigh`` resolves eigenvalues only to about ``dim · eps · max|eigenvalue|``; anything smaller,
    negative ones included, is indistinguishable from zero (e.g. the null space of a covariance
    estimated from fewer samples than dimensions).
    """
    eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2)
    floor = max(eigvals.max(), 0) * len(eigvals) * np.finfo(np.float64).eps
    return np.where(eigvals > floor, eigvals, 0), eigvecs


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½)`` in float64.

    ``tr (sigma1 sigma2)^½`` equals the sum of singular values of ``sigma1^½ sigma2^½``
    (its eigenvalues are those of ``sigma1^½ sigma2 sigma1^½``, the squared singular values),
    and that is how it is computed: symmetric eigensolvers for the two square roots, then an
    SVD.  The usual route, a general matrix square root of the non-symmetric product (scipy's
    Schur-based ``sqrtm``), takes a square root of rounding noise wherever the product is
    singular, which costs ~sqrt(eps) per null direction and spurious imaginary parts; the SVD
    route keeps the null space at exactly zero.  On well-conditioned covariances the two agree
    to rounding (see the tests).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    w1, v1 = _psd_eig(sigma1)
    w2, v2 = _psd_eig(sigma2)
    # sigma1^½ sigma2^½ = v1 diag(√w1) (v1ᵀ v2) diag(√w2) v2ᵀ; the outer orthogonal factors
    # do not change singular values.
    core = np.sqrt(w1)[:, None] * (v1.T @ v2) * np.sqrt(w2)[None, :]
    trace_sqrt = np.linalg.svd(core, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def compute_fid(opts: MetricOptions, max_real: Optional[int], num_gen: int) -> float:
    """FID of ``opts.G`` against the first ``max_real`` dataset images (None = all); NaN on ranks other than 0."""
    pool_features = {"return_features": True}
    real = compute_feature_stats_for_dataset(opts, INCEPTION_URL, pool_features, capture_mean_cov=True,
                                             max_items=max_real)
    gen = compute_feature_stats_for_generator(opts, INCEPTION_URL, pool_features, capture_mean_cov=True,
                                              max_items=num_gen)
    if opts.rank != 0:
        return float("nan")
    return frechet_distance(*real.get_mean_cov(), *gen.get_mean_cov())
