"""generate CLI: seeds -> PNGs matching a direct G call, projected W, and one-line errors without output."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan2_ada import legacy
from stylegan2_ada.generate import images_to_uint8, main, parse_seeds
from stylegan2_ada.training.networks import Generator

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(z_dim=8, w_dim=8, img_resolution=16, mapping_kwargs={"num_layers": 1},
            synthesis_kwargs={"channel_base": 64, "channel_max": 16})


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Snapshots of tiny random generators: unconditional RGB, conditional RGB, grey and RGBA."""
    folder = tmp_path_factory.mktemp("nets")
    paths = {}
    for name, c_dim, channels in (("rgb", 0, 3), ("cond", 3, 3), ("grey", 0, 1), ("rgba", 0, 4)):
        torch.manual_seed(len(paths))
        G = Generator(c_dim=c_dim, img_channels=channels, **TINY)
        paths[name] = folder / f"{name}.pkl"
        legacy.save_network_pkl(paths[name], {"G": G, "D": None, "G_ema": G, "augment_pipe": None})
    return paths


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def direct_image(path, seed=None, psi=1.0, class_idx=None, w=None):
    """What the CLI should produce, computed without it."""
    G = legacy.load_network_pkl(path)["G_ema"]
    with torch.no_grad():
        if w is not None:
            return images_to_uint8(G.synthesis(torch.from_numpy(w[None]), noise_mode="const", force_fp32=True))[0]
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
        c = torch.zeros([1, G.c_dim])
        if class_idx is not None:
            c[0, class_idx] = 1
        return images_to_uint8(G(z, c, truncation_psi=psi, noise_mode="const", force_fp32=True))[0]


def test_parse_seeds():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds(" 5 ") == [5]
    for bad in ("3-1", "a", "1,,2", "-1", str(2**32)):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_seeds_match_direct_call_and_repeat_exactly(nets, tmp_path):
    args = ["--network", nets["rgb"], "--seeds", "0-2,7", "--trunc", "0.7"]
    assert run(*args, "--outdir", tmp_path / "a").exit_code == 0
    assert run(*args, "--outdir", tmp_path / "b").exit_code == 0
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    img = PIL.Image.open(tmp_path / "a" / "seed0007.png")
    assert (img.size, img.mode) == ((16, 16), "RGB")
    np.testing.assert_array_equal(np.asarray(img), direct_image(nets["rgb"], seed=7, psi=0.7))
    assert sorted(os.listdir(tmp_path)) == ["a", "b"], "no temp folders left behind"


@pytest.mark.parametrize("name, mode", [("grey", "L"), ("rgba", "RGBA")])
def test_image_modes(nets, tmp_path, name, mode):
    assert run("--network", nets[name], "--seeds", "3", "--outdir", tmp_path).exit_code == 0
    img = PIL.Image.open(tmp_path / "seed0003.png")
    assert img.mode == mode
    np.testing.assert_array_equal(np.asarray(img).reshape(16, 16, -1), direct_image(nets[name], seed=3))


def test_conditional_network(nets, tmp_path):
    assert run("--network", nets["cond"], "--seeds", "1", "--class", "2", "--outdir", tmp_path).exit_code == 0
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "seed0001.png")),
                                  direct_image(nets["cond"], seed=1, class_idx=2))


def test_projected_w(nets, tmp_path):
    G = legacy.load_network_pkl(nets["rgb"])["G_ema"]
    ws = np.random.RandomState(0).randn(2, G.num_ws, G.w_dim).astype(np.float32)
    np.savez(tmp_path / "proj.npz", w=ws)
    result = run("--network", nets["rgb"], "--projected-w", tmp_path / "proj.npz", "--outdir", tmp_path / "out")
    assert result.exit_code == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["proj00.png", "proj01.png"]
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "out" / "proj01.png")),
                                  direct_image(nets["rgb"], w=ws[1]))


def _error_cases(nets, tmp_path):
    """(CLI args without --outdir, text the error line must contain)."""
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(nets["rgb"].read_bytes()[:500])
    np.savez(tmp_path / "wrong_shape.npz", w=np.zeros([1, 2, 3], np.float32))
    np.savez(tmp_path / "no_w.npz", x=np.zeros(3))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    yield ["--network", tmp_path / "missing.pkl", "--seeds", "0"], "missing.pkl"
    yield ["--network", corrupt, "--seeds", "0"], "corrupt.pkl"
    yield ["--network", nets["rgb"], "--seeds", "3-1"], "3-1"
    yield ["--network", nets["rgb"]], "--seeds"
    yield ["--network", nets["rgb"], "--seeds", "0", "--class", "1"], "unconditional"
    yield ["--network", nets["cond"], "--seeds", "0"], "--class"
    yield ["--network", nets["cond"], "--seeds", "0", "--class", "3"], "--class"
    yield ["--network", nets["rgb"], "--projected-w", tmp_path / "wrong_shape.npz"], "shape"
    yield ["--network", nets["rgb"], "--projected-w", tmp_path / "no_w.npz"], "'w'"
    yield ["--network", nets["rgb"], "--projected-w", tmp_path / "junk.npz"], "junk.npz"


def test_errors_are_one_line_and_leave_no_output(nets, tmp_path):
    outdir = tmp_path / "out"
    for args, expected in _error_cases(nets, tmp_path):
        result = run(*args, "--outdir", outdir)
        errors = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert result.exit_code != 0 and len(errors) == 1 and expected in errors[0], (args, result.output)
        assert "Traceback" not in result.output
        assert not outdir.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_module_entry_point(nets, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "stylegan2_ada.generate", "--network", str(nets["rgb"])]
    done = subprocess.run(cmd + ["--seeds", "7", "--trunc", "0.7", "--outdir", str(tmp_path / "out")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "out" / "seed0007.png")),
                                  direct_image(nets["rgb"], seed=7, psi=0.7))
    done = subprocess.run(cmd + ["--seeds", "x", "--outdir", str(tmp_path / "bad")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "'x'" in done.stderr
    assert not (tmp_path / "bad").exists()
