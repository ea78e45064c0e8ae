"""stylegan2_ada.projector: the paper's schedule, the engine's batching, the distances, and the official CLI."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from manganime_ext.analysis.image_quality import ssim
from manganime_ext.io.video import read_video
from projection_helpers import PixelMSE, save_tiny_lpips, tiny_generator
from stylegan2_ada import dnnlib, legacy, projector
from stylegan2_ada.generate import main as generate_main
from stylegan2_ada.metrics import detectors

pytestmark = pytest.mark.filterwarnings("ignore:.*torch\\.jit.*:DeprecationWarning")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("projector")
    G = tiny_generator()
    network = root / "net.pkl"
    legacy.save_network_pkl(network, dict(G=G, D=None, G_ema=G, augment_pipe=None))
    with torch.no_grad():
        w = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(5)), None)
        target = projector.to_uint8(projector.synthesize(G, w))[0]
    PIL.Image.fromarray(np.kron(target, np.ones((2, 3, 1), np.uint8))).save(root / "target.png")  # 32x48: crop, resize
    (root / "detectors").mkdir()
    return dnnlib.EasyDict(root=root, G=G, network=str(network), target=str(root / "target.png"),
                           detector_dir=save_tiny_lpips(root / "detectors"))


def test_schedule_follows_the_paper():
    s = projector.ProjectionSchedule(num_steps=1000)
    assert s.learning_rate(0) == 0 and s.learning_rate(25) == pytest.approx(0.05)  # linear ramp-up over 5 %
    assert s.learning_rate(50) == pytest.approx(0.1) and s.learning_rate(750) == pytest.approx(0.1)
    assert s.learning_rate(875) == pytest.approx(0.05) and s.learning_rate(999) < 1e-4  # cosine over the last 25 %
    assert s.noise_factor(0) == pytest.approx(0.05) and s.noise_factor(375) == pytest.approx(0.05 / 4)
    assert s.noise_factor(750) == 0 and s.noise_factor(900) == 0
    warm = projector.ProjectionSchedule(num_steps=10, initial_learning_rate=0.02, initial_noise_factor=0,
                                        lr_rampup_length=0, lr_rampdown_length=1)
    assert warm.learning_rate(0) == pytest.approx(0.02) and warm.noise_factor(0) == 0


def test_noise_penalty_sees_structure_per_image():
    white = torch.randn([2, 1, 32, 32], generator=torch.Generator().manual_seed(0))
    smooth = torch.nn.functional.avg_pool2d(white, 5, stride=1, padding=2)
    smooth = (smooth - smooth.mean()) / smooth.std()
    both = projector.noise_penalty([torch.cat([white[:1], smooth[:1]])])
    assert both[0] < 0.01 < 0.5 < both[1]
    alone = projector.noise_penalty([smooth[:1]])
    assert torch.allclose(alone, both[1:])


def test_ms_ssim_is_ssim_at_one_scale_and_ranks_damage():
    rng = np.random.RandomState(0)
    clean = torch.from_numpy(rng.randint(0, 256, (2, 3, 16, 16))).float()
    noisy = (clean + torch.from_numpy(rng.normal(0, 20, clean.shape))).clamp(0, 255).float()
    one_scale = projector.ms_ssim(clean / 255, noisy / 255)  # 16 px holds one 11-tap scale
    assert torch.allclose(one_scale.double(), ssim(clean, noisy), atol=1e-5)
    big = torch.from_numpy(rng.randint(0, 256, (1, 3, 64, 64))).float()
    slightly = (big + 10 * torch.randn(big.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 255)
    badly = (big + 60 * torch.randn(big.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 255)
    d = projector.MSSSIMDistance()
    assert float(d(big, big)) == pytest.approx(0, abs=1e-6)
    assert 0 < float(d(slightly, big)) < float(d(badly, big))


def test_w_statistics_of_a_conditional_generator_cover_its_classes():
    """The mean w of a conditional G is that of its classes (drawn uniformly), not of the zero label."""
    G = tiny_generator(c_dim=3)
    mean, spread = projector.w_statistics(G, 3000)
    z = torch.from_numpy(np.random.RandomState(1).randn(3000, G.z_dim)).float()
    with torch.no_grad():
        per_class = torch.stack([G.mapping(z, torch.eye(3)[k].expand(3000, -1))[:, 0].mean(0) for k in range(3)])
        zero_label = G.mapping(z, torch.zeros(3000, 3))[:, 0].mean(0)
    error = (mean - per_class.mean(0)).norm()
    assert error < 0.25 * (mean - zero_label).norm()
    assert error < 0.1 * spread


def test_batched_projections_equal_separate_ones():
    """Adam is elementwise and each image's loss is its own: batching must not change any result."""
    G = tiny_generator(noise_strength=0.3)
    with torch.no_grad():
        targets = (projector.synthesize(G, G.mapping(torch.randn(3, G.z_dim), None)) + 1) * 127.5
    schedule = projector.ProjectionSchedule(num_steps=12)
    stats = projector.w_statistics(G, 2000)
    together = projector.Projector(G, PixelMSE(), slots=3, w_stats=stats)
    for slot in range(3):
        together.start(slot, targets[slot], schedule, seed=slot)
    while together.busy():
        together.step()
    for slot in range(3):
        alone = projector.Projector(G, PixelMSE(), slots=1, w_stats=stats)
        alone.start(0, targets[slot], schedule, seed=slot)
        while alone.busy():
            alone.step()
        assert torch.allclose(alone.ws(0), together.ws(slot), atol=1e-4)
        for a, b in zip(alone.noise(0), together.noise(slot)):
            assert torch.allclose(a, b, atol=1e-4)
            assert abs(float(b.mean())) < 1e-5 and float(b.square().mean()) == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("space", ["w", "wplus"])
def test_projection_finds_a_generated_image(space):
    G = tiny_generator()
    with torch.no_grad():
        w_true = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3)), None)
        target = (projector.synthesize(G, w_true) + 1) * 127.5
    d = projector.MSSSIMDistance()
    engine = projector.Projector(G, d, slots=1, space=space, w_avg_samples=2000)
    engine.start(0, target[0], projector.ProjectionSchedule(num_steps=150), seed=0)
    first = engine.step()[0]
    while engine.busy():
        engine.step()
    with torch.no_grad():
        image = (projector.synthesize(G, engine.ws(0)[None]) + 1) * 127.5
        mean_image = (projector.synthesize(G, engine.w_avg.expand(1, G.num_ws, -1)) + 1) * 127.5
    psnr = lambda a: float(10 * torch.log10(255**2 / (a - target).square().mean()))
    assert float(d(image, target)) < first / 3
    assert psnr(image) > psnr(mean_image) + 6
    assert engine.latent(0).shape == ((1, G.w_dim) if space == "w" else (G.num_ws, G.w_dim))


def test_project_keeps_the_official_signature_and_output(files):
    target = torch.from_numpy(np.array(PIL.Image.open(files.target).resize((16, 16)))).permute(2, 0, 1).float()
    trail = projector.project(files.G, target, num_steps=6, w_avg_samples=500, device=torch.device("cpu"),
                              distance=projector.MSSSIMDistance(), seed=1)
    assert trail.shape == (6, files.G.num_ws, files.G.w_dim)
    assert torch.equal(trail[:, :1].expand_as(trail), trail)  # one w repeated over the layers
    with pytest.raises(ValueError, match="target is"):
        projector.project(files.G, target[:, :8], num_steps=1, device=torch.device("cpu"),
                          distance=projector.MSSSIMDistance())


def run_cli(*args, **kwargs):
    result = CliRunner().invoke(projector.main, [str(a) for a in args], **kwargs)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_cli_writes_the_official_outputs_repeatably(files, tmp_path):
    common = ["--network", files.network, "--target", files.target, "--num-steps", 8, "--seed", 7,
              "--detector-dir", files.detector_dir]
    result = run_cli(*common, "--outdir", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "lpips (vgg16.pt)" in result.output
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["proj.mp4", "proj.png", "projected_w.npz", "projection.json", "target.png"]
    with np.load(tmp_path / "a" / "projected_w.npz") as data:
        assert data.files == ["w"]
        w = data["w"]
    assert w.shape == (1, files.G.num_ws, files.G.w_dim) and np.array_equal(w, np.repeat(w[:, :1], w.shape[1], 1))
    summary = json.loads((tmp_path / "a" / "projection.json").read_text())
    assert summary["distance"] == "lpips (vgg16.pt)" and summary["num_steps"] == 8
    assert PIL.Image.open(tmp_path / "a" / "target.png").size == (16, 16)  # centre-cropped and resized
    meta, frames = read_video(str(tmp_path / "a" / "proj.mp4"), 16, transform="squash")
    assert meta["source_size"] == [32, 16] and len(list(frames)) == 8  # target | projection, one frame per step

    # generate.py renders projected_w.npz into exactly proj.png
    made = CliRunner().invoke(generate_main, ["--network", files.network, "--projected-w",
                                              str(tmp_path / "a" / "projected_w.npz"), "--outdir", str(tmp_path / "g")])
    assert made.exit_code == 0, made.output
    assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / "g" / "proj00.png")),
                          np.asarray(PIL.Image.open(tmp_path / "a" / "proj.png")))

    again = run_cli(*common, "--outdir", tmp_path / "b", "--save-video", "false")
    assert again.exit_code == 0 and not (tmp_path / "b" / "proj.mp4").exists()
    with np.load(tmp_path / "b" / "projected_w.npz") as data:
        assert np.array_equal(data["w"], w)  # same seed, same result
    other = run_cli(*common[:-4], "--seed", 8, "--detector-dir", files.detector_dir, "--outdir", tmp_path / "c")
    assert other.exit_code == 0, other.output
    with np.load(tmp_path / "c" / "projected_w.npz") as data:
        assert not np.array_equal(data["w"], w)


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error"), result.output
    for fragment in fragments:
        assert fragment in lines[-1], result.output


def test_cli_bad_inputs_give_one_line_and_no_output(files, tmp_path, monkeypatch):
    out = tmp_path / "out"
    base = ["--network", files.network, "--target", files.target, "--num-steps", 2, "--outdir", out]
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(open(files.network, "rb").read()[:300])
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a png")

    def offline(url, **kwargs):
        raise dnnlib.util.DownloadError(f"Could not download {url}: network is unreachable")

    monkeypatch.setattr(detectors, "open_url", offline)
    monkeypatch.delenv(detectors.DETECTOR_DIR_ENV, raising=False)
    assert_one_line_error(run_cli(*base, "--detector-dir", tmp_path), "vgg16.pt", "--distance msssim")
    assert_one_line_error(run_cli(*base[:1], corrupt, *base[2:], "--distance", "msssim"), "corrupt.pkl")
    assert_one_line_error(run_cli(*base[:3], not_image, *base[4:], "--distance", "msssim"), "notes.png")
    assert_one_line_error(run_cli(*base[:3], tmp_path / "missing.png", *base[4:]), "missing.png")
    assert_one_line_error(run_cli(*base, "--num-steps", 0), "--num-steps")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pkl", "notes.png"]
    assert run_cli(*base, "--distance", "msssim", "--save-video", "false").exit_code == 0  # offline fallback works
    assert (out / "proj.png").exists()
