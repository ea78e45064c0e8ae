"""Networks: the official test vectors, and the behaviours users rely on."""

import numpy as np
import pytest
import torch

from conftest import NETWORK_CASES, assert_close_to_reference, load_network_case
from stylegan2_ada.training import networks

NET_TOL = 5e-4


@pytest.fixture(scope="module", params=NETWORK_CASES)
def case(request):
    return load_network_case(request.param)


def test_mapping_matches_official(case):
    G, _, a = case
    z, c = torch.from_numpy(a["in/z"]), torch.from_numpy(a["in/c"])
    with torch.no_grad():
        assert_close_to_reference(G.mapping(z, c, truncation_psi=1), a["out/ws_psi1"], NET_TOL)
        assert_close_to_reference(G.mapping(z, c, truncation_psi=0.7), a["out/ws_psi07"], NET_TOL)
        assert_close_to_reference(G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=2), a["out/ws_psi07_cutoff2"], NET_TOL)


@pytest.mark.parametrize("fused_modconv", [None, True, False])
def test_synthesis_matches_official(case, fused_modconv):
    G, _, a = case
    ws = torch.from_numpy(a["out/ws_psi1"])
    kw = dict(force_fp32=True, fused_modconv=fused_modconv)
    with torch.no_grad():
        assert_close_to_reference(G.synthesis(ws, noise_mode="const", **kw), a["out/img_const"], NET_TOL)
        assert_close_to_reference(G.synthesis(ws, noise_mode="none", **kw), a["out/img_none"], NET_TOL)
        assert_close_to_reference(G.synthesis(torch.from_numpy(a["in/ws_mix"]), noise_mode="const", **kw), a["out/img_mix_const"], NET_TOL)
        img = G(torch.from_numpy(a["in/z"]), torch.from_numpy(a["in/c"]), truncation_psi=0.7, noise_mode="const", **kw)
        assert_close_to_reference(img, a["out/img_trunc07_const"], NET_TOL)


def test_discriminator_matches_official(case):
    _, D, a = case
    c = torch.from_numpy(a["in/c"])
    with torch.no_grad():
        assert_close_to_reference(D(torch.from_numpy(a["out/img_const"]), c, force_fp32=True), a["out/D_logits_fake"], NET_TOL)
        assert_close_to_reference(D(torch.from_numpy(a["in/real"]), c, force_fp32=True), a["out/D_logits_real"], NET_TOL)


def test_state_dict_keys_and_shapes_are_official(case):
    G, D, a = case
    for net, prefix in [(G, "G/"), (D, "D/")]:
        ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        theirs = {k[len(prefix):]: a[k].shape for k in a.files if k.startswith(prefix)}
        assert ours == theirs


def tiny_generator(**synthesis_kwargs) -> networks.Generator:
    torch.manual_seed(0)
    return networks.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                              mapping_kwargs=dict(num_layers=2),
                              synthesis_kwargs=dict(channel_base=64, channel_max=8, **synthesis_kwargs))


def test_generator_attributes_and_init_kwargs():
    G = tiny_generator()
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution, G.img_channels) == (8, 0, 8, 16, 3)
    assert G.num_ws == G.mapping.num_ws == 1 + 2 + 2 + 1  # convs of b4, b8, b16, plus the last ToRGB
    assert G.init_kwargs["synthesis_kwargs"] == dict(channel_base=64, channel_max=8)
    assert G.mapping.init_kwargs["num_ws"] == G.num_ws


def test_noise_modes():
    G = tiny_generator().eval()
    with torch.no_grad():
        for layer in G.modules():
            if isinstance(layer, networks.SynthesisLayer):
                layer.noise_strength.fill_(0.5)
        ws = G.mapping(torch.randn(2, 8), None)
        const_a = G.synthesis(ws, noise_mode="const")
        const_b = G.synthesis(ws, noise_mode="const")
        rand_a = G.synthesis(ws, noise_mode="random")
        none = G.synthesis(ws, noise_mode="none")
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(const_a, rand_a)
    assert not torch.allclose(const_a, none)
    with pytest.raises(ValueError):
        G.synthesis(ws, noise_mode="loud")


def test_w_avg_tracks_mapping_output_only_in_training():
    G = tiny_generator()
    z = torch.randn(16, 8)
    G.eval()
    G.mapping(z, None)
    assert torch.count_nonzero(G.mapping.w_avg) == 0
    G.train()
    w = G.mapping(z, None)[:, 0]
    assert torch.allclose(G.mapping.w_avg, w.detach().mean(0) * (1 - 0.995), atol=1e-6)
    before = G.mapping.w_avg.clone()
    G.mapping(z, None, skip_w_avg_update=True)
    assert torch.equal(before, G.mapping.w_avg)


def test_truncation_psi_zero_gives_w_avg():
    G = tiny_generator().eval()
    G.mapping.w_avg.normal_()
    ws = G.mapping(torch.randn(3, 8), None, truncation_psi=0)
    assert torch.allclose(ws, G.mapping.w_avg.expand_as(ws))


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_conditional_networks_and_fp16_settings_run_on_cpu(architecture):
    G = networks.Generator(z_dim=8, c_dim=2, w_dim=8, img_resolution=16, img_channels=1,
                           synthesis_kwargs=dict(channel_base=64, channel_max=8, architecture=architecture,
                                                 num_fp16_res=2, conv_clamp=256))
    D = networks.Discriminator(c_dim=2, img_resolution=16, img_channels=1, architecture=architecture,
                               channel_base=64, channel_max=8, num_fp16_res=2, conv_clamp=256)
    c = torch.eye(2)[[0, 1, 1, 0]]
    img = G(torch.randn(4, 8), c)
    assert img.shape == (4, 1, 16, 16) and img.dtype == torch.float32 and torch.isfinite(img).all()
    logits = D(img, c)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in D.parameters())


def test_minibatch_std_groups_strided_samples():
    layer = networks.MinibatchStdLayer(group_size=2)
    x = torch.zeros(4, 1, 1, 1)
    x[2] = 2.0  # sample 2 is grouped with sample 0 (stride n / group)
    out = layer(x)
    assert out.shape == (4, 2, 1, 1)
    assert torch.allclose(out[:, 1].flatten(), torch.tensor([1.0, 0.0, 1.0, 0.0]), atol=1e-3)


def test_freeze_d_makes_first_layers_buffers():
    D = networks.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=8,
                               block_kwargs=dict(freeze_layers=2))
    params = dict(D.named_parameters())
    assert "b16.fromrgb.weight" not in params and "b16.conv0.weight" not in params
    assert "b16.conv1.weight" in params
    assert "b16.fromrgb.weight" in dict(D.named_buffers())


def test_bad_resolution_is_rejected():
    with pytest.raises(ValueError):
        networks.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=24, img_channels=3)


def test_w_dependent_gradients_flow_to_every_generator_parameter():
    G = tiny_generator().train()
    img = G(torch.randn(2, 8), None)
    img.square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None]
    assert missing == []
    assert np.isfinite(sum(float(p.grad.abs().sum()) for p in G.parameters()))
