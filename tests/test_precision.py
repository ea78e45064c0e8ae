"""Mixed precision: choosing it, what runs in which type, bf16 accuracy against fp32, and the flags.

Tolerances (README, Training): bfloat16 keeps 8 significant bits, so one rounding moves a value by up
to 2^-9 of itself. An op rounds its inputs and its output, and the separable FIR filter rounds after
every tap, so bf16 ops are held to 2e-2 x max|fp32 result| (about five bf16 steps at the largest
value); a whole generator or discriminator, a dozen such layers deep, to 5e-2. Input gradients (R1's)
sum many terms that largely cancel, so single entries can be off by more: they are held to 5e-2 in
root-mean-square relative error, and the R1 penalty, their squared norm, to 2e-2 per sample.
"""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan2_ada import generate, legacy, train
from stylegan2_ada.metrics import metric_utils
from stylegan2_ada.torch_utils import precision
from stylegan2_ada.torch_utils.ops import bias_act, compiled, conv2d_resample, upfirdn2d
from stylegan2_ada.training import networks
from training_helpers import FIXTURE_ZIP

BF16_OP_TOL = 2e-2
BF16_NET_TOL = 5e-2
CPU = torch.device("cpu")


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    return float((actual.detach().float() - reference).abs().max() / reference.abs().max())


def tiny_pair(num_fp16_res: int = 2):
    """G and D at 16x16 whose two finest resolutions (8, 16) are marked for reduced precision."""
    torch.manual_seed(0)
    arch = dict(channel_base=128, channel_max=16, num_fp16_res=num_fp16_res, conv_clamp=256)
    G = networks.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=arch)
    D = networks.Discriminator(c_dim=0, img_resolution=16, img_channels=3, epilogue_kwargs=dict(mbstd_group_size=2),
                               **arch)
    return G, D


# --- choosing a precision ------------------------------------------------------------------------------

def test_explicit_precisions_are_kept_and_unknown_ones_refused():
    for name in ("fp32", "bf16", "fp16"):
        assert precision.resolve(name, CPU) == precision.Choice(name, "requested")
    with pytest.raises(precision.PrecisionError, match="unknown precision 'fp64'"):
        precision.resolve("fp64", CPU)


def test_auto_on_cuda_is_the_official_float16():
    assert precision.resolve("auto", torch.device("cuda")).name == "fp16"


@pytest.mark.parametrize("units, speedup, expected", [
    (dict(amx_bf16=False, avx512_bf16=False), None, "fp32"),  # no native bf16: no probe at all
    (dict(amx_bf16=True, avx512_bf16=True), 3.5, "bf16"),
    (dict(amx_bf16=False, avx512_bf16=True), 1.6, "bf16"),
    (dict(amx_bf16=False, avx512_bf16=True), 0.6, "fp32"),  # native units, but slower than float32 here
])
def test_auto_on_a_cpu_needs_native_bf16_units_and_a_probe_that_shows_they_pay(monkeypatch, units, speedup, expected):
    def probe():
        assert speedup is not None, "probed a CPU without bf16 units"
        return speedup

    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: units)
    monkeypatch.setattr(precision, "bf16_probe_speedup", probe)
    choice = precision.resolve("auto", CPU)
    assert choice.name == expected
    assert choice.reason.startswith("auto: ") and (speedup is None or f"{speedup:.2f}x" in choice.reason)


def test_the_probe_times_both_types_and_leaves_the_thread_count_alone():
    threads = torch.get_num_threads()
    speedup = precision.bf16_probe_speedup.__wrapped__(rounds=1)
    assert 0 < speedup < 100 and torch.get_num_threads() == threads
    assert set(precision.cpu_bf16_units()) == {"amx_bf16", "avx512_bf16"}


# --- what runs in which type --------------------------------------------------------------------------

def record_input_dtypes(modules):
    seen = []
    for name, module in modules:
        module.register_forward_pre_hook(lambda _m, args, name=name: seen.append((name, args[0].dtype)))
    return seen


def test_outside_a_scope_marked_blocks_keep_the_device_default_and_fp32_is_bit_identical():
    G, _ = tiny_pair()
    z = torch.randn(2, 8)
    forced = G(z, None, noise_mode="const", force_fp32=True)
    assert torch.equal(G(z, None, noise_mode="const"), forced)  # CPU default: float32
    with precision.reduced_precision("fp32"):
        assert torch.equal(G(z, None, noise_mode="const"), forced)
    with precision.reduced_precision(None):
        assert precision.reduced_dtype(CPU) == torch.float32
    with pytest.raises(precision.PrecisionError):
        with precision.reduced_precision("auto"):
            pass


def test_bf16_scope_runs_marked_blocks_in_bf16_and_keeps_the_rest_in_fp32():
    G, D = tiny_pair()
    seen = record_input_dtypes([("G.b4.conv1", G.synthesis.b4.conv1), ("G.b16.conv1", G.synthesis.b16.conv1),
                                ("G.fc0", G.mapping.fc0), ("G.b16.affine", G.synthesis.b16.conv1.affine),
                                ("D.b16.conv0", D.b16.conv0), ("D.b4.conv", D.b4.conv)])
    z = torch.randn(2, 8)
    with precision.reduced_precision("bf16"):
        with precision.reduced_precision("fp16"):
            assert precision.reduced_dtype(CPU) == torch.float16  # scopes nest ...
        assert precision.reduced_dtype(CPU) == torch.bfloat16  # ... and restore
        ws = G.mapping(z, None)
        img = G.synthesis(ws, noise_mode="const")
        logits = D(img, None)
    assert torch.equal(ws, G.mapping(z, None))  # the mapping network is untouched
    assert img.dtype == logits.dtype == torch.float32
    assert dict(seen) == {"G.b4.conv1": torch.float32, "G.b16.conv1": torch.bfloat16, "G.fc0": torch.float32,
                          "G.b16.affine": torch.float32, "D.b16.conv0": torch.bfloat16, "D.b4.conv": torch.float32}
    with precision.reduced_precision("bf16"):
        assert G.synthesis(ws, noise_mode="const", force_fp32=True).equal(G.synthesis(ws, noise_mode="const",
                                                                                       force_fp32=True))
    assert precision.reduced_dtype(CPU) == torch.float32


# --- bf16 accuracy against fp32 --------------------------------------------------------------------------

@pytest.mark.parametrize("up", [1, 2])
def test_bf16_modulated_conv_is_within_tolerance_of_fp32(up):
    torch.manual_seed(1)
    x, w, styles = torch.randn(4, 16, 8, 8), torch.randn(24, 16, 3, 3), torch.randn(4, 16)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    opts = dict(up=up, padding=1, resample_filter=f, flip_weight=up == 1, fused_modconv=False)
    reference = networks.modulated_conv2d(x, w, styles, **opts)
    got = networks.modulated_conv2d(x.bfloat16().to(memory_format=torch.channels_last), w, styles, **opts)
    assert got.dtype == torch.bfloat16 and relative_error(got, reference) <= BF16_OP_TOL


@pytest.mark.parametrize("kwargs", [dict(up=2, padding=[2, 1, 2, 1], gain=4), dict(down=2, padding=1), dict(padding=1)])
def test_bf16_fir_filter_is_within_tolerance_of_fp32(kwargs):
    torch.manual_seed(2)
    x, f = torch.randn(2, 8, 12, 12), upfirdn2d.setup_filter([1, 3, 3, 1])
    got = upfirdn2d.upfirdn2d(x.bfloat16().to(memory_format=torch.channels_last), f, **kwargs)
    assert relative_error(got, upfirdn2d.upfirdn2d(x, f, **kwargs)) <= BF16_OP_TOL


def test_bf16_strided_conv_and_clamped_bias_act_are_within_tolerance_of_fp32():
    torch.manual_seed(3)
    x, w, b = torch.randn(2, 8, 12, 12), torch.randn(8, 8, 3, 3), torch.randn(8)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    reference = conv2d_resample.conv2d_resample(x, w, f=f, down=2, padding=1)
    got = conv2d_resample.conv2d_resample(x.bfloat16(), w.bfloat16(), f=f, down=2, padding=1)
    assert relative_error(got, reference) <= BF16_OP_TOL
    reference = bias_act.bias_act(x, b, act="lrelu", clamp=1.5)
    got = bias_act.bias_act(x.bfloat16(), b.bfloat16(), act="lrelu", clamp=1.5)
    assert relative_error(got, reference) <= BF16_OP_TOL and float(got.abs().max()) <= 1.5


def test_bf16_networks_and_their_r1_gradients_are_within_tolerance_of_fp32():
    G, D = tiny_pair()
    z = torch.randn(4, 8)
    images = G(z, None, noise_mode="const").detach()
    reals = images.clone().requires_grad_(True)
    logits = D(reals, None)
    (slope,) = torch.autograd.grad(logits.sum(), reals)
    with precision.reduced_precision("bf16"):
        images_bf16 = G(z, None, noise_mode="const")
        logits_bf16 = D(reals, None)
        (slope_bf16,) = torch.autograd.grad(logits_bf16.sum(), reals, create_graph=True)
        slope_bf16.square().sum().backward()  # R1 needs the double backward through bf16 blocks
    assert relative_error(images_bf16, images) <= BF16_NET_TOL
    assert relative_error(logits_bf16.detach(), logits.detach()) <= BF16_NET_TOL
    assert slope_bf16.dtype == torch.float32
    assert float((slope_bf16 - slope).norm() / slope.norm()) <= 5e-2
    penalty, penalty_bf16 = slope.square().sum([1, 2, 3]), slope_bf16.detach().square().sum([1, 2, 3])
    assert float(((penalty_bf16 - penalty) / penalty).abs().max()) <= 2e-2
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_fp16_runs_on_the_cpu_too_so_the_gpu_path_is_exercised():
    G, _ = tiny_pair()
    seen = record_input_dtypes([("b16", G.synthesis.b16.conv1)])
    z = torch.randn(2, 8)
    with precision.reduced_precision("fp16"):
        img = G(z, None, noise_mode="const")
    assert seen == [("b16", torch.float16)] and img.dtype == torch.float32
    assert relative_error(img, G(z, None, noise_mode="const")) <= BF16_NET_TOL


def test_the_metrics_generator_pass_runs_in_the_chosen_precision(monkeypatch):
    G, _ = tiny_pair()
    seen = record_input_dtypes([("b16", G.synthesis.b16.conv1)])
    monkeypatch.setattr(metric_utils.MetricOptions, "detector", lambda self, *a, **k: lambda x, **kw: x.float().mean([2, 3]))
    for name, dtype in (("bf16", torch.bfloat16), (None, torch.float32)):
        opts = metric_utils.MetricOptions(G=G, precision=name)
        stats = metric_utils.compute_feature_stats_for_generator(opts, "tiny", {}, capture_all=True, max_items=2)
        assert stats.num_items == 2 and seen.pop()[1] == dtype
    with pytest.raises(metric_utils.MetricError, match="resolve 'auto' first"):
        metric_utils.MetricOptions(G=G, precision="auto")


def test_compiled_kernels_compute_the_same_and_keep_double_backward():
    """The GPU path's --compile, on the CPU: AOT tracing without code generation, which is what decides
    whether our kernels compile at all (Inductor's code generation takes minutes per kernel here)."""
    x, b = torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(4, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])

    def run():
        y = bias_act.bias_act(upfirdn2d.upfirdn2d(x, f, down=2, padding=1), b, act="lrelu", clamp=0.5)
        (slope,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        return [y.detach(), slope.detach(), torch.autograd.grad(slope.square().sum(), x)[0]]

    reference = run()
    torch._dynamo.utils.counters.clear()
    compiled.enable("aot_eager")
    try:
        got = run()
    finally:
        compiled.disable()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 3  # both ops' kernels went through dynamo
    assert not torch._dynamo.utils.counters["graph_break"]
    assert all(torch.equal(a, b) for a, b in zip(reference, got))


# --- the flags ----------------------------------------------------------------------------------------------

TINY = ["--cbase=128", "--cmax=16", "--map=2", "--workers=0", "--batch=4", "--mbstd-group=2", "--aug=noaug",
        f"--data={FIXTURE_ZIP}"]


def train_cli(*args):
    return CliRunner().invoke(train.main, list(args))


def test_a_short_bf16_training_run(tmp_path):
    result = train_cli(f"--outdir={tmp_path}", "--kimg=0.016", "--tick=0.004", "--snap=4", "--precision=bf16", *TINY)
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    assert run.name.endswith("-bf16")
    assert json.loads((run / "training_options.json").read_text())["precision"] == "bf16"
    assert "Precision: bf16 in the reduced-precision layers (requested)" in (run / "log.txt").read_text()
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(stats) >= 4
    assert all(np.isfinite(entry[key]["mean"]) for entry in stats for key in ("Loss/G/loss", "Loss/D/loss"))
    snapshot = legacy.load_network_pkl(str(next(run.glob("network-snapshot-*.pkl"))))
    assert all(p.dtype == torch.float32 for p in snapshot["G"].parameters())  # master weights stay float32


def test_fp32_flag_implies_fp32_and_contradicts_a_half_precision(tmp_path):
    result = train_cli(f"--outdir={tmp_path / 'a'}", "--dry-run", "--fp32", "--compile", *TINY)
    assert result.exit_code == 0 and '"precision": "fp32"' in result.output and '"compile_ops": true' in result.output
    result = train_cli(f"--outdir={tmp_path / 'b'}", "--kimg=0.004", "--fp32", "--precision=bf16", *TINY)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--precision" in result.output and "--fp32" in result.output
    assert not (tmp_path / "b").exists()


def test_generate_precision_flag(tmp_path):
    G, _ = tiny_pair()
    path = tmp_path / "net.pkl"
    legacy.save_network_pkl(path, {"G": G, "D": None, "G_ema": G, "augment_pipe": None})
    images = {}
    for name in ("fp32", "bf16"):
        result = CliRunner().invoke(generate.main, [f"--network={path}", "--seeds=0-1", f"--outdir={tmp_path / name}",
                                                    f"--precision={name}"])
        assert result.exit_code == 0, result.output
        images[name] = np.stack([np.asarray(PIL.Image.open(p)).astype(int)
                                 for p in sorted((tmp_path / name).glob("seed*.png"))])
    z = torch.from_numpy(generate.seed_to_z(0, G.z_dim)).float()
    direct = generate.images_to_uint8(G(z, torch.zeros([1, 0]), noise_mode="const", force_fp32=True))[0]
    assert np.array_equal(images["fp32"][0], direct)  # fp32 is exactly what it always was
    assert 0 < np.abs(images["bf16"] - images["fp32"]).mean() < 2  # bf16 differs, by under two grey levels
    result = CliRunner().invoke(generate.main, [f"--network={path}", "--seeds=0", f"--outdir={tmp_path / 'x'}",
                                                "--precision=fp8"])
    assert result.exit_code != 0 and "--precision" in result.output and not (tmp_path / "x").exists()
