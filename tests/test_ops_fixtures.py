"""Every op case in the official test vectors, reproduced within the README's tolerance."""

import json

import pytest
import torch

from conftest import FIXTURES, assert_close_to_reference
from stylegan2_ada.torch_utils.ops import bias_act, conv2d_resample, upfirdn2d
from stylegan2_ada.training.networks import modulated_conv2d

CASES = json.loads((FIXTURES / "manifest.json").read_text())["ops"]["cases"]


def _run_case(case: dict, vectors) -> torch.Tensor:
    t = lambda key: None if key is None else torch.from_numpy(vectors[key])  # noqa: E731
    op = case["op"]
    if op == "upfirdn2d":
        return upfirdn2d.upfirdn2d(t(case["x"]), t(case["f"]), up=case["up"], down=case["down"],
                                   padding=case["padding"], flip_filter=case["flip_filter"], gain=case["gain"])
    if op == "bias_act":
        return bias_act.bias_act(t(case["x"]), t(case["b"]), dim=case["dim"], act=case["act"],
                                 alpha=case["alpha"], gain=case["gain"], clamp=case["clamp"])
    if op == "conv2d_resample":
        return conv2d_resample.conv2d_resample(t(case["x"]), t(case["w"]), f=t(case["f"]), up=case["up"],
                                               down=case["down"], padding=case["padding"], groups=case["groups"],
                                               flip_weight=case["flip_weight"], flip_filter=case["flip_filter"])
    if op == "modulated_conv2d":
        return modulated_conv2d(t(case["x"]), t(case["weight"]), t(case["styles"]), up=case["up"], down=case["down"],
                                padding=case["padding"], resample_filter=t(case["resample_filter"]),
                                demodulate=case["demodulate"], flip_weight=case["flip_weight"],
                                fused_modconv=case["fused_modconv"])
    raise AssertionError(f"unknown op {op}")


@pytest.mark.parametrize("case", CASES, ids=[c["key"] for c in CASES])
def test_op_matches_official(case, ops_vectors):
    assert_close_to_reference(_run_case(case, ops_vectors), ops_vectors[case["key"]], rel_tol=1e-4, floor=1.0)


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "modulated_conv2d"], ids=lambda c: c["key"])
def test_modulated_conv_other_implementation_agrees(case, ops_vectors):
    """fused_modconv only picks an implementation; both must give the official result."""
    flipped = dict(case, fused_modconv=not case["fused_modconv"])
    assert_close_to_reference(_run_case(flipped, ops_vectors), ops_vectors[case["key"]], rel_tol=1e-4, floor=1.0)


def test_setup_filter_matches_reference_filters(ops_vectors):
    f4 = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert_close_to_reference(f4, ops_vectors["filter/f4"], rel_tol=1e-6)
    assert_close_to_reference(upfirdn2d.setup_filter([1, 3, 3, 1], normalize=False), ops_vectors["filter/f4nonorm"], rel_tol=1e-6)
    assert upfirdn2d.setup_filter([1] * 8).ndim == 1  # long filters stay separable
    assert float(upfirdn2d.setup_filter([1, 2, 1], gain=4).sum()) == pytest.approx(4.0)


def test_resample_helpers_keep_images_centred():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.ones([1, 2, 8, 8])
    up = upfirdn2d.upsample2d(x, f)
    down = upfirdn2d.downsample2d(x, f)
    same = upfirdn2d.filter2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4) and same.shape == x.shape
    # A constant image stays constant away from the zero-padded border.
    assert torch.allclose(up[:, :, 2:-2, 2:-2], torch.ones(1)) and torch.allclose(same[:, :, 2:-2, 2:-2], torch.ones(1))
    assert torch.allclose(down[:, :, 1:-1, 1:-1], torch.ones(1))


def test_bad_arguments_raise():
    x = torch.zeros([1, 3, 4, 4])
    with pytest.raises(ValueError):
        bias_act.bias_act(x, act="nope")
    with pytest.raises(ValueError):
        bias_act.bias_act(x, torch.zeros([4]))
    with pytest.raises(ValueError):
        upfirdn2d.upfirdn2d(x, None, padding=[1, 2, 3])
