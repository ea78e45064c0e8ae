"""Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))`` over Inception-v3 class
probabilities of generated images, reported as mean and standard deviation over splits."""

from typing import Tuple

import numpy as np
import torch

from . import MetricError
from .detectors import INCEPTION_URL
from .metric_utils import MetricOptions, compute_feature_stats_for_generator


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Class probabilities from the network's output rows.

    Called with ``no_output_bias=True`` the official Inception file ends in its softmax;
    a network that returns logits instead (rows not on the simplex) gets the softmax here.
    """
    outputs = np.asarray(outputs, np.float64)
    if outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1, atol=1e-3):
        return outputs
    return torch.from_numpy(outputs).softmax(dim=1).numpy()


def inception_score(probs: np.ndarray, num_splits: int) -> Tuple[float, float]:
    """Mean and std of ``exp(mean_x KL(p(y|x) || p(y)))``, p(y) being each split's average, over ``num_splits`` splits.

    ``0 · log 0`` counts as 0, so confident one-hot predictions do not produce NaNs.
    """
    probs = np.asarray(probs, np.float64)
    n = probs.shape[0]
    if n < num_splits:
        raise ValueError(f"IS over {num_splits} splits needs at least {num_splits} images, got {n}")
    edges = [n * split // num_splits for split in range(num_splits + 1)]  # split s is rows edges[s]:edges[s+1]
    scores = np.empty(num_splits)
    for split, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        part = probs[lo:hi]
        marginal = part.mean(axis=0, keepdims=True)
        ratio = np.divide(part, marginal, out=np.ones_like(part), where=part > 0)
        scores[split] = np.exp((part * np.log(ratio)).sum(axis=1).mean())
    return float(scores.mean()), float(scores.std())


def compute_is(opts: MetricOptions, num_gen: int, num_splits: int) -> Tuple[float, float]:
    """IS of ``opts.G`` from ``num_gen`` images; NaNs on ranks other than 0."""
    if num_gen < num_splits:
        raise MetricError(f"IS over {num_splits} splits needs num_gen >= {num_splits}, got {num_gen}")
    # The official file drops the output layer's bias for IS, matching the original TensorFlow implementation.
    class_probabilities = {"no_output_bias": True}
    gen = compute_feature_stats_for_generator(opts, INCEPTION_URL, class_probabilities, capture_all=True,
                                              max_items=num_gen)
    if opts.rank != 0:
        return float("nan"), float("nan")
    return inception_score(as_probabilities(gen.get_all()), num_splits)
