"""AugmentPipe: exact blits, non-leaking geometry, colour algebra, statistics of each transform,
double backward for R1, debug percentiles, presets, and loading from official pickles."""

import collections
import math
import pickle

import pytest
import torch

from conftest import load_network_case
from stylegan2_ada import legacy
from stylegan2_ada.training.augment import AUGPIPE_SPECS, AugmentPipe, _Draws, build_filter_bank
from test_legacy import fake_global

BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
           brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)


def make_pipe(p: float = 1.0, **kwargs) -> AugmentPipe:
    pipe = AugmentPipe(**kwargs)
    pipe.p.fill_(p)
    return pipe


def smooth_images(n: int, c: int = 3, size: int = 16) -> torch.Tensor:
    """Random images without much high-frequency content (bilinear upsampling of a 4x4 grid)."""
    coarse = torch.rand([n, c, 4, 4]) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def luma_chroma(x: torch.Tensor):
    """Luma = mean of RGB (the pipe's luma axis), chroma = the rest."""
    luma = x[:, :3].mean(dim=1, keepdim=True)
    return luma, x[:, :3] - luma


def colour_run(seed: int, n: int, **kwargs):
    """(luma, chroma) before and after one colour transform at p = 1 on random images."""
    torch.manual_seed(seed)
    x = torch.randn([n, 3, 4, 4])
    return luma_chroma(x), luma_chroma(make_pipe(**kwargs)(x))


# ---------------------------------------------------------------------------------------------
# API.


def test_presets_and_state_dict():
    assert set(AUGPIPE_SPECS) == {"blit", "geom", "color", "filter", "noise", "cutout",
                                  "bg", "bgc", "bgcf", "bgcfn", "bgcfnc"}
    assert AUGPIPE_SPECS["blit"] == dict(xflip=1, rotate90=1, xint=1)
    assert AUGPIPE_SPECS["bgc"] == BGC
    assert AUGPIPE_SPECS["bgcfnc"] == dict(BGC, imgfilter=1, noise=1, cutout=1)
    pipe = AugmentPipe(**AUGPIPE_SPECS["bgcfnc"])
    assert list(pipe.state_dict()) == ["p"] and float(pipe.p) == 0
    assert {"geom_filter", "filter_bank"} <= dict(pipe.named_buffers()).keys()
    assert pipe.init_kwargs == AUGPIPE_SPECS["bgcfnc"]


@pytest.mark.parametrize("channels, dtype", [(1, torch.float32), (3, torch.float32), (4, torch.float32), (3, torch.float64)])
def test_output_matches_input_shape_dtype_device(channels, dtype):
    torch.manual_seed(0)
    x = torch.randn([3, channels, 16, 16], dtype=dtype)
    y = make_pipe(0.7, **AUGPIPE_SPECS["bgcfnc"])(x)
    assert (y.shape, y.dtype, y.device) == (x.shape, x.dtype, x.device)
    assert torch.isfinite(y).all()


def test_rejects_unsupported_channel_counts():
    with pytest.raises(ValueError, match="channels"):
        AugmentPipe()(torch.zeros([1, 2, 8, 8]))


@pytest.mark.parametrize("preset", sorted(AUGPIPE_SPECS))
def test_p_zero_is_the_identity(preset):
    torch.manual_seed(0)
    pipe = AugmentPipe(**AUGPIPE_SPECS[preset])
    for channels in (1, 3, 4):
        x = torch.randn([4, channels, 16, 16])
        assert torch.equal(pipe(x), x)


# ---------------------------------------------------------------------------------------------
# Pixel blitting: exact.


def test_xflip_is_exact():
    torch.manual_seed(1)
    x = torch.randn([32, 3, 8, 8])
    y = make_pipe(xflip=1)(x)
    same = (y == x).flatten(1).all(dim=1)
    flipped = (y == x.flip(3)).flatten(1).all(dim=1)
    assert (same | flipped).all() and same.any() and flipped.any()


def test_rotate90_is_exact():
    torch.manual_seed(2)
    x = torch.randn([32, 3, 8, 8])
    y = make_pipe(rotate90=1)(x)
    matches = torch.stack([(y == torch.rot90(x, k, dims=(2, 3))).flatten(1).all(dim=1) for k in range(4)], dim=1)
    assert (matches.sum(dim=1) == 1).all() and matches.any(dim=0).all()


def test_xint_is_an_exact_integer_shift():
    torch.manual_seed(3)
    x = torch.randn([16, 3, 16, 16])
    y = make_pipe(xint=1)(x)  # xint_max 0.125 of 16 pixels: at most 2 pixels each way
    found = []
    for i in range(len(x)):
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                  if torch.equal(y[i], torch.roll(x[i], (dy, dx), dims=(1, 2)))]
        assert len(shifts) == 1, i
        found += shifts
    assert any(s != (0, 0) for s in found)


# ---------------------------------------------------------------------------------------------
# General geometric: one resampling, no leaks.


def test_constant_image_stays_constant():
    """Reflection padding and the margins keep zero padding out of the result: nothing leaks in."""
    torch.manual_seed(4)
    x = torch.full([8, 3, 16, 16], 0.7)
    y = make_pipe(**AUGPIPE_SPECS["bg"])(x)
    assert (y - 0.7).abs().max() < 1e-5


def test_small_geometric_transforms_preserve_the_mean():
    torch.manual_seed(5)
    x = smooth_images(16, size=32)
    pipe = make_pipe(**AUGPIPE_SPECS["geom"], scale_std=0.05, rotate_max=0.02, aniso_std=0.05, xfrac_std=0.01)
    y = pipe(x)
    assert not torch.equal(y, x)
    mean_change = (y.mean(dim=(2, 3)) - x.mean(dim=(2, 3))).abs()
    assert mean_change.max() < 0.05 and mean_change.mean() < 0.015  # image values span [-1, 1]
    assert (y - x)[:, :, 4:-4, 4:-4].abs().mean() < 0.05


def test_warp_moves_content_exactly_where_the_matrix_says():
    """A linear ramp is reproduced by the identity warp and shifted by a half-pixel translation.

    sym6 is not symmetric; without the delay compensation both checks are off by ~0.4 px.
    """
    pipe = AugmentPipe()
    ramp = torch.arange(24.0).expand(1, 1, 24, 24) / 10
    identity = torch.eye(3)[None]
    half_pixel = torch.tensor([[[1.0, 0, -0.5], [0, 1, 0], [0, 0, 1]]])  # output x -> input x - 0.5
    inner = (..., slice(6, -6), slice(6, -6))
    assert (pipe.warp(ramp, identity) - ramp)[inner].abs().max() < 1e-4
    assert (pipe.warp(ramp, half_pixel) - (ramp - 0.05))[inner].abs().max() < 1e-4
    ramp_y = ramp.transpose(2, 3)
    assert (pipe.warp(ramp_y, identity) - ramp_y)[inner].abs().max() < 1e-4


# ---------------------------------------------------------------------------------------------
# Colour.


def test_brightness_is_an_offset_with_the_right_spread():
    torch.manual_seed(6)
    x = torch.randn([400, 3, 4, 4])
    delta = make_pipe(brightness=1)(x) - x
    offsets = delta.mean(dim=(1, 2, 3))
    assert (delta - offsets[:, None, None, None]).abs().max() < 1e-5
    assert offsets.std().item() == pytest.approx(0.2, rel=0.15)


def test_contrast_scales_around_zero_lognormally():
    torch.manual_seed(7)
    x = torch.rand([400, 3, 4, 4]) + 0.5  # away from 0, so the ratio is well defined
    ratio = make_pipe(contrast=1)(x) / x
    per_image = ratio.mean(dim=(1, 2, 3))
    assert (ratio - per_image[:, None, None, None]).abs().max() < 1e-4
    assert per_image.log2().std().item() == pytest.approx(0.5, rel=0.15)


def test_saturation_keeps_luma_and_scales_chroma():
    (luma_x, chroma_x), (luma_y, chroma_y) = colour_run(8, 400, saturation=1)
    assert (luma_y - luma_x).abs().max() < 1e-5
    scale = (chroma_y * chroma_x).sum(dim=(1, 2, 3)) / chroma_x.square().sum(dim=(1, 2, 3))
    assert (chroma_y - scale[:, None, None, None] * chroma_x).abs().max() < 1e-4
    assert scale.log2().std().item() == pytest.approx(1.0, rel=0.15)


def test_lumaflip_negates_luma_only():
    (luma_x, chroma_x), (luma_y, chroma_y) = colour_run(9, 32, lumaflip=1)
    assert (chroma_y - chroma_x).abs().max() < 1e-5
    kept = ((luma_y - luma_x).abs() < 1e-5).flatten(1).all(dim=1)
    negated = ((luma_y + luma_x).abs() < 1e-5).flatten(1).all(dim=1)
    assert (kept | negated).all() and kept.any() and negated.any()


def test_hue_rotates_chroma_around_the_luma_axis():
    (luma_x, chroma_x), (luma_y, chroma_y) = colour_run(10, 32, hue=1)
    assert (luma_y - luma_x).abs().max() < 1e-5
    assert (chroma_y.norm(dim=1) - chroma_x.norm(dim=1)).abs().max() < 1e-4
    assert (chroma_y - chroma_x).abs().max() > 0.1


def test_colour_acts_on_luma_for_grey_and_leaves_alpha_alone():
    torch.manual_seed(11)
    rgba = torch.randn([8, 4, 4, 4])
    y = make_pipe(**AUGPIPE_SPECS["color"])(rgba)
    assert torch.equal(y[:, 3], rgba[:, 3]) and not torch.equal(y[:, :3], rgba[:, :3])
    grey = torch.randn([8, 1, 4, 4])
    torch.manual_seed(12)
    y_grey = make_pipe(**AUGPIPE_SPECS["color"])(grey)
    torch.manual_seed(12)
    y_rgb = make_pipe(**AUGPIPE_SPECS["color"])(grey.expand(8, 3, 4, 4))
    assert (y_grey - y_rgb.mean(dim=1, keepdim=True)).abs().max() < 1e-5


# ---------------------------------------------------------------------------------------------
# Filtering, noise, cutout.


def test_filter_bank_splits_the_spectrum():
    bank = build_filter_bank()
    size = bank.shape[1]
    impulse = torch.zeros(size)
    impulse[size // 2] = 1
    assert (bank.sum(dim=0) - impulse).abs().max() < 1e-6  # equal gains = unchanged image
    assert torch.equal(bank, bank.flip(1))  # zero phase
    taps = torch.arange(size) - size // 2
    response = torch.stack([(bank * torch.cos(w * taps)).sum(dim=1) for w in (0.0, math.pi / 16, math.pi * 3 / 16,
                                                                                math.pi * 3 / 8, math.pi)], dim=1)
    assert torch.equal(response.argmax(dim=0)[[0, 2, 3, 4]], torch.tensor([0, 1, 2, 3]))
    assert (response.argmax(dim=0)[1] == 0) and response[0, 0] == pytest.approx(1, abs=1e-6)


def test_imgfilter_gains_and_debug_tilt():
    torch.manual_seed(13)
    pipe = make_pipe(imgfilter=1)
    gains = pipe._band_gains(_Draws(64, torch.device("cpu"), None))
    assert torch.allclose(gains.square().mean(dim=1), torch.ones(64))  # expected power preserved
    x = torch.randn([4, 3, 16, 16])

    def detail(img):
        return (img[..., 1:, :] - img[..., :-1, :]).square().mean()

    assert torch.equal(pipe(x, debug_percentile=0.5), x)
    assert detail(pipe(x, debug_percentile=0.9)) > 1.2 * detail(x)
    assert detail(pipe(x, debug_percentile=0.1)) < 0.8 * detail(x)


def test_noise_has_the_expected_strength_on_colour_channels_only():
    torch.manual_seed(14)
    x = torch.randn([300, 4, 8, 8])
    delta = make_pipe(noise=1)(x) - x
    assert torch.equal(delta[:, 3], torch.zeros_like(delta[:, 3]))
    per_image_var = delta[:, :3].var(dim=(1, 2, 3))
    assert per_image_var.mean().sqrt().item() == pytest.approx(0.1, rel=0.1)  # E[sigma^2] = noise_std^2


def test_cutout_zeroes_a_square():
    pipe = make_pipe(cutout=1)
    x = torch.rand([2, 3, 16, 16]) + 1
    zeros = pipe(x, debug_percentile=0.5) == 0
    expected = torch.zeros([16, 16], dtype=torch.bool)
    expected[4:12, 4:12] = True
    assert torch.equal(zeros, expected.expand(2, 3, 16, 16))

    torch.manual_seed(15)
    x = torch.rand([200, 3, 16, 16]) + 1
    zeros = (pipe(x) == 0).all(dim=1)  # [N, H, W]
    rows, cols = zeros.any(dim=2), zeros.any(dim=1)
    assert torch.equal(zeros, rows[:, :, None] & cols[:, None, :])  # an axis-aligned rectangle
    assert rows.sum(dim=1).max() == 8 and cols.sum(dim=1).max() == 8
    # The square is clipped at the borders: expected area (0.4375 * 16)^2 pixels.
    assert zeros.float().mean().item() == pytest.approx(0.4375 ** 2, abs=0.03)


# ---------------------------------------------------------------------------------------------
# Gradients and debug mode.


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_gradients_reach_the_images(channels):
    torch.manual_seed(16)
    x = torch.randn([4, channels, 16, 16], requires_grad=True)
    make_pipe(**AUGPIPE_SPECS["bgcfnc"])(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", ["bgc", "bgcfnc"])
def test_r1_double_backward_through_the_pipe(preset):
    torch.manual_seed(17)
    D = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Conv2d(4, 1, 3))
    pipe = make_pipe(**AUGPIPE_SPECS[preset])
    x = torch.randn([4, 3, 16, 16], requires_grad=True)
    (grad,) = torch.autograd.grad(D(pipe(x)).sum(), x, create_graph=True)
    grad.square().sum().backward()
    for param in (D[0].weight, D[0].bias, D[2].weight):  # the last bias does not change grad_x D
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_debug_percentile_is_deterministic():
    pipe = make_pipe(0.5, **AUGPIPE_SPECS["bgcfnc"])
    x = smooth_images(2)
    torch.manual_seed(18)
    a = pipe(x, debug_percentile=0.3)
    torch.manual_seed(19)
    b = pipe(x, debug_percentile=0.3)
    assert torch.equal(a, b)
    assert not torch.equal(a, pipe(x, debug_percentile=0.8))


# ---------------------------------------------------------------------------------------------
# Official pickles and our snapshots.


class _Persistent:
    """Pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, as official files do."""

    reconstruct = None

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return type(self).reconstruct, (self.meta,)


def persistent(class_name, init_kwargs, params=(), buffers=(), children=()):
    state = {
        "training": False, "_parameters": collections.OrderedDict(params),
        "_buffers": collections.OrderedDict(buffers), "_non_persistent_buffers_set": set(),
        "_modules": collections.OrderedDict(children), "_forward_hooks": collections.OrderedDict(),
        "_init_args": (), "_init_kwargs": dict(init_kwargs),
    }
    src = "raise RuntimeError('module_src must never be executed')"
    return _Persistent({"type": "class", "version": 6, "module_src": src, "class_name": class_name, "state": state})


def persistent_from_module(module, init_kwargs=None):
    """Official-style description of one of our modules, walking its sub-modules."""
    children = [(name, persistent_from_module(child)) for name, child in module._modules.items()]
    buffers = [(k, v) for k, v in module._buffers.items() if k not in module._non_persistent_buffers_set]
    return persistent(type(module).__name__, init_kwargs or {}, module._parameters.items(), buffers, children)


@pytest.fixture
def official_pipe_file(monkeypatch, tmp_path, manifest):
    """Writer of an official-format pickle holding a tiny G_ema and an AugmentPipe with the given buffers."""
    _Persistent.reconstruct = fake_global(monkeypatch, "torch_utils.persistence", "_reconstruct_persistent_obj",
                                          lambda meta: meta)
    G, _, _ = load_network_case("net_orig_orig_c0_rgba")

    def write(buffers):
        data = {
            "G": None, "D": None, "G_ema": persistent_from_module(G, manifest["net_orig_orig_c0_rgba"]["G_kwargs"]),
            "augment_pipe": persistent("AugmentPipe", AUGPIPE_SPECS["bgc"], buffers=buffers.items()),
            "training_set_kwargs": None,
        }
        path = tmp_path / "official.pkl"
        path.write_bytes(pickle.dumps(data, protocol=4))
        return path

    return write


def test_official_augment_pipe_loads_and_round_trips(official_pipe_file, tmp_path):
    torch.manual_seed(20)
    path = official_pipe_file({"p": torch.tensor(0.3), "Hz_geom": torch.randn(12), "Hz_fbank": torch.randn(4, 15)})
    nets = legacy.load_network_pkl(path)
    pipe = nets["augment_pipe"]
    assert isinstance(pipe, AugmentPipe) and float(pipe.p) == pytest.approx(0.3)
    assert pipe.init_kwargs == BGC
    assert (pipe.xflip, pipe.rotate, pipe.saturation, pipe.imgfilter, pipe.noise) == (1, 1, 1, 0, 0)
    assert (pipe.scale_std, pipe.rotate_max, pipe.contrast_std, pipe.hue_max) == (0.2, 1, 0.5, 1)
    assert list(pipe.state_dict()) == ["p"]

    snapshot = tmp_path / "snapshot.pkl"
    legacy.save_network_pkl(snapshot, {"G_ema": nets["G_ema"], "augment_pipe": pipe})
    again = legacy.load_network_pkl(snapshot)["augment_pipe"]
    assert isinstance(again, AugmentPipe) and again.init_kwargs == BGC and float(again.p) == float(pipe.p)
    x = torch.randn([2, 4, 16, 16])
    assert torch.equal(again(x, debug_percentile=0.7), pipe(x, debug_percentile=0.7))


def test_official_augment_pipe_still_needs_p(official_pipe_file):
    path = official_pipe_file({"Hz_geom": torch.randn(12)})
    with pytest.raises(legacy.NetworkLoadError, match="'p' is missing"):
        legacy.load_network_pkl(path)
