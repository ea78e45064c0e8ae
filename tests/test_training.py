"""Training end to end at tiny sizes: run directory, resume, kill -9, NaN guard, bad flags, loss maths."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan2_ada import dnnlib, legacy, train
from stylegan2_ada.training import loss as loss_module
from stylegan2_ada.training import training_loop
from training_helpers import FIXTURE_ZIP

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--cbase=128", "--cmax=16", "--map=2", "--workers=0", "--batch=4", "--mbstd-group=2", "--fp32"]
TICK_FIELDS = ["tick", "kimg", "time", "sec/tick", "sec/kimg", "maintenance", "cpumem", "gpumem", "augment"]


def run_cli(*args: str):
    result = CliRunner().invoke(train.main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def only_run_dir(outdir: Path) -> Path:
    runs = sorted(p for p in outdir.iterdir() if p.is_dir())
    assert len(runs) >= 1
    return runs[-1]


def test_cli_run_writes_the_official_run_directory(tmp_path):
    code, out = run_cli(f"--outdir={tmp_path}", f"--data={FIXTURE_ZIP}", "--kimg=0.024", "--tick=0.012",
                        "--snap=1", "--aug=noaug", "--mirror", *TINY)
    assert code == 0, out
    run = only_run_dir(tmp_path)
    assert re.fullmatch(r"00000-upstream_dataset_32_labels-mirror-auto1-kimg0.024-batch4-noaug-fp32", run.name)
    names = set(os.listdir(run))
    assert {"training_options.json", "log.txt", "stats.jsonl", "reals.png", "fakes_init.png"} <= names
    assert "fakes000000.png" in names and "network-snapshot-000000.pkl" in names

    options = json.loads((run / "training_options.json").read_text())
    assert options["batch_size"] == 4 and options["training_set_kwargs"]["xflip"] is True
    tick_lines = [line for line in (run / "log.txt").read_text().splitlines() if line.startswith("tick ")]
    assert len(tick_lines) >= 2
    assert all(field in tick_lines[-1].split() for field in TICK_FIELDS)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert "Loss/G/loss" in stats[-1] and "Loss/D/loss" in stats[-1] and "timestamp" in stats[-1]
    assert np.isfinite(stats[-1]["Loss/G/loss"]["mean"])

    snapshot = legacy.load_network_pkl(str(run / "network-snapshot-000000.pkl"))
    assert snapshot["progress"]["cur_nimg"] == 24
    assert snapshot["G_ema"].img_resolution == 32
    with PIL.Image.open(run / "fakes_init.png") as grid:
        assert grid.size[0] % 32 == 0 and grid.size[1] % 32 == 0


def test_resume_continues_kimg_and_keeps_architecture(tmp_path):
    code, out = run_cli(f"--outdir={tmp_path}", f"--data={FIXTURE_ZIP}", "--kimg=0.012", "--snap=1", "--aug=noaug", *TINY)
    assert code == 0, out
    snapshot = next(only_run_dir(tmp_path).glob("network-snapshot-*.pkl"))
    # Different --cbase: the resumed networks must keep the snapshot's own architecture.
    code, out = run_cli(f"--outdir={tmp_path}", f"--data={FIXTURE_ZIP}", "--kimg=0.024", "--snap=1", "--aug=noaug",
                        f"--resume={snapshot}", *[a for a in TINY if not a.startswith("--cbase")], "--cbase=256")
    assert code == 0, out
    log = (only_run_dir(tmp_path) / "log.txt").read_text()
    assert "Resuming from" in log and "architecture" in log
    final = legacy.load_network_pkl(str(sorted(only_run_dir(tmp_path).glob("network-snapshot-*.pkl"))[-1]))
    assert final["progress"]["cur_nimg"] == 24
    assert final["G"].init_kwargs["synthesis_kwargs"]["channel_base"] == 128


def test_kill_9_then_resume_from_newest_snapshot(tmp_path):
    outdir = tmp_path / "runs"
    cmd = [sys.executable, "-m", "stylegan2_ada.train", f"--outdir={outdir}", f"--data={FIXTURE_ZIP}",
           "--kimg=5", "--tick=0.008", "--snap=1", "--aug=noaug", *TINY]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if outdir.exists() and len(list(outdir.glob("*/network-snapshot-*.pkl"))) >= 1 and \
                    (outdir / os.listdir(outdir)[0] / "stats.jsonl").exists() and \
                    len((outdir / os.listdir(outdir)[0] / "stats.jsonl").read_text().splitlines()) >= 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("training did not write snapshots in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = only_run_dir(outdir)
    assert not list(run.glob("*.part")) or all(p.name.startswith(".") for p in run.glob("*.part"))
    newest = sorted(run.glob("network-snapshot-*.pkl"))[-1]
    resumed = legacy.load_network_pkl(str(newest))  # a complete snapshot, whatever moment the kill hit
    done_nimg = resumed["progress"]["cur_nimg"]
    assert done_nimg > 0
    code, out = run_cli(f"--outdir={outdir}", f"--data={FIXTURE_ZIP}", f"--kimg={(done_nimg + 8) / 1000}",
                        "--tick=0.008", "--snap=1", "--aug=noaug", f"--resume={newest}", *TINY)
    assert code == 0, out
    final = legacy.load_network_pkl(str(sorted(only_run_dir(outdir).glob("network-snapshot-*.pkl"))[-1]))
    assert final["progress"]["cur_nimg"] == done_nimg + 8


def test_max_minutes_stops_before_kimg_with_a_final_snapshot(tmp_path):
    # 0.5 s of budget against 100 kimg: the run must stop on time, not at --kimg.
    code, out = run_cli(f"--outdir={tmp_path}", f"--data={FIXTURE_ZIP}", "--kimg=100", "--tick=50", "--snap=1000",
                        "--aug=noaug", "--max-minutes=0.008", *TINY)
    assert code == 0, out
    run = only_run_dir(tmp_path)
    log = (run / "log.txt").read_text()
    assert "Time budget of 0.008 minutes spent" in log
    snapshots = sorted(run.glob("network-snapshot-*.pkl"))
    final = legacy.load_network_pkl(str(snapshots[-1]))
    assert 0 < final["progress"]["cur_nimg"] < 100_000
    assert json.loads((run / "training_options.json").read_text())["max_minutes"] == 0.008


def test_non_finite_loss_stops_with_tick_and_phase(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = loss_module.StyleGAN2Loss.run_D

    def poisoned(self, img, c, sync=True):
        calls["n"] += 1
        logits = original(self, img, c, sync)
        return logits * float("nan") if calls["n"] > 6 else logits

    monkeypatch.setattr(loss_module.StyleGAN2Loss, "run_D", poisoned)
    result = CliRunner().invoke(train.main, [f"--outdir={tmp_path}", f"--data={FIXTURE_ZIP}", "--kimg=0.1",
                                             "--aug=noaug", *TINY])
    assert result.exit_code != 0
    assert re.search(r"non-finite loss in tick \d+ .*phase \w+", result.output)
    assert "Traceback" not in result.output


def _unlabelled_zip(path: Path) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(4):
            img = PIL.Image.fromarray(np.full([16, 16, 3], i * 40, np.uint8))
            with zf.open(f"00000/img{i:08d}.png", "w") as f:
                img.save(f, format="png")
    return str(path)


@pytest.mark.parametrize("flags, mentions", [
    (["--aug=ada", "--p=0.2"], "--p"),
    (["--aug=fixed"], "--p"),
    (["--batch=3", "--batch-gpu=2"], "--batch-gpu"),
    (["--cond"], "--cond"),
    (["--cond=1"], "--cond"),
    (["--mirror=maybe"], "--mirror"),
    (["--noise=maybe"], "--noise"),
    (["--data=/nonexistent/data.zip"], "--data"),
])
def test_bad_flags_give_one_line_and_no_run_dir(tmp_path, flags, mentions):
    data = _unlabelled_zip(tmp_path / "plain.zip")
    outdir = tmp_path / "runs"
    args = [f"--outdir={outdir}", f"--data={data}", "--kimg=0.01", "--workers=0"] + flags
    result = CliRunner().invoke(train.main, args)
    assert result.exit_code != 0
    assert mentions in result.output and "Traceback" not in result.output
    assert not outdir.exists() or not any(outdir.iterdir())


def test_dry_run_prints_options_and_writes_nothing(tmp_path):
    code, out = run_cli(f"--outdir={tmp_path / 'runs'}", f"--data={FIXTURE_ZIP}", "--dry-run", "--aug=noaug")
    assert code == 0 and '"batch_size"' in out and "Dry run" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("spelling, xflip", [("--mirror=1", True), ("--mirror", True), ("--mirror=0", False),
                                              ("--mirror=false", False)])
def test_boolean_flags_take_the_official_spelling_or_none(tmp_path, spelling, xflip):
    """Users of the official release write ``--mirror=1``; a bare ``--mirror`` means the same."""
    code, out = run_cli(f"--outdir={tmp_path / 'runs'}", f"--data={FIXTURE_ZIP}", "--dry-run", spelling,
                        "--fp32=1", "--aug=noaug")
    assert code == 0
    options = json.loads(out[out.index("{"):out.rindex("}") + 1])
    assert options["training_set_kwargs"]["xflip"] is xflip
    assert ("-mirror-" in out) is xflip and "-fp32" in out      # the run directory's name


def test_noise_0_trains_a_generator_without_noise_inputs(tmp_path):
    """--noise=0 builds G with the official layers' use_noise=False: no noise buffers or strengths, so a
    sample depends on its w alone, whatever noise mode it is drawn with."""
    code, out = run_cli(f"--outdir={tmp_path}", f"--data={FIXTURE_ZIP}", "--kimg=0.008", "--snap=1", "--aug=noaug",
                        "--noise=0", *TINY)
    assert code == 0, out
    run = only_run_dir(tmp_path)
    assert run.name.endswith("-fp32-nonoise")
    assert json.loads((run / "training_options.json").read_text())["G_kwargs"]["synthesis_kwargs"]["use_noise"] is False
    snapshot = legacy.load_network_pkl(str(sorted(run.glob("network-snapshot-*.pkl"))[-1]))
    for name in ("G", "G_ema"):
        G = snapshot[name]
        assert not [n for n, _ in list(G.named_buffers()) + list(G.named_parameters()) if "noise" in n]
    G = snapshot["G_ema"]
    ws = G.mapping(torch.randn([2, G.z_dim]), None)
    with torch.no_grad():
        assert torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
        assert torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="const"))


def test_noise_is_on_by_default(tmp_path):
    code, out = run_cli(f"--outdir={tmp_path / 'runs'}", f"--data={FIXTURE_ZIP}", "--dry-run", "--aug=noaug", *TINY)
    options = json.loads(out[out.index("{"):out.rindex("}") + 1])
    assert code == 0 and "use_noise" not in options["G_kwargs"]["synthesis_kwargs"] and "nonoise" not in out
    G = dnnlib.util.construct_class_by_name(**options["G_kwargs"], c_dim=0, img_resolution=32, img_channels=3)
    assert any("noise_strength" in n for n, _ in G.named_parameters())


def test_ema_rampup_overrides_the_cfg_and_sets_the_half_life(tmp_path):
    flags = [f"--outdir={tmp_path / 'runs'}", f"--data={FIXTURE_ZIP}", "--dry-run", "--aug=noaug", "--cfg=cifar"]
    code, out = run_cli(*flags)
    assert code == 0 and '"ema_rampup": 0.05' in out  # the cifar config's own ramp-up
    code, out = run_cli(*flags, "--ema-rampup=0.3")
    assert code == 0 and '"ema_rampup": 0.3' in out

    from stylegan2_ada.training import training_loop as loop
    G, G_ema = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    G.weight.data.fill_(1.0)
    G_ema.weight.data.fill_(0.0)
    session = types.SimpleNamespace(options=dict(ema_kimg=500, ema_rampup=0.3, batch_size=8), cur_nimg=8000,
                                    task=types.SimpleNamespace(ema={"G_ema": "G"}),
                                    networks={"G": G, "G_ema": G_ema})
    loop._update_ema(session)  # half-life min(500k, 0.3 * 8000 = 2400 images): beta = 0.5 ** (8 / 2400)
    assert G_ema.weight.item() == pytest.approx(1 - 0.5 ** (8 / 2400), rel=1e-5)
    bad = CliRunner().invoke(train.main, flags + ["--ema-rampup=0"])
    assert bad.exit_code == 2 and "--ema-rampup" in bad.output


def test_auto_cfg_reproduces_the_studys_numbers():
    spec = train.resolve_cfg("auto", 256, 1)
    assert spec.batch == 16 and spec.mbstd == 4 and spec.fmaps == 0.5 and spec.lrate == 0.0025
    assert spec.gamma == pytest.approx(0.8192) and spec.ema == pytest.approx(5.0)
    assert train.resume_url("ffhq256").endswith("ffhq-res256-mirror-paper256-noaug.pkl")


def test_adam_is_the_fused_kernel_with_the_same_update_and_lazy_scaling():
    """The training loop's Adam runs as one fused kernel where torch has it (2.4+ on the CPU): the
    update must match torch's reference Adam step for step, with lr and betas raised to the lazy ratio."""
    torch.manual_seed(0)
    shapes = [(16, 8, 3, 3), (16,), (8, 512)]
    ours_params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    reference_params = [torch.nn.Parameter(p.detach().clone()) for p in ours_params]
    opt_kwargs = dict(class_name="torch.optim.Adam", lr=0.002, betas=(0, 0.99), eps=1e-8)
    ours = training_loop._make_optimizer(ours_params, opt_kwargs, ratio=16 / 17)
    reference = torch.optim.Adam(reference_params, lr=0.002 * 16 / 17, betas=(0.0, 0.99 ** (16 / 17)), eps=1e-8,
                                 foreach=False)
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert ours.defaults["fused"] is True
    for _ in range(5):
        grads = [torch.randn(s) for s in shapes]
        for params, opt in ((ours_params, ours), (reference_params, reference)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(ours_params, reference_params):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
        assert not torch.equal(a, torch.zeros_like(a))


def test_r1_penalty_is_gamma_half_squared_gradient_norm():
    class LinearD(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(1, 3, 4, 4))

        def forward(self, img, c):
            return (img * self.w).sum([1, 2, 3]).unsqueeze(1)

    D = LinearD()
    loss = loss_module.StyleGAN2Loss(torch.device("cpu"), None, None, D, r1_gamma=10)
    real = torch.randn(2, 3, 4, 4)
    loss.accumulate_gradients("Dreg", real, torch.zeros(2, 0), None, None, sync=True, gain=1)
    # d/dw mean(gamma/2 * |w|^2) = gamma * w: the gradient of D w.r.t. the image is w itself.
    assert torch.allclose(D.w.grad, 10 * D.w.detach(), atol=1e-5)


def test_ada_moves_p_by_the_official_step_towards_the_target(monkeypatch):
    from stylegan2_ada.training import training_loop as loop
    from stylegan2_ada.training.augment import AUGPIPE_SPECS
    from training_helpers import tiny_options

    # D that is always sure the reals are real: r_t = E[sign(D(real))] = 1 > target, so p must rise.
    monkeypatch.setattr(loss_module.StyleGAN2Loss, "run_D",
                        lambda self, img, c, sync=True: self.D(self.augment_pipe(img), c) * 0 + 1)
    opts = tiny_options(augment_kwargs=AUGPIPE_SPECS["bgc"], augment_p=0, ada_target=0.6, ada_interval=2, ada_kimg=1,
                        batch_size=4, batch_gpu=4)
    session = loop.setup(opts, rank=0, num_gpus=1, device=torch.device("cpu"))
    for _ in range(6):
        loop.training_step(session)
    expected = 3 * (4 * 2) / (1 * 1000)  # three adjustments of batch * interval / (ada_kimg * 1000)
    assert float(session.augment_pipe.p) == pytest.approx(expected, rel=1e-5)
    session.task.close(session)
    session.stats.close()


def test_metrics_run_at_each_snapshot(tmp_path, monkeypatch):
    from test_metrics import TinyDetector

    det_dir = tmp_path / "detectors"
    det_dir.mkdir()
    torch.jit.save(torch.jit.script(TinyDetector()), str(det_dir / "inception-2015-12-05.pt"))
    monkeypatch.setenv("MANGANIME_METRIC_NETWORKS", str(det_dir))
    monkeypatch.setenv("MANGANIME_METRIC_COUNTS", "num_gen=16,max_real=10")
    monkeypatch.setenv("MANGANIME_CACHE_DIR", str(tmp_path / "cache"))
    code, out = run_cli(f"--outdir={tmp_path / 'runs'}", f"--data={FIXTURE_ZIP}", "--kimg=0.012", "--snap=1",
                        "--aug=noaug", "--metrics=fid50k_full", *TINY)
    assert code == 0, out
    run = only_run_dir(tmp_path / "runs")
    lines = [json.loads(line) for line in (run / "metric-fid50k_full.jsonl").read_text().splitlines()]
    assert len(lines) >= 1 and lines[-1]["metric"] == "fid50k_full"
    assert np.isfinite(lines[-1]["results"]["fid50k_full"])
    assert lines[-1]["snapshot_pkl"].startswith("network-snapshot-")
