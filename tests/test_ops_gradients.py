"""First and second derivatives of every op, checked numerically in float64."""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from stylegan2_ada.torch_utils.ops import bias_act, conv2d_resample, fma, grid_sample_gradfix, upfirdn2d
from stylegan2_ada.training.networks import modulated_conv2d


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def check_both(fn, inputs):
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5)
    assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("up,down,padding", [(1, 1, 0), (2, 1, 1), (1, 2, [1, 2, 0, 1]), (2, 2, 0), (3, 1, 0)])
@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 3, 4, 5, 4, 3, 2]])
def test_upfirdn2d_gradients(up, down, padding, taps):
    f = upfirdn2d.setup_filter(taps).double()
    check_both(lambda x: upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, gain=2), [rand(1, 2, 9, 8)])


def test_upfirdn2d_non_separable_filter_gradients():
    f = torch.tensor([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]], dtype=torch.float64)
    check_both(lambda x: upfirdn2d.upfirdn2d(x, f, up=2, down=1, padding=1), [rand(1, 2, 4, 5)])


@pytest.mark.parametrize("act", sorted(bias_act.activation_funcs))
def test_bias_act_gradients(act):
    # Keep inputs away from kinks (0) so finite differences are meaningful.
    x = (torch.rand(2, 3, 3, 3, dtype=torch.float64) + 0.1) * torch.sign(torch.randn(2, 3, 3, 3, dtype=torch.float64))
    x.requires_grad_(True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    check_both(lambda x, b: bias_act.bias_act(x, b, act=act, clamp=10.0), [x, b])


@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_bias_act_gradients_where_the_clamp_acts(act):
    """Outputs beyond the clamp pass no gradient (first and second order); the backward skips the
    mask only when no output reached the clamp, so here it must apply it."""
    x = (torch.rand(2, 3, 3, 3, dtype=torch.float64) + 0.1) * torch.sign(torch.randn(2, 3, 3, 3, dtype=torch.float64))
    x[0, 0] = 5.0  # clamped after the gain, well away from the kink at the clamp
    x[1, 2] = -20.0  # lrelu: -20 * 0.2 * sqrt(2) is below -2 too
    x.requires_grad_(True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: bias_act.bias_act(x, b, act=act, clamp=2.0)  # noqa: E731
    (grad_x,) = torch.autograd.grad(fn(x, b).sum(), x)
    assert (grad_x[0, 0] == 0).all() and (grad_x[0, 1] != 0).all()
    assert (grad_x[1, 2] == 0).all() and (grad_x[1, 1] != 0).all()
    check_both(fn, [x, b])


def test_upfirdn2d_notices_a_filter_changed_in_place():
    """The prepared taps are cached per filter tensor; changing the filter in place must not reuse them."""
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 2, 6, 6)
    before = upfirdn2d.upsample2d(x, f)
    f.copy_(upfirdn2d.setup_filter([1, 1]).repeat_interleave(2, 0).repeat_interleave(2, 1) / 4)
    after = upfirdn2d.upsample2d(x, f)
    fresh = upfirdn2d.upsample2d(x, f.clone())
    assert not torch.allclose(before, after)
    assert torch.equal(after, fresh)


@pytest.mark.parametrize("up,down,kernel", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_gradients(up, down, kernel, flip_weight):
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    fn = lambda x, w: conv2d_resample.conv2d_resample(  # noqa: E731
        x, w, f=f, up=up, down=down, padding=kernel // 2, flip_weight=flip_weight)
    check_both(fn, [rand(1, 2, 4, 4), rand(3, 2, kernel, kernel)])


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv2d_gradients(fused, up):
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    fn = lambda x, w, s, n: modulated_conv2d(  # noqa: E731
        x, w, s, noise=n, up=up, padding=1, resample_filter=f, flip_weight=(up == 1), fused_modconv=fused)
    check_both(fn, [rand(2, 3, 3, 3), rand(2, 3, 3, 3), rand(2, 3), rand(2, 1, 3 * up, 3 * up)])


def test_fma_gradients_with_broadcasting():
    check_both(fma.fma, [rand(2, 3, 4, 4), rand(2, 3, 1, 1), rand(2, 1, 4, 4)])


def test_grid_sample_matches_torch_and_has_second_derivative():
    x = rand(2, 3, 5, 6)
    grid = (torch.rand(2, 4, 7, 2, dtype=torch.float64) * 2.2 - 1.1)
    ours = grid_sample_gradfix.grid_sample(x, grid)
    theirs = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert torch.allclose(ours, theirs)
    check_both(lambda x: grid_sample_gradfix.grid_sample(x, grid), [x])


def test_grid_sample_r1_style_double_backward_reaches_weights():
    """The R1 pattern: gradient w.r.t. the image, then its norm differentiated w.r.t. a weight."""
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(1, 6, 6, 2, dtype=torch.float64) * 2 - 1
    score = torch.nn.functional.conv2d(grid_sample_gradfix.grid_sample(x, grid), weight).square().sum()
    (grad_x,) = torch.autograd.grad(score, x, create_graph=True)
    (grad_w,) = torch.autograd.grad(grad_x.square().sum(), weight)
    assert grad_w.abs().sum() > 0


def test_upfirdn2d_after_inference_mode_still_trains():
    """A first call under inference_mode must not leave taps behind that a later backward cannot save."""
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    with torch.inference_mode():
        upfirdn2d.upsample2d(torch.randn(1, 2, 4, 4), f)
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    upfirdn2d._upfirdn2d_conv(x, upfirdn2d._prepared_filter(f, False, 4.0, x.dtype).taps, None,
                              (2, 2), (1, 1), (2, 1, 2, 1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
