"""Shared helpers: the reference test vectors written by the official StyleGAN2-ADA code."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
NETWORK_CASES = ["net_skip_resnet_c3", "net_resnet_skip_c0", "net_orig_orig_c0_rgba"]


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((FIXTURES / "manifest.json").read_text())


@pytest.fixture(scope="session")
def ops_vectors():
    return np.load(FIXTURES / "ops.npz")


def load_network_case(name: str):
    """(G, D, arrays) for one fixture case, with the reference weights loaded strictly."""
    from stylegan2_ada.training import networks

    cfg = json.loads((FIXTURES / "manifest.json").read_text())[name]
    arrays = np.load(FIXTURES / f"{name}.npz")
    G = networks.Generator(**cfg["G_kwargs"]).eval()
    D = networks.Discriminator(**cfg["D_kwargs"]).eval()
    for net, prefix in [(G, "G/"), (D, "D/")]:
        state = {k[len(prefix):]: torch.from_numpy(arrays[k]) for k in arrays.files if k.startswith(prefix)}
        net.load_state_dict(state, strict=True)
    return G, D, arrays


def assert_close_to_reference(actual: torch.Tensor, reference: np.ndarray, rel_tol: float, floor: float = 0.0) -> None:
    """max|actual - reference| <= rel_tol * max(floor, max|reference|), the fixtures' acceptance rule."""
    actual = actual.detach().cpu().numpy()
    assert actual.shape == reference.shape
    scale = max(floor, float(np.abs(reference).max()))
    err = float(np.abs(actual - reference).max())
    assert err <= rel_tol * scale, f"max |diff| {err:.3g} exceeds {rel_tol:g} x {scale:.3g}"


@pytest.fixture(scope="session")
def tiny_series(tmp_path_factory):
    """A 2-episode x 4 s synthetic series at 64 px (intro 1 s, outro 0.5 s, short shots): (folder, truth)."""
    from manganime_ext.synthetic import anime

    out = tmp_path_factory.mktemp("anime") / "series"
    truth = anime.write_series(str(out), episodes=2, seconds=4.0, resolution=64, fps=24, seed=3,
                               intro_seconds=1.0, outro_seconds=0.5, shot_seconds=(0.5, 1.0))
    return out, truth


@pytest.fixture(scope="session")
def tiny_stores(tiny_series, tmp_path_factory):
    """Frame stores of the tiny series at stride 1, written through the CLI: folder with one store per episode."""
    from click.testing import CliRunner

    import dataset_tool_anime

    series, truth = tiny_series
    out = tmp_path_factory.mktemp("stores") / "stores"
    videos = [str(series / ep["file"]) for ep in truth["episodes"]]
    result = CliRunner().invoke(dataset_tool_anime.cli, ["frames", "--out", str(out), "--resolution", "64", *videos])
    assert result.exit_code == 0, result.output
    return out
