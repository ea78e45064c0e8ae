"""Next-frame prediction end to end at 64 px: predictors, evaluation against the baselines, the
train_cond.py commands (train on the shared loop, eval, rollout, resume) and their bad-input errors."""

import json
import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import dataset_tool_anime
import train_cond
from manganime_ext.analysis.image_quality import mse_255, psnr, ssim
from manganime_ext.conditioning import evaluation
from manganime_ext.conditioning.data import NextFrameDataset, to_model
from manganime_ext.conditioning.paper import paper_latent
from manganime_ext.conditioning.predictor import PredictorError, build_predictor
from manganime_ext.conditioning.task import load_predictor
from manganime_ext.conditioning.warpstyle import warp
from manganime_ext.data.paired_dataset import PairedFrameDataset
from stylegan2_ada import legacy
from stylegan2_ada.training.networks import Discriminator, Generator

TINY_G = dict(c_dim=0, w_dim=32, img_channels=3, mapping_kwargs=dict(num_layers=1),
              synthesis_kwargs=dict(channel_base=256, channel_max=16))
FAST = ["--batch=4", "--workers=0", "--tick=0.008", "--snap=100", "--val-pairs=12", "--rollout-steps=3"]


def invoke(cli, *args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def write_uncond(path: Path, resolution: int = 64, z_dim: int = 512) -> str:
    torch.manual_seed(0)
    G = Generator(z_dim=z_dim, img_resolution=resolution, **TINY_G)
    D = Discriminator(c_dim=0, img_resolution=resolution, img_channels=3, channel_base=256, channel_max=16)
    legacy.save_network_pkl(path, dict(G=G, D=D, G_ema=G))
    return str(path)


@pytest.fixture(scope="module")
def work(tiny_series, tiny_stores, tmp_path_factory):
    """The tiny series' ground-truth config, a paired export (ep001 held out, cuts known) and snapshots."""
    series, _ = tiny_series
    root = tmp_path_factory.mktemp("cond")
    code, out = invoke(dataset_tool_anime.cli, "truth", "--series", series, "--stores", tiny_stores, "--out", root / "truth")
    assert code == 0, out
    code, out = invoke(dataset_tool_anime.cli, "export-conditional", "--series", root / "truth/series.json",
                       "--out", root / "paired.zip", "--val-episodes", "ep001", "--cuts", root / "truth/cuts.json")
    assert code == 0, out
    code, out = invoke(dataset_tool_anime.cli, "export-conditional", "--series", root / "truth/series.json",
                       "--out", root / "no_val.zip")
    assert code == 0, out
    return dict(root=root, series=series, stores=tiny_stores, paired=str(root / "paired.zip"),
                no_val=str(root / "no_val.zip"), uncond=write_uncond(root / "uncond.pkl"))


def test_paper_latent_is_the_studys_pooled_luma(work):
    item = NextFrameDataset(work["paired"], "val")[0]
    frame, page = to_model(item["frames"][-1:], torch.device("cpu")), to_model(item["pages"][1:2][None], torch.device("cpu"))
    z = paper_latent(frame, page)
    rgb = item["frames"][-1].double().numpy() / 255
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    expected_frame = luma.reshape(16, 4, 16, 4).mean(axis=(1, 3)).flatten()
    expected_page = (item["pages"][1, 0].double().numpy() / 255).reshape(16, 4, 16, 4).mean(axis=(1, 3)).flatten()
    assert z.shape == (1, 512)
    np.testing.assert_allclose(z[0, :256].numpy(), 2 * expected_frame - 1, atol=1e-5)
    np.testing.assert_allclose(z[0, 256:].numpy(), 2 * expected_page - 1, atol=1e-5)
    wide = paper_latent(frame, to_model(item["pages"][None], torch.device("cpu")))  # window 3: a side-by-side spread
    assert wide.shape == (1, 512) and not torch.allclose(wide[:, 256:], z[:, 256:])
    with pytest.raises(PredictorError, match="z_dim = 512"):
        build_predictor("paper", dict(z_dim=64, img_resolution=64, **TINY_G))


def test_warp_moves_pixels_and_warpstyle_starts_at_copy_last(work):
    image = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    shifted = warp(image, torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(2, 2, 8, 8))
    assert torch.allclose(shifted[..., :-1], image[..., 1:])  # out(x) = image(x + 1)
    G = legacy.load_network_pkl(work["uncond"])["G_ema"]
    model = build_predictor("warpstyle", G.init_kwargs)
    model.init_from_generator(G)
    item = NextFrameDataset(work["paired"], "val")[5]
    frames = to_model(item["frames"][None], torch.device("cpu"))
    out = model(frames, to_model(item["pages"][None], torch.device("cpu")))
    # Flow 0 and mask sigmoid(4) = 0.982: within 1.8 % of the untrained synthesis' distance from F_n.
    painted = model._synthesise(model._encode(frames, to_model(item["pages"][None], torch.device("cpu"))[:, 1:2]))
    expected = frames[:, -1] + (1 - torch.sigmoid(torch.tensor(4.0))) * (painted - frames[:, -1])
    assert torch.allclose(out, expected, atol=1e-5)
    assert set(model.parameter_groups()) == {"encoder", "synthesis"}
    assert not {id(p) for p in model.trainable("encoder")} & {id(p) for p in model.synthesis.parameters()}


def test_baselines_and_splits_match_a_direct_computation(work):
    dataset = NextFrameDataset(work["paired"], "val")
    raw = PairedFrameDataset(work["paired"], "val")
    report = evaluation.evaluate({}, dataset, torch.device("cpu"), rollout_steps=4)
    current = torch.stack([raw[i][0] for i in range(len(raw))]).double()
    nxt = torch.stack([raw[i][2] for i in range(len(raw))]).double()
    assert report["pairs"] == len(raw) > 20
    assert report["one_step"]["copy_last"]["mse"] == pytest.approx(float(mse_255(current, nxt).mean()), rel=1e-6)
    assert report["one_step"]["copy_last"]["psnr"] == pytest.approx(float(psnr(current, nxt).mean()), rel=1e-6)
    assert report["one_step"]["copy_last"]["ssim"] == pytest.approx(float(ssim(current, nxt).mean()), rel=1e-6)
    within, across = report["one_step_within_shot"]["copy_last"], report["one_step_across_cut"]["copy_last"]
    assert within["pairs"] + across["pairs"] == len(raw) and across["pairs"] >= 1
    assert across["psnr"] < within["psnr"]  # a new shot is far from the old one
    assert report["rollout"]["k"] == [1, 2, 3, 4] and report["rollout"]["starts"] >= 1
    # Copy-last drifts away from the truth as the rollout goes on.
    assert report["rollout"]["copy_last"]["psnr"][0] > report["rollout"]["copy_last"]["psnr"][-1]


def test_ssim_and_psnr_on_known_images():
    a = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 255
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    assert torch.all(psnr(a, a) == 60)
    noisy = (a + 10 * torch.randn_like(a)).clamp(0, 255)
    assert torch.all(ssim(a, noisy) < 0.999) and torch.all(psnr(a, noisy) < 30)
    assert psnr(a, a + 1).tolist() == pytest.approx([10 * np.log10(255**2)] * 2)


def only_run(outdir: Path) -> Path:
    runs = sorted(p for p in outdir.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def trained(work):
    """A warpstyle and a paper run of a few steps each."""
    runs = {}
    for cond in ("warpstyle", "paper"):
        outdir = work["root"] / f"runs-{cond}"
        code, out = invoke(train_cond.cli, f"--data={work['paired']}", f"--network={work['uncond']}", f"--cond={cond}",
                           f"--outdir={outdir}", "--steps=4", *FAST)
        assert code == 0, out
        runs[cond] = only_run(outdir)
    return runs


def test_training_writes_the_run_directory_and_evaluates(trained):
    run = trained["warpstyle"]
    names = set(os.listdir(run))
    assert {"training_options.json", "log.txt", "stats.jsonl", "pairs_init.png", "metric-nextframe.jsonl"} <= names
    # 4 steps of 4 pairs = 0.016 kimg: files are named by whole kimg, like the main trainer's.
    assert "network-snapshot-000000.pkl" in names and "pairs000000.png" in names and "eval000000.json" in names
    options = json.loads((run / "training_options.json").read_text())
    assert options["task_kwargs"]["cond"] == "warpstyle" and options["batch_size"] == 4
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert np.isfinite(stats[-1]["Loss/mse"]["mean"])
    report = json.loads((run / "eval000000.json").read_text())
    assert set(report["one_step"]) == {"warpstyle", "copy_last", "linear_extrapolation"}
    assert report["page_ablation"]["warpstyle"]["wrong_page"]["pairs"] == report["pairs"] == 12
    assert report["rollout"]["k"] == [1, 2, 3]
    with PIL.Image.open(run / "pairs000000.png") as grid:
        assert grid.size[0] > 4 * 64  # F_n | page | predicted | true
    model = load_predictor(str(run / "network-snapshot-000000.pkl"), torch.device("cpu"))
    assert model.cond_name == "warpstyle" and model.context_frames == 2


def test_train_encoder_only_leaves_the_synthesis_untouched(work):
    outdir = work["root"] / "runs-encoder"
    code, out = invoke(train_cond.cli, f"--data={work['paired']}", f"--network={work['uncond']}", "--cond=paper",
                       f"--outdir={outdir}", "--steps=2", "--train=encoder", "--lr=0.1", *FAST)
    assert code == 0, out
    trained = legacy.load_network_pkl(sorted(only_run(outdir).glob("network-snapshot-*.pkl"))[-1])["G"]
    start = legacy.load_network_pkl(work["uncond"])["G_ema"]
    for (name, a), b in zip(trained.G.synthesis.state_dict().items(), start.synthesis.state_dict().values()):
        assert torch.equal(a, b), name
    assert not all(torch.equal(a, b) for a, b in zip(trained.G.mapping.parameters(), start.mapping.parameters()))


def test_resume_continues_the_run(work, trained):
    snapshot = sorted(trained["warpstyle"].glob("network-snapshot-*.pkl"))[-1]
    outdir = work["root"] / "runs-resumed"
    code, out = invoke(train_cond.cli, f"--data={work['paired']}", f"--resume={snapshot}", f"--outdir={outdir}",
                       "--steps=6", *FAST)
    assert code == 0, out
    final = legacy.load_network_pkl(sorted(only_run(outdir).glob("network-snapshot-*.pkl"))[-1])
    assert final["progress"]["cur_nimg"] == 24 and final["G_opt"]["state"]


def test_eval_command_scores_models_and_baselines(work, trained, tmp_path):
    snaps = {c: sorted(r.glob("network-snapshot-*.pkl"))[-1] for c, r in trained.items()}
    code, out = invoke(train_cond.cli, "eval", f"--data={work['paired']}", f"--network=paper={snaps['paper']}",
                       f"--network=ours={snaps['warpstyle']}", f"--out={tmp_path / 'eval'}", "--rollout-steps=3")
    assert code == 0, out
    report = json.loads((tmp_path / "eval/evaluation.json").read_text())
    assert set(report["one_step"]) == {"paper", "ours", "copy_last", "linear_extrapolation"}
    assert "copy_last" in out and (tmp_path / "eval/evaluation.png").stat().st_size > 10000


def test_rollout_from_a_video_and_from_a_single_frame(work, trained, tmp_path):
    snapshot = sorted(trained["warpstyle"].glob("network-snapshot-*.pkl"))[-1]
    video = work["series"] / "episodes/ep001.mp4"
    code, out = invoke(train_cond.cli, "rollout", f"--network={snapshot}", f"--video={video}", "--stride=1",
                       "--start=30", "--frames=10", f"--page-function={work['root'] / 'truth/tags/ep001.json'}",
                       f"--manga={work['series'] / 'manga'}", f"--out={tmp_path / 'r1'}")
    assert code == 0, out
    assert {"rollout.mp4", "side_by_side.mp4", "figure.png"} <= set(os.listdir(tmp_path / "r1"))
    from manganime_ext.io.video import read_video

    meta, frames = read_video(str(tmp_path / "r1/side_by_side.mp4"), 64, transform="squash")
    assert len(list(frames)) == 10
    with PIL.Image.open(tmp_path / "r1/figure.png") as fig:
        assert fig.size[1] > 2 * 64  # ground-truth row over generated row
    first = tmp_path / "first.png"
    PIL.Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(first)
    page = sorted((work["series"] / "manga").iterdir())[0]
    code, out = invoke(train_cond.cli, "rollout", f"--network={snapshot}", f"--first-frame={first}", f"--page={page}",
                       "--frames=4", f"--out={tmp_path / 'r2'}")
    assert code == 0, out
    assert {"rollout.mp4", "figure.png"} <= set(os.listdir(tmp_path / "r2"))


def test_bad_inputs_give_one_line_and_leave_nothing(work, tmp_path):
    small = write_uncond(tmp_path / "uncond32.pkl", resolution=32)
    narrow = write_uncond(tmp_path / "uncond_z64.pkl", z_dim=64)
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(Path(work["uncond"]).read_bytes()[:500])
    cases = [
        ([f"--data={work['uncond']}", f"--network={work['uncond']}"], "--data"),  # not a paired export
        ([f"--data={work['paired']}", f"--network={small}"], "--network"),  # 32 px network, 64 px frames
        ([f"--data={work['paired']}", f"--network={narrow}", "--cond=paper"], "z_dim = 512"),
        ([f"--data={work['no_val']}", f"--network={work['uncond']}"], "val"),  # nothing held out
        ([f"--data={work['paired']}", f"--network={tmp_path / 'missing.pkl'}"], "missing.pkl"),
        ([f"--data={work['paired']}", f"--network={corrupt}"], "corrupt.pkl"),
        ([f"--data={work['paired']}", f"--network={work['uncond']}", "--kimg=1", "--steps=2"], "--steps"),
        ([f"--data={work['paired']}", f"--network={work['uncond']}", "--cond=nope"], "--cond"),
        ([f"--data={work['paired']}"], "--network"),
    ]
    for args, mentions in cases:
        outdir = tmp_path / "runs"
        code, out = invoke(train_cond.cli, *args, f"--outdir={outdir}", "--steps=1", "--workers=0")
        assert code != 0, (args, out)
        assert mentions in out and "Traceback" not in out, (args, out)
        assert not outdir.exists() or not any(outdir.iterdir()), args


def test_rollout_refuses_a_page_outside_the_volume(work, trained, tmp_path):
    snapshot = sorted(trained["warpstyle"].glob("network-snapshot-*.pkl"))[-1]
    tags = json.loads((work["root"] / "truth/tags/ep001.json").read_text())
    tags["first_page"] = 10_000
    bad = tmp_path / "bad_tags.json"
    bad.write_text(json.dumps(tags))
    code, out = invoke(train_cond.cli, "rollout", f"--network={snapshot}", f"--video={work['series'] / 'episodes/ep001.mp4'}",
                       "--stride=1", "--start=30", "--frames=3", f"--page-function={bad}",
                       f"--manga={work['series'] / 'manga'}", f"--out={tmp_path / 'r'}")
    assert code != 0 and "page 10" in out and "Traceback" not in out, out
    assert not (tmp_path / "r").exists()


def test_perceptual_and_adversarial_terms_train(work, tmp_path, monkeypatch):
    from test_metrics import TinyDetector

    detectors = tmp_path / "detectors"
    detectors.mkdir()
    torch.jit.save(torch.jit.script(TinyDetector()), str(detectors / "vgg16.pt"))
    outdir = tmp_path / "runs"
    code, out = invoke(train_cond.cli, f"--data={work['paired']}", f"--network={work['uncond']}", f"--outdir={outdir}",
                       "--steps=2", "--lpips=0.5", "--adv=0.1", f"--detector-dir={detectors}", *FAST)
    assert code == 0, out
    run = only_run(outdir)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert {"Loss/lpips", "Loss/G/adv", "Loss/D/loss", "Loss/D/reg"} <= set(stats[0]) | set(stats[-1])
    final = legacy.load_network_pkl(sorted(run.glob("network-snapshot-*.pkl"))[-1], require=("G", "D"))
    assert final["D_opt"]["state"]  # D was trained (its optimiser moments are stored by name)
    # Without the weights (an empty folder, downloads refused) the run stops before it starts.
    from stylegan2_ada.dnnlib import util
    from stylegan2_ada.metrics import detectors as detector_files

    def offline(url, **kwargs):
        raise util.DownloadError(f"Could not download {url}: network is unreachable")

    monkeypatch.setattr(detector_files, "open_url", offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = invoke(train_cond.cli, f"--data={work['paired']}", f"--network={work['uncond']}",
                       f"--outdir={tmp_path / 'runs2'}", "--steps=1", "--lpips=1", f"--detector-dir={empty}", *FAST)
    assert code != 0 and "vgg16.pt" in out and "Traceback" not in out, out
    assert not (tmp_path / "runs2").exists() or not any((tmp_path / "runs2").iterdir())

