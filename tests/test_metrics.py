"""Metrics: the maths against closed forms and brute force, then the whole path end to end.

No real Inception/VGG16 weights are needed: a tiny TorchScript "detector" with the official
call signature stands in for both, so dataset -> features -> stats -> metric -> JSONL runs
through ``metric_main`` and the ``calc_metrics`` CLI in seconds.  Nothing touches the network.
"""

import io
import json
import multiprocessing
import os
import zipfile

import numpy as np
import PIL.Image
import pytest
import scipy.linalg
import torch
from click.testing import CliRunner

from stylegan2_ada import calc_metrics, dnnlib, legacy
from stylegan2_ada.metrics import MetricError, detectors, metric_main, metric_utils
from stylegan2_ada.metrics.feature_stats import FeatureStats
from stylegan2_ada.metrics.frechet_inception_distance import frechet_distance
from stylegan2_ada.metrics.inception_score import as_probabilities, inception_score
from stylegan2_ada.metrics.kernel_inception_distance import kernel_inception_distance, mmd2_unbiased
from stylegan2_ada.metrics.perceptual_path_length import (crop_and_downsample, filtered_mean, path_distances,
                                                           slerp)
from stylegan2_ada.metrics import precision_recall as precision_recall_module
from stylegan2_ada.metrics.precision_recall import kth_neighbour_radii, precision_recall
from stylegan2_ada.training.networks import Generator

# The published feature networks are TorchScript files, so torch.jit's deprecation notices are expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch\\.jit.*:DeprecationWarning")

TINY_G = dict(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 1},
              synthesis_kwargs={"channel_base": 64, "channel_max": 16})
COUNTS = dict(num_gen=16, max_real=10, num_subsets=2, max_subset_size=8, num_splits=2, num_samples=8)


# ---------------------------------------------------------------------------------------------
# Fixtures: a tiny detector, datasets and network snapshots.


class TinyDetector(torch.nn.Module):
    """Stand-in for inception-2015-12-05.pt / vgg16.pt with their call signature.

    Resizes internally (4x4 average pooling), projects to 8 features; without
    ``return_features`` returns softmax probabilities over 10 classes like the official file.
    """

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn([48, 8], generator=gen) / 48)
        self.register_buffer("cls", torch.randn([8, 10], generator=gen))
        self.register_buffer("bias", torch.randn([10], generator=gen))

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False,
                resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.to(torch.float32), [4, 4]).flatten(1)
        if return_lpips:
            return pooled / 255
        features = pooled @ self.proj
        if return_features:
            return features
        logits = features @ self.cls
        if not no_output_bias:
            logits = logits + self.bias
        return logits.softmax(dim=1)


class NoFeatures(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def write_dataset_zip(path, num=12, res=16, channels=3, labels=None, seed=0):
    """A dataset_tool.py-style zip: 00000/img00000000.png ... plus dataset.json when labelled."""
    rng = np.random.RandomState(seed)
    names = [f"00000/img{i:08d}.png" for i in range(num)]
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            pixels = rng.randint(0, 256, size=[res, res, channels], dtype=np.uint8)
            buf = io.BytesIO()
            PIL.Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(buf, format="png")
            zf.writestr(name, buf.getvalue())
        if labels is not None:
            zf.writestr("dataset.json", json.dumps({"labels": [[n, int(l)] for n, l in zip(names, labels)]}))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    det_dir = root / "detectors"
    det_dir.mkdir()
    scripted = torch.jit.script(TinyDetector())
    for name in ("inception-2015-12-05.pt", "vgg16.pt"):
        torch.jit.save(scripted, str(det_dir / name))
    out = dnnlib.EasyDict(root=root, det_dir=str(det_dir))
    out.data = write_dataset_zip(root / "data.zip")
    out.data_labels = write_dataset_zip(root / "data_labels.zip", labels=np.arange(12) % 3)
    out.data_small = write_dataset_zip(root / "data8.zip", res=8)
    out.data_grey = write_dataset_zip(root / "grey.zip", channels=1)
    for name, c_dim, channels in (("uncond", 0, 3), ("cond", 3, 3), ("grey", 0, 1)):
        torch.manual_seed(c_dim + channels)
        G = Generator(**dict(TINY_G, c_dim=c_dim, img_channels=channels))
        run_dir = root / f"run-{name}"
        run_dir.mkdir()
        out[name] = str(run_dir / "network-snapshot-000000.pkl")
        legacy.save_network_pkl(out[name], dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    return out


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Private download/stats cache per test; no counts or detector folder leaking in from outside."""
    monkeypatch.setenv("MANGANIME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(metric_utils.COUNTS_ENV, raising=False)
    monkeypatch.delenv(detectors.DETECTOR_DIR_ENV, raising=False)


def data_kwargs(path, **kwargs):
    return dnnlib.EasyDict(class_name="stylegan2_ada.training.dataset.ImageFolderDataset", path=path, **kwargs)


def run_metric(files, metric, network="uncond", data=None, **kwargs):
    G = legacy.load_network_pkl(files[network])["G_ema"]
    kwargs = dict(dict(counts=COUNTS, detector_dir=files.det_dir, num_workers=0, progress=False), **kwargs)
    dataset_kwargs = data_kwargs(data or files.data, use_labels=G.c_dim > 0)
    return metric_main.calc_metric(metric, G=G, dataset_kwargs=dataset_kwargs, **kwargs)


# ---------------------------------------------------------------------------------------------
# FID.


def random_rotation(d, seed):
    q, _ = np.linalg.qr(np.random.RandomState(seed).randn(d, d))
    return q


def test_frechet_distance_commuting_closed_form_with_nearly_singular_covariances():
    d = 16
    q = random_rotation(d, 0)
    a = np.concatenate([np.logspace(-12, 1, d - 3), [0, 0, 2.0]])  # zeros and 1e-12 eigenvalues
    b = np.concatenate([np.logspace(1, -12, d - 3), [3.0, 0, 0]])
    mu1, mu2 = np.arange(d) * 0.1, np.ones(d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    actual = frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T)
    assert actual == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_non_commuting_2x2_closed_form():
    # For 2x2 PSD M: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), with M similar to sigma1 sigma2.
    for s1, s2 in [(np.array([[2.0, 0.3], [0.3, 0.5]]), np.array([[1.0, -0.4], [-0.4, 0.7]])),
                   (np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[3.0, 0.0], [0.0, 1e-13]]))]:  # singular
        trace_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(max(np.linalg.det(s1) * np.linalg.det(s2), 0)))
        expected = np.trace(s1) + np.trace(s2) - 2 * trace_sqrt + 0.25
        assert frechet_distance(np.zeros(2), s1, np.array([0.5, 0]), s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_rank_deficient_sample_covariance():
    # 64-d features from 10 samples: rank 9; FD(N(mu, S), N(mu, c^2 S)) = (1 - c)^2 tr S exactly.
    x = np.random.RandomState(1).randn(10, 64)
    mu, sigma = x.mean(0), np.cov(x, rowvar=False, bias=True)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-12 * np.trace(sigma)
    assert frechet_distance(mu, sigma, mu, 9 * sigma) == pytest.approx(4 * np.trace(sigma), rel=1e-9)


def test_frechet_distance_agrees_with_scipy_sqrtm_when_well_conditioned():
    rng = np.random.RandomState(2)
    x, y = rng.randn(500, 20), rng.randn(400, 20) * 1.3 + 0.2
    args = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    covmean = scipy.linalg.sqrtm(args[1] @ args[3]).real
    scipy_fd = np.sum((args[0] - args[2]) ** 2) + np.trace(args[1] + args[3] - 2 * covmean)
    assert frechet_distance(*args) == pytest.approx(scipy_fd, rel=1e-10)


def test_feature_stats_stream_equals_batch_and_round_trips(tmp_path):
    x = np.random.RandomState(3).randn(103, 5).astype(np.float32)
    stats = FeatureStats(capture_all=True, capture_mean_cov=True, max_items=100)
    for chunk in np.array_split(x, 7):
        stats.append(chunk)
    assert stats.is_full() and stats.num_items == 100
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, x[:100].astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x[:100].astype(np.float64), rowvar=False, bias=True), atol=1e-12)
    np.testing.assert_array_equal(stats.get_all(), x[:100])
    stats.save(str(tmp_path / "s.npz"))
    back = FeatureStats.load(str(tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.get_all(), x[:100])
    np.testing.assert_array_equal(back.get_mean_cov()[1], cov)
    with pytest.raises(ValueError):
        FeatureStats(capture_all=True)


# ---------------------------------------------------------------------------------------------
# KID.


def brute_force_mmd2(x, y):
    k = lambda a, b: (a @ b / len(a) + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_unbiased_estimator_matches_brute_force_on_a_shift():
    rng = np.random.RandomState(4)
    x, y = rng.randn(7, 3), rng.randn(7, 3) + 0.8
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x, y), rel=1e-12)
    # One subset of the full size is a permutation of each set: the estimate is the brute-force value.
    assert kernel_inception_distance(y, x, num_subsets=1, max_subset_size=7) == pytest.approx(brute_force_mmd2(x, y))
    assert brute_force_mmd2(x, y) > 0.1


def test_kid_is_near_zero_for_one_distribution():
    rng = np.random.RandomState(5)
    same = kernel_inception_distance(rng.randn(2000, 8), rng.randn(2000, 8), num_subsets=20, max_subset_size=200)
    shifted = kernel_inception_distance(rng.randn(2000, 8), rng.randn(2000, 8) + 0.5, num_subsets=20,
                                        max_subset_size=200)
    assert abs(same) < 0.02 * shifted
    # Identical sets: only the diagonal of k(x, y) separates the within and between terms.
    x = rng.randn(50, 4)
    k = (x @ x.T / 4 + 1) ** 3
    off_diag_mean = (k.sum() - np.trace(k)) / (50 * 49)
    expected = 2 / 50 * (off_diag_mean - np.trace(k) / 50)
    assert kernel_inception_distance(x, x, 1, 50) == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------------------------------------
# Precision / recall.


def test_kth_neighbour_radii_on_a_line_in_blocks():
    pts = torch.tensor([[0.0, 0], [1, 0], [3, 0], [6, 0], [10, 0]])
    for rows, cols in [(2, 3), (5, 5), (1, 1)]:
        torch.testing.assert_close(kth_neighbour_radii(pts, 1, rows, cols), torch.tensor([1.0, 1, 2, 3, 4]))
        torch.testing.assert_close(kth_neighbour_radii(pts, 2, rows, cols), torch.tensor([3.0, 2, 3, 4, 7]))


def test_precision_recall_constructed_sets():
    real = torch.stack([torch.arange(10.0), torch.zeros(10)], dim=1)  # radii (k=3): 3, 2, ..., 2, 3
    gen = torch.tensor([[4.5, 0], [11.5, 0], [13.0, 0], [20.0, 0]])
    # 4.5 and 11.5 (2.5 from the point 9, radius 3) are inside; 13 and 20 are not.
    # Every real point lies within 15.5 of 4.5, whose k=3 radius in the generated set is 15.5.
    assert precision_recall(real, gen, 3, row_batch_size=3, col_batch_size=4) == (0.5, 1.0)


def test_precision_recall_matches_brute_force():
    rng = np.random.RandomState(6)
    real, gen = rng.randn(40, 5), rng.randn(30, 5) * 1.5 + 0.3

    def inside(probes, ref, k):
        d_ref = np.linalg.norm(ref[:, None] - ref[None], axis=2)
        radii = np.sort(d_ref, axis=1)[:, k]
        d = np.linalg.norm(probes[:, None] - ref[None], axis=2)
        return float(np.mean((d <= radii[None]).any(axis=1)))

    expected = (inside(gen, real, 3), inside(real, gen, 3))
    actual = precision_recall(torch.from_numpy(real), torch.from_numpy(gen), 3, row_batch_size=7, col_batch_size=9)
    assert actual == pytest.approx(expected)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1


def numpy_float16_distances(a, b):
    """The float16 protocol written out in numpy: float16 features, squares and squared norms
    rounded to float16, the combination |a|² - 2 a·b + |b|² rounded to float16, then sqrt."""
    a, b = a.astype(np.float16), b.astype(np.float16)
    a_sq = (a * a).astype(np.float64).sum(axis=1).astype(np.float16).astype(np.float64)
    b_sq = (b * b).astype(np.float64).sum(axis=1).astype(np.float16).astype(np.float64)
    cross = a.astype(np.float64) @ b.astype(np.float64).T
    squared = (a_sq[:, None] - 2 * cross + b_sq[None, :]).astype(np.float16)
    return np.sqrt(np.maximum(squared, np.float16(0)))


def numpy_float16_precision_recall(real, gen, k):
    def radii(x):  # k-th neighbour (the k + 1-th smallest, self included) selected in float32, kept as float16
        return np.sort(numpy_float16_distances(x, x).astype(np.float32), axis=1)[:, k].astype(np.float16)

    def inside(probes, ref):
        return float(np.mean((numpy_float16_distances(probes, ref) <= radii(ref)[None, :]).any(axis=1)))

    return inside(gen, real), inside(real, gen)


def offset_features(rng, n, scale):
    """Features on a 1/8 grid far from the origin: every float32 sum inside the float16 matmul is
    exact (so any CPU gives the same float16 numbers), while |x|² ~ 7000 makes float16 rounding coarse."""
    return np.round(rng.randn(n, 8) * scale * 8) / 8 + 30


def test_pairwise_distances_compute_in_float16_like_numpy_and_cdist():
    rng = np.random.RandomState(10)
    a, b = offset_features(rng, 40, 2), offset_features(rng, 30, 2)
    a16, b16 = torch.from_numpy(a).half(), torch.from_numpy(b).half()
    dist = precision_recall_module.pairwise_distances(a16, b16)
    assert dist.dtype == torch.float16
    np.testing.assert_array_equal(dist.numpy(), numpy_float16_distances(a, b))
    assert torch.equal(dist, torch.cdist(a16, b16))  # > 25 rows: cdist's own matmul route, bit for bit
    # Any block size, also the few rows for which CPU float16 cdist has no kernel, gives the same numbers.
    assert torch.equal(precision_recall_module.pairwise_distances(a16[:1], b16[:3]), dist[:1, :3])
    exact = np.linalg.norm(a[:, None] - b[None], axis=2)
    assert np.abs(dist.numpy().astype(np.float64) - exact).max() > 0.01  # float16 really is coarser here


def test_precision_recall_in_float16_matches_numpy_float16_not_exact_arithmetic():
    rng = np.random.RandomState(11)
    agree_exact = []
    for _ in range(3):
        real, gen = offset_features(rng, 60, 2), offset_features(rng, 50, 2.5)
        half = precision_recall(torch.from_numpy(real), torch.from_numpy(gen), 3, row_batch_size=7, col_batch_size=9)
        assert half == numpy_float16_precision_recall(real, gen, 3)
        exact = precision_recall(torch.from_numpy(real), torch.from_numpy(gen), 3, row_batch_size=7,
                                 col_batch_size=9, dtype=torch.float64)
        agree_exact.append(half == pytest.approx(exact))
    assert not all(agree_exact)  # on these features the float16 protocol moves PR


def test_float16_rounds_a_probe_just_outside_a_sphere_onto_its_surface():
    real = torch.tensor([[0.0, 0], [1, 0], [2, 0], [3, 0]])  # k = 1: every radius is exactly 1
    gen = torch.tensor([[4.0004, 0], [10, 0], [11, 0], [12, 0]])  # 1.0004 from the point 3
    # float32: 1.0004 > 1, outside.  float16: 4.0004 rounds to 4 (spacing 1/256 there), distance 1, inside.
    assert precision_recall(real, gen, 1, 2, 3, dtype=torch.float32) == (0.0, 1.0)
    assert precision_recall(real, gen, 1, 2, 3) == (0.25, 1.0)
    assert precision_recall_module.PR_DTYPE == torch.float16


def test_pr_metric_computes_its_distances_in_float16(files, monkeypatch):
    seen = []
    original = precision_recall_module.pairwise_distances

    def recording(rows, cols):
        seen.append((rows.dtype, cols.dtype))
        return original(rows, cols)

    monkeypatch.setattr(precision_recall_module, "pairwise_distances", recording)
    assert np.isfinite(run_metric(files, "pr50k3_full").results.pr50k3_full_precision)
    assert seen and set(seen) == {(torch.float16, torch.float16)}


# ---------------------------------------------------------------------------------------------
# Inception score.


def test_inception_score_on_constructed_logits():
    probs = as_probabilities(np.zeros([40, 10]))  # uniform predictions: no information
    assert inception_score(probs, 4) == pytest.approx((1.0, 0.0))
    logits = 50.0 * np.eye(10)[np.arange(100) % 10]  # confident and balanced in every split
    mean, std = inception_score(as_probabilities(logits), 2)
    assert mean == pytest.approx(10, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
    assert inception_score(np.eye(5)[np.arange(10) % 5], 1) == pytest.approx((5.0, 0.0))  # exact one-hot: no NaN
    one_class = np.eye(10)[np.zeros(20, dtype=int)]
    assert inception_score(one_class, 2) == pytest.approx((1.0, 0.0))


def test_as_probabilities_keeps_probabilities_and_softmaxes_logits():
    probs = np.random.RandomState(7).dirichlet(np.ones(6), size=5)
    np.testing.assert_array_equal(as_probabilities(probs), probs)
    logits = np.random.RandomState(8).randn(5, 6)
    np.testing.assert_allclose(as_probabilities(logits).sum(1), 1)


# ---------------------------------------------------------------------------------------------
# PPL.


def test_filtered_mean_drops_values_outside_1st_and_99th_percentiles():
    dist = np.random.RandomState(9).permutation(np.concatenate([np.full(199, 5.0), [1e6, -1e6]]))
    assert filtered_mean(dist) == 5.0  # n = 201: 1st percentile is sorted[2], 99th is sorted[198]
    values = np.arange(100.0)
    assert filtered_mean(values) == pytest.approx(values.mean())  # n = 100: nothing is dropped


def test_crop_and_downsample():
    img = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(crop_and_downsample(img, crop=True), img[:, :, 6:14, 4:12])
    torch.testing.assert_close(crop_and_downsample(img, crop=False), img)
    big = torch.randn(1, 3, 1024, 1024)
    torch.testing.assert_close(crop_and_downsample(big, crop=True),
                               torch.nn.functional.avg_pool2d(big[:, :, 384:896, 256:768], 2))
    torch.testing.assert_close(crop_and_downsample(big, crop=False), torch.nn.functional.avg_pool2d(big, 4))


def test_slerp_endpoints_and_midpoint():
    a, b = torch.tensor([[2.0, 0, 0]]), torch.tensor([[0.0, 3, 0]])
    torch.testing.assert_close(slerp(a, b, torch.zeros(1, 1)), torch.tensor([[1.0, 0, 0]]))
    torch.testing.assert_close(slerp(a, b, torch.ones(1, 1)), torch.tensor([[0.0, 1, 0]]))
    torch.testing.assert_close(slerp(a, b, torch.full([1, 1], 0.5)), torch.tensor([[0.5**0.5, 0.5**0.5, 0]]))


class QuadraticG(torch.nn.Module):
    """Constructed generator: identity mapping; grey image = (first w coordinate)² x a fixed pattern."""

    z_dim, c_dim, w_dim, num_ws = 3, 0, 3, 2

    def __init__(self, pattern):
        super().__init__()
        self.pattern = pattern

    def mapping(self, z, c):
        return z.unsqueeze(1).repeat([1, self.num_ws, 1])

    def synthesis(self, ws, noise_mode, force_fp32):
        assert noise_mode == "const" and force_fp32
        return ws[:, 0, 0, None, None, None] ** 2 * self.pattern


def test_path_distances_epsilon_and_crop_on_a_constructed_generator():
    pattern = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    pattern[..., :6, :] = 0.01  # outside the face crop (rows 6..13, cols 4..11)
    G, lpips = QuadraticG(pattern), lambda img: img.flatten(1)
    z = torch.tensor([[[0.5, 1, 1], [1.5, -1, 0]], [[-1.0, 0, 1], [0.2, 1, 1]]], dtype=torch.float64)
    s0, step = z[:, 0, 0], z[:, 1, 0] - z[:, 0, 0]
    for eps in (1e-2, 1e-4):
        # image(t) = s(t)² P with s(eps) = s0 + eps * step; three channels, scaled by 255/2.
        expected = 3 * 127.5**2 * pattern.square().sum() * (2 * s0 * step + eps * step**2) ** 2
        dist = path_distances(G, lpips, z, torch.zeros(2, 0), torch.zeros(2, dtype=torch.float64), eps, "w", False)
        torch.testing.assert_close(dist, expected, rtol=1e-6, atol=0)
        cropped = path_distances(G, lpips, z, torch.zeros(2, 0), torch.zeros(2, dtype=torch.float64), eps, "w", True)
        assert torch.all(cropped == 0)
    # In Z the path is spherical: image(t) follows the first coordinate of slerp(z0, z1, t).
    t = torch.tensor([0.3, 0.0], dtype=torch.float64)
    s = lambda tt: slerp(z[:, 0], z[:, 1], tt[:, None])[:, 0]  # noqa: E731
    expected = 3 * 127.5**2 * pattern.square().sum() * ((s(t + 1e-3) ** 2 - s(t) ** 2) / 1e-3) ** 2
    dist = path_distances(G, lpips, z, torch.zeros(2, 0), t, 1e-3, "z", False)
    torch.testing.assert_close(dist, expected)


# ---------------------------------------------------------------------------------------------
# End to end with the tiny detector.


def test_all_metrics_end_to_end_with_jsonl(files, tmp_path):
    run_dir = os.path.dirname(files.uncond)
    for metric in metric_main.list_valid_metrics():
        result = run_metric(files, metric)
        assert result.metric == metric and result.num_gpus == 1 and result.counts == COUNTS
        assert all(np.isfinite(v) for v in result.results.values()), result
        metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=files.uncond)
    expected_keys = {"fid50k_full": ["fid50k_full"], "pr50k3_full": ["pr50k3_full_precision", "pr50k3_full_recall"],
                     "is50k": ["is50k_mean", "is50k_std"], "ppl2_wend": ["ppl2_wend"]}
    for metric, keys in expected_keys.items():
        lines = open(os.path.join(run_dir, f"metric-{metric}.jsonl")).read().splitlines()
        entry = json.loads(lines[-1])
        assert list(entry)[:7] == ["results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl",
                                   "timestamp"]
        assert sorted(entry["results"]) == keys and entry["snapshot_pkl"] == "network-snapshot-000000.pkl"
    metric_main.report_metric(run_metric(files, "fid50k_full"), run_dir=run_dir, snapshot_pkl=files.uncond)
    assert len(open(os.path.join(run_dir, "metric-fid50k_full.jsonl")).read().splitlines()) == 2


def test_fid_of_the_dataset_against_itself_uses_the_same_stats(files):
    """A generator that reproduces the dataset's feature distribution exactly gets FID 0."""
    stats = metric_utils.compute_feature_stats_for_dataset(
        metric_utils.MetricOptions(dataset_kwargs=data_kwargs(files.data), detector_dir=files.det_dir, num_workers=0),
        detectors.INCEPTION_URL, dict(return_features=True), capture_mean_cov=True)
    assert stats.num_items == 12
    assert frechet_distance(*stats.get_mean_cov(), *stats.get_mean_cov()) == pytest.approx(0, abs=1e-9)


def test_conditional_and_greyscale_networks(files):
    assert np.isfinite(run_metric(files, "fid50k_full", network="cond", data=files.data_labels,
                                  ).results.fid50k_full)
    assert np.isfinite(run_metric(files, "kid50k_full", network="grey", data=files.data_grey).results.kid50k_full)


def test_dataset_stats_cache_is_hit_the_second_time(files, monkeypatch):
    first = run_metric(files, "fid50k_full").results.fid50k_full
    cache_dir = dnnlib.make_cache_dir_path("gan-metrics")
    assert len(os.listdir(cache_dir)) == 1

    def no_loading(*args, **kwargs):
        raise AssertionError("dataset images were read again")

    with monkeypatch.context() as patch:
        patch.setattr(metric_utils.torch.utils.data, "DataLoader", no_loading)
        assert run_metric(files, "fid50k_full").results.fid50k_full == first  # also: generation is seeded
    assert np.isfinite(run_metric(files, "fid50k_full", cache=False).results.fid50k_full)
    assert len(os.listdir(cache_dir)) == 1


def test_generated_features_repeat_and_leave_the_global_rng_alone(files):
    G = legacy.load_network_pkl(files.uncond)["G_ema"]
    for name, param in G.named_parameters():
        if name.endswith("noise_strength"):
            param.data.fill_(2.0)  # make the random noise inputs matter
    opts = metric_utils.MetricOptions(G=G, detector_dir=files.det_dir)
    state = torch.get_rng_state()
    runs = [metric_utils.compute_feature_stats_for_generator(opts, detectors.INCEPTION_URL, dict(return_features=True),
                                                             capture_all=True, max_items=6).get_all()
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert torch.equal(torch.get_rng_state(), state)


def test_mirror_doubles_the_real_set(files):
    opts = metric_utils.MetricOptions(dataset_kwargs=data_kwargs(files.data, xflip=True), detector_dir=files.det_dir,
                                      num_workers=0)
    stats = metric_utils.compute_feature_stats_for_dataset(opts, detectors.INCEPTION_URL, dict(return_features=True),
                                                           capture_all=True)
    assert stats.num_items == 24


# ---------------------------------------------------------------------------------------------
# Which real images each metric scores (the official protocol), whatever training used.

FULL_COUNTS = dict(num_gen=16, num_subsets=2, max_subset_size=8, num_splits=2, num_samples=4)  # no max_real


def cached_real_stats():
    """The one dataset-statistics file the metric run left in this test's private cache."""
    cache_dir = dnnlib.make_cache_dir_path("gan-metrics")
    names = os.listdir(cache_dir)
    assert len(names) == 1, names
    return FeatureStats.load(os.path.join(cache_dir, names[0]))


def metric_with_options(files, metric, network="uncond", data=None, **dataset_options):
    G = legacy.load_network_pkl(files[network])["G_ema"]
    dataset_kwargs = data_kwargs(data or files.data, use_labels=G.c_dim > 0, **dataset_options)
    return metric_main.calc_metric(metric, G=G, dataset_kwargs=dataset_kwargs, counts=FULL_COUNTS,
                                   detector_dir=files.det_dir, num_workers=0, progress=False).results


@pytest.mark.parametrize("metric", ["fid50k_full", "kid50k_full", "pr50k3_full"])
def test_full_metrics_score_the_stored_images_whatever_subset_and_mirror(files, metric, tmp_path, monkeypatch):
    # Training with --subset=5 --mirror records max_size=5, xflip=True: the metric must ignore both.
    trained_with = metric_with_options(files, metric, max_size=5, xflip=True, random_seed=1)
    real = cached_real_stats()
    assert real.num_items == 12  # all 12 stored images, none mirrored, none left out
    plain_opts = metric_utils.MetricOptions(dataset_kwargs=data_kwargs(files.data), detector_dir=files.det_dir,
                                            num_workers=0, cache=False)
    url = detectors.VGG16_URL if metric.startswith("pr") else detectors.INCEPTION_URL
    plain = metric_utils.compute_feature_stats_for_dataset(plain_opts, url, dict(return_features=True),
                                                           capture_all=True, capture_mean_cov=True)
    if real.capture_all:
        np.testing.assert_array_equal(real.get_all(), plain.get_all())
    else:
        np.testing.assert_array_equal(real.get_mean_cov()[0], plain.get_mean_cov()[0])
        np.testing.assert_array_equal(real.get_mean_cov()[1], plain.get_mean_cov()[1])
    monkeypatch.setenv("MANGANIME_CACHE_DIR", str(tmp_path / "fresh-cache"))
    assert metric_with_options(files, metric) == trained_with


def test_older_metrics_score_every_image_and_mirror_when_asked(files, tmp_path, monkeypatch):
    plain = metric_with_options(files, "fid50k").fid50k
    monkeypatch.setenv("MANGANIME_CACHE_DIR", str(tmp_path / "subset"))
    assert metric_with_options(files, "fid50k", max_size=5).fid50k == plain  # the subset is ignored
    assert cached_real_stats().num_items == 12
    monkeypatch.setenv("MANGANIME_CACHE_DIR", str(tmp_path / "mirror"))
    mirrored = metric_with_options(files, "fid50k", max_size=5, xflip=True).fid50k
    assert cached_real_stats().num_items == 24  # every image and its mirror image
    assert mirrored != plain  # the tiny detector sees a mirrored image differently


def test_is50k_samples_labels_from_the_stored_images(files):
    """A conditional G is fed labels of random dataset items: a subset or mirroring would change them."""
    plain = metric_with_options(files, "is50k", network="cond", data=files.data_labels)
    assert metric_with_options(files, "is50k", network="cond", data=files.data_labels,
                               max_size=4, xflip=True) == plain
    # The same draw from a different item list does change the labels, hence the score.
    ppl_plain = metric_with_options(files, "ppl2_wend", network="cond", data=files.data_labels)
    assert metric_with_options(files, "ppl2_wend", network="cond", data=files.data_labels, max_size=4) != ppl_plain


def test_real_stats_cache_key_follows_the_options_actually_used(files, monkeypatch):
    first = metric_with_options(files, "fid50k_full").fid50k_full

    def no_loading(*args, **kwargs):
        raise AssertionError("dataset images were read again")

    with monkeypatch.context() as patch:  # training's options (labels, subset, mirror, resolution): same images
        patch.setattr(metric_utils.torch.utils.data, "DataLoader", no_loading)
        assert metric_with_options(files, "fid50k_full", max_size=5, xflip=True, random_seed=3,
                                   resolution=16).fid50k_full == first
    assert len(os.listdir(dnnlib.make_cache_dir_path("gan-metrics"))) == 1
    metric_with_options(files, "fid50k", xflip=True)  # mirrored images: statistics of their own
    assert len(os.listdir(dnnlib.make_cache_dir_path("gan-metrics"))) == 2


def test_image_options_canonical_form_and_with_dataset_leaves_the_caller_alone():
    base = dict(class_name="x.Dataset", path="data.zip")
    assert metric_utils.image_options(dict(base, use_labels=True, max_size=None, xflip=0, random_seed=7,
                                           resolution=256)) == metric_utils.image_options(base)
    assert metric_utils.image_options(dict(base, max_size=5, random_seed=1)) != \
        metric_utils.image_options(dict(base, max_size=5, random_seed=2))
    assert metric_utils.image_options(dict(base, xflip=True)) != metric_utils.image_options(base)
    opts = metric_utils.MetricOptions(dataset_kwargs=dict(base, xflip=True, max_size=5))
    scoped = opts.with_dataset(**metric_main.AS_STORED)
    assert scoped.dataset_kwargs == dict(base, xflip=False, max_size=None)
    assert opts.dataset_kwargs == dict(base, xflip=True, max_size=5)
    no_data = metric_utils.MetricOptions()
    assert not no_data.with_dataset(**metric_main.AS_STORED).dataset_kwargs  # nothing to override


def _distributed_worker(rank, init_file, dataset_kwargs, det_dir, queue):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    opts = metric_utils.MetricOptions(dataset_kwargs=dataset_kwargs, num_gpus=2, rank=rank, device="cpu",
                                      detector_dir=det_dir, num_workers=0, cache=False)
    stats = metric_utils.compute_feature_stats_for_dataset(
        opts, detectors.INCEPTION_URL, dict(return_features=True), capture_all=True, capture_mean_cov=True,
        max_items=11)
    queue.put((rank, stats.num_items, stats.get_all(), *stats.get_mean_cov()))
    torch.distributed.destroy_process_group()


def test_two_ranks_give_the_single_process_statistics(files, tmp_path):
    ctx = multiprocessing.get_context("spawn")  # forking a process that has run OpenMP code can hang
    queue = ctx.Queue()
    procs = [ctx.Process(target=_distributed_worker,
                         args=(rank, str(tmp_path / "init"), data_kwargs(files.data), files.det_dir, queue))
             for rank in range(2)]
    for proc in procs:
        proc.start()
    results = sorted(queue.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    single = metric_utils.compute_feature_stats_for_dataset(
        metric_utils.MetricOptions(dataset_kwargs=data_kwargs(files.data), detector_dir=files.det_dir, num_workers=0,
                                   cache=False),
        detectors.INCEPTION_URL, dict(return_features=True), capture_all=True, capture_mean_cov=True, max_items=11)
    for _rank, num_items, rows, mean, cov in results:
        assert num_items == 11  # 6 + 5 items, none counted twice
        np.testing.assert_allclose(np.sort(rows, axis=0), np.sort(single.get_all(), axis=0))
        np.testing.assert_allclose(mean, single.get_mean_cov()[0], rtol=1e-12)
        np.testing.assert_allclose(cov, single.get_mean_cov()[1], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# The CLI.


def invoke(*args, env=None):
    return CliRunner().invoke(calc_metrics.main, [str(a) for a in args], env=env)


def test_cli_writes_jsonl_next_to_the_snapshot(files):
    env = {metric_utils.COUNTS_ENV: "num_gen=16,max_real=10,num_subsets=2,max_subset_size=8,num_samples=4"}
    result = invoke("--network", files.uncond, "--data", files.data, "--mirror", "1", "--verbose", "0",
                    "--metrics", "fid50k_full,kid50k_full,pr50k3_full,ppl2_wend", "--detector-dir", files.det_dir,
                    env=env)
    assert result.exit_code == 0, result.output
    run_dir = os.path.dirname(files.uncond)
    entry = json.loads(open(os.path.join(run_dir, "metric-kid50k_full.jsonl")).read().splitlines()[-1])
    assert entry["metric"] == "kid50k_full" and np.isfinite(entry["results"]["kid50k_full"])
    assert entry["snapshot_pkl"] == "network-snapshot-000000.pkl" and entry["counts"]["num_gen"] == 16
    assert os.path.isfile(os.path.join(run_dir, "metric-ppl2_wend.jsonl"))


def test_cli_mirror_reaches_only_the_older_metrics(files):
    env = {metric_utils.COUNTS_ENV: "num_gen=16"}

    def results(mirror):
        result = invoke("--network", files.uncond, "--data", files.data, "--mirror", mirror, "--verbose", "0",
                        "--metrics", "fid50k_full,fid50k", "--detector-dir", files.det_dir, env=env)
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
        return {entry["metric"]: entry["results"][entry["metric"]] for entry in lines}

    flipped, plain = results(1), results(0)
    assert flipped["fid50k_full"] == plain["fid50k_full"]
    assert flipped["fid50k"] != plain["fid50k"]


def test_cli_uses_detector_dir_from_the_environment(files):
    env = {metric_utils.COUNTS_ENV: "num_gen=12", detectors.DETECTOR_DIR_ENV: files.det_dir}
    result = invoke("--network", files.grey, "--data", files.data_grey, "--metrics", "is50k", "--verbose", "0",
                    env=env)
    assert result.exit_code == 0, result.output
    assert '"is50k_mean"' in result.output


# ---------------------------------------------------------------------------------------------
# Bad input: one line each.


def assert_one_line_cli_error(result, *fragments):
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error"), result.output
    for fragment in fragments:
        assert fragment in lines[-1], result.output


def test_wrong_detector_files(files, tmp_path):
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "inception-2015-12-05.pt").write_bytes(b"not a network")
    with pytest.raises(MetricError, match="not a TorchScript feature network") as err:
        run_metric(files, "fid50k_full", detector_dir=str(bad_dir))
    assert "\n" not in str(err.value)
    torch.jit.save(torch.jit.script(NoFeatures()), str(bad_dir / "inception-2015-12-05.pt"))
    with pytest.raises(MetricError, match="takes no 'return_features' argument"):
        run_metric(files, "fid50k_full", detector_dir=str(bad_dir))
    result = invoke("--network", files.uncond, "--data", files.data, "--detector-dir", bad_dir, "--verbose", "0",
                    env={metric_utils.COUNTS_ENV: "num_gen=4"})
    assert_one_line_cli_error(result, "inception-2015-12-05.pt", "return_features")


def test_missing_detector_offline_names_file_url_and_fix(files, tmp_path, monkeypatch):
    def offline(url, **kwargs):
        raise dnnlib.util.DownloadError(f"Could not download {url}: network is unreachable")

    monkeypatch.setattr(detectors, "open_url", offline)
    with pytest.raises(MetricError) as err:
        run_metric(files, "pr50k3_full", detector_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and "vgg16.pt is missing" in message
    assert detectors.VGG16_URL in message and "--detector-dir" in message and detectors.DETECTOR_DIR_ENV in message
    assert "pt_inception-2015-12-05-6726825d.pth" not in message  # PR needs VGG16: no Inception alternative
    (tmp_path / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"state dict")
    with pytest.raises(MetricError, match="not pytorch-fid's Inception state dict") as err:  # found, then read
        run_metric(files, "fid50k_full", detector_dir=str(tmp_path))
    assert "\n" not in str(err.value)


def test_resolution_mismatch_and_missing_labels(files):
    with pytest.raises(MetricError, match="8x8 images, but the network makes 16x16"):
        run_metric(files, "fid50k_full", data=files.data_small)
    with pytest.raises(MetricError, match="conditional"):
        metric_main.calc_metric("fid50k_full", G=legacy.load_network_pkl(files.cond)["G_ema"], counts=COUNTS,
                                dataset_kwargs=data_kwargs(files.data_labels), detector_dir=files.det_dir)
    with pytest.raises(MetricError, match="dataset.json.*conditional"):  # labels asked for, none in the zip
        run_metric(files, "fid50k_full", network="cond", data=files.data)
    result = invoke("--network", files.uncond, "--data", files.data_small, "--detector-dir", files.det_dir)
    assert_one_line_cli_error(result, "8x8")
    result = invoke("--network", files.cond, "--data", files.data, "--detector-dir", files.det_dir)
    assert_one_line_cli_error(result, "dataset.json", "conditional")
    result = invoke("--network", files.grey, "--data", files.data, "--detector-dir", files.det_dir)
    assert_one_line_cli_error(result, "3-channel")


def test_unknown_metric_and_bad_counts(files):
    with pytest.raises(MetricError, match="unknown metric 'fid1k'"):
        run_metric(files, "fid1k")
    with pytest.raises(MetricError, match="unknown sample count 'num_fakes'"):
        run_metric(files, "fid50k_full", counts="num_fakes=3")
    with pytest.raises(MetricError, match="needs num_gen >= 10"):
        run_metric(files, "is50k", counts="num_gen=8")
    with pytest.raises(MetricError, match="3-NN manifold needs more than 3"):
        run_metric(files, "pr50k3", counts="num_gen=3")
    result = invoke("--network", files.uncond, "--metrics", "fid50k_full,nope", "--data", files.data)
    assert result.exit_code == 2 and "unknown metric 'nope'" in result.output
    result = invoke("--network", files.uncond, "--gpus", "2", "--data", files.data)
    assert result.exit_code != 0 and "CUDA devices" in result.output


def test_format_time():
    assert [dnnlib.format_time(s) for s in (5, 65, 3725, 93784)] == ["5s", "1m 05s", "1h 02m 05s", "1d 02h 03m"]
