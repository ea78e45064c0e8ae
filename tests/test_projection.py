"""manganime_ext.projection and projector_video.py: chains, warm starts, paths, and the three commands end to end."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from manganime_ext.analysis.image_quality import psnr
from manganime_ext.io.video import read_video, write_mp4
from manganime_ext.projection import interpolation
from manganime_ext.projection.errors import ProjectionError
from manganime_ext.projection.frames import kept_shot_starts, span_positions
from manganime_ext.projection.video import VideoProjectionSettings, plan_chains, project_frames
from manganime_ext.synthetic import anime
from projection_helpers import PixelMSE, save_tiny_lpips, tiny_generator
from projector_video import cli
from stylegan2_ada import dnnlib, legacy, projector
from stylegan2_ada.generate import main as generate_main
from stylegan2_ada.metrics import detectors
from stylegan2_ada.training.networks import Discriminator

pytestmark = pytest.mark.filterwarnings("ignore:.*torch\\.jit.*:DeprecationWarning")


# --- pure parts ---------------------------------------------------------------------------------------

def test_chains_follow_shots_and_fill_the_slots():
    starts = [True] + [False] * 11 + [True, False, False, True]  # shots of 12, 3 and 1 frames
    chains = plan_chains(starts, slots=1, cold_cost=100, warm_cost=20)
    assert chains == [list(range(12)), [12, 13, 14], [15]]  # shots, longest first
    chains = plan_chains(starts, slots=4, cold_cost=100, warm_cost=20)
    assert sorted(i for c in chains for i in c) == list(range(16)) and len(chains) == 4
    assert all(c == list(range(c[0], c[-1] + 1)) for c in chains)  # consecutive frames, in order
    assert list(range(6)) in chains and list(range(6, 12)) in chains  # the long shot split; its half starts cold
    assert plan_chains(starts, slots=3, cold_cost=100, warm_cost=100, warm=False) == [[i] for i in range(16)]
    # no split when the extra cold start costs more than it takes off the longest chain (200 -> 140 + 80)
    assert plan_chains([True] + [False] * 5, slots=8, cold_cost=100, warm_cost=20) == [list(range(6))]
    assert plan_chains([True, True], slots=8, cold_cost=2, warm_cost=15) == [[0], [1]]  # single frames stay whole


def test_kept_shot_starts_see_cuts_between_kept_frames():
    assert kept_shot_starts(10, 1, [3, 7]).tolist() == [i in (0, 3, 7) for i in range(10)]
    assert kept_shot_starts(10, 3, [4, 6]).tolist() == [True, False, True, False]  # frames 0 3 6 9: cut 4 -> 6
    assert kept_shot_starts(10, 3, [9, 12]).tolist() == [True, False, False, True]


def test_span_positions_are_the_studys_offsets():
    frames = np.arange(0, 96, 2)  # 4 s at 24 fps, every 2nd frame kept
    assert span_positions(frames, 24.0, 2.0, 1.0, end_frame=96) == (24, 36)  # frames 48 (2 s) and 72 (3 s)
    assert span_positions(frames + 240, 24.0, 0.5, 0.5, end_frame=336) == (6, 42)
    with pytest.raises(ProjectionError, match="too short"):
        span_positions(frames, 24.0, 2.5, 1.5, end_frame=96)


def test_paths():
    keys = np.array([[0.0, 0.0], [2.0, 4.0], [4.0, 0.0]])
    line = interpolation.latent_path(keys[:2], "linear", 4)
    assert np.allclose(line, [[0, 0], [0.5, 1], [1, 2], [1.5, 3], [2, 4]])  # w_0 + t (w_1 - w_0), t in [0, 1]
    assert len(interpolation.latent_path(keys, "linear", 4, loop=True)) == 12  # back to the start, not repeating it

    cubic = interpolation.latent_path(keys, "cubic", 5)
    assert np.allclose(cubic[::5], keys, atol=1e-5)  # through every keyframe
    assert not np.allclose(cubic[1], interpolation.latent_path(keys, "linear", 5)[1])  # and curved between
    closed = interpolation.latent_path(keys, "cubic", 5, loop=True)
    steps = np.diff(np.concatenate([closed, closed[:1]]), axis=0)
    assert np.allclose(steps[-1], steps[0], atol=0.6) and np.allclose(closed[::5], keys, atol=1e-5)  # no kink at the seam

    a, b = np.array([3.0, 0.0, 0.0]), np.array([0.0, 3.0, 0.0])
    arc = interpolation.slerp(a, b, np.linspace(0, 1, 5))
    assert np.allclose(np.linalg.norm(arc, axis=1), 3) and np.allclose(arc[[0, -1]], [a, b], atol=1e-6)
    angles = np.degrees(np.arctan2(arc[:, 1], arc[:, 0]))
    assert np.allclose(np.diff(angles), 22.5)  # constant angular speed
    with pytest.raises(ValueError):
        interpolation.latent_path(keys[:1], "linear", 4)


def test_smoothness_reports_adjacent_steps():
    frames = [np.full((4, 4, 3), v, np.uint8) for v in (0, 10, 40)]
    report = interpolation.smoothness(frames, None, torch.device("cpu"))
    assert report["pixel_mean"] == 20 and report["pixel_max"] == 30 and report["pairs"] == 2
    looped = interpolation.smoothness(frames, PixelMSE(), torch.device("cpu"), loop=True)
    assert looped["pairs"] == 3 and looped["pixel_max"] == 40
    assert looped["distance_max"] == pytest.approx((40 / 255) ** 2) and looped["distance"] == "pixel mse"


# --- warm starts --------------------------------------------------------------------------------------

def test_warm_starts_reach_the_cold_distance_in_fewer_steps():
    """Frames of a slow motion: started from the previous frame's projection, a frame reaches the distance a
    cold start ends with (60 steps) in a fraction of the steps; project_frames runs the chain that way."""
    G = tiny_generator(seed=1)
    with torch.no_grad():
        start, end = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(2)), None)[:, :1]
        path = torch.from_numpy(interpolation.latent_path(torch.cat([start, end]).numpy(), "linear", 10)[:6])
        frames = projector.to_uint8(projector.synthesize(G, path[:, None].expand(-1, G.num_ws, -1)))
    cpu = torch.device("cpu")
    cold = project_frames(G, frames, [True] * 6, PixelMSE(), VideoProjectionSettings(steps=60, batch=6, warm=False),
                          cpu, progress=False)
    schedule = VideoProjectionSettings().warm_schedule()
    schedule.num_steps = 30
    engine = projector.Projector(G, PixelMSE(), slots=5, optimize_noise=False, w_avg_samples=1000)
    targets = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    for slot in range(5):
        engine.start(slot, targets[slot + 1], schedule, latent=torch.from_numpy(cold.ws[slot][:1]), seed=slot)
    traces = [[] for _ in range(5)]
    while engine.busy():
        for slot, value in engine.step().items():
            traces[slot].append(value)
    to_reach = [next((k + 1 for k, v in enumerate(trace) if v <= cold.trace[slot + 1][-1]), None)
                for slot, trace in enumerate(traces)]
    cold_to_reach = [next(k + 1 for k, v in enumerate(cold.trace[i]) if v <= cold.trace[i][-1]) for i in range(1, 6)]
    assert min(cold_to_reach) > 50 and sum(n is not None for n in to_reach) >= 4, (to_reach, cold_to_reach)
    assert np.median([n or 30 for n in to_reach]) <= 15, to_reach

    chain = project_frames(G, frames, [True] + [False] * 5, PixelMSE(),
                           VideoProjectionSettings(steps=60, warm_steps=15, batch=6), cpu, progress=False)
    assert chain.cold.tolist() == [True] + [False] * 5 and chain.steps.tolist() == [60] + [15] * 5
    assert np.allclose(chain.ws[0], cold.ws[0], atol=1e-5)  # the chain's head is the same cold projection


# --- the commands ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A 32 px synthetic episode (4 s, short shots), a tiny 32 px snapshot and a vgg16.pt stand-in."""
    root = tmp_path_factory.mktemp("projection")
    truth = anime.write_series(str(root / "series"), episodes=1, seconds=4.0, resolution=32, fps=24, seed=5,
                               intro_seconds=0.5, outro_seconds=0.5, shot_seconds=(0.75, 1.25))
    G = tiny_generator(img_resolution=32, synthesis_kwargs={"channel_base": 128, "channel_max": 16})
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=128, channel_max=16)
    legacy.save_network_pkl(root / "net.pkl", dict(G=G, D=D, G_ema=G, augment_pipe=None))
    (root / "det").mkdir()
    return dnnlib.EasyDict(root=root, video=str(root / "series" / truth["episodes"][0]["file"]),
                           cuts=truth["episodes"][0]["cuts"], network=str(root / "net.pkl"),
                           detector_dir=save_tiny_lpips(root / "det"))


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture(scope="module")
def projected(work):
    out = work.root / "proj"
    result = invoke("project", "--network", work.network, "--video", work.video, "--out", out, "--every", 2,
                    "--steps", 12, "--warm-steps", 4, "--batch", 4, "--tune", 12, "--detector-dir", work.detector_dir)
    assert result.exit_code == 0, result.output
    return out


def decode(path, side):
    meta, frames = read_video(str(path), side)
    return meta, np.stack(list(frames))


def test_project_writes_latents_videos_metrics_and_a_tuned_network(work, projected):
    assert sorted(p.name for p in projected.iterdir()) == ["metrics.json", "metrics.png", "projected.mp4",
                                                            "side_by_side.mp4", "tuned.pkl", "ws.npz"]
    with np.load(projected / "ws.npz") as data:
        ws, frames, shot_starts = data["w"], data["frames"], data["shot_starts"]
        assert float(data["fps"]) == 24 and int(data["end_frame"]) == 96 and str(data["transform"]) == "squash"
    assert ws.shape == (48, 8, 16) and frames.tolist() == list(range(0, 96, 2))
    true_starts = {int(np.searchsorted(frames, cut)) for cut in work.cuts}  # first kept frame of each true shot
    assert {0} | true_starts == set(np.flatnonzero(shot_starts))  # our cut detector found every cut, nothing else
    report = json.loads((projected / "metrics.json").read_text())
    assert report["distance"] == "lpips (vgg16.pt)" and report["space"] == "w"
    assert report["cold"] == shot_starts.tolist() or sum(report["cold"]) >= sum(shot_starts)  # cuts (and splits)
    assert all(s == (12 if c else 4) for s, c in zip(report["steps"], report["cold"]))

    # the reported PSNR is that of G(ws) with the network's own noise against the decoded frames
    G = legacy.load_network_pkl(work.network)["G_ema"]
    _, truth = read_video(work.video, 32)
    truth = np.stack(list(truth))[::2]
    with torch.no_grad():
        mine = projector.to_uint8(projector.synthesize(G, torch.from_numpy(ws)))
    chw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float()
    assert np.allclose(psnr(chw(mine), chw(truth)).numpy(), report["psnr"], atol=1e-6)

    tuned = legacy.load_network_pkl(projected / "tuned.pkl")["G_ema"]
    with torch.no_grad():
        retuned = projector.to_uint8(projector.synthesize(tuned, torch.from_numpy(ws)))
    assert np.allclose(psnr(chw(retuned), chw(truth)).numpy(), report["tuned"]["psnr"], atol=1e-6)
    assert report["tuned"]["mean_psnr"] > report["mean_psnr"] + 0.5  # tuning moved G towards the clip

    meta, side = decode(projected / "side_by_side.mp4", 32)
    assert meta["source_size"] == [96, 32] and len(side) == 48  # truth | projection | after tuning
    _, video = decode(projected / "projected.mp4", 32)
    assert np.abs(video.astype(float) - retuned).mean() < 4  # the tuned frames, through H.264
    made = CliRunner().invoke(generate_main, ["--network", str(projected / "tuned.pkl"), "--projected-w",
                                              str(projected / "ws.npz"), "--outdir", str(work.root / "gen")])
    assert made.exit_code == 0 and np.array_equal(np.asarray(PIL.Image.open(work.root / "gen" / "proj05.png")), retuned[5])


def test_interpolate_between_the_studys_frames_and_between_seeds(work, projected):
    out = work.root / "walk"
    result = invoke("interpolate", "--network", work.network, "--projection", projected, "--out", out,
                    "--frames-per-transition", 6, "--detector-dir", work.detector_dir)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "smoothness.json").read_text())
    assert report["keyframes"] == [48, 72] and report["frames"] == 7  # 2 s in, 1 s before the end
    assert report["smoothness"]["distance"] == "lpips (vgg16.pt)" and report["smoothness"]["pairs"] == 6
    _, frames = decode(out / "interpolation.mp4", 32)
    with np.load(projected / "ws.npz") as data:
        ends = data["w"][[24, 36]]
    G = legacy.load_network_pkl(work.network)["G_ema"]
    with torch.no_grad():
        expected = projector.to_uint8(projector.synthesize(G, torch.from_numpy(ends)))
    error = np.abs(frames[[0, -1]].astype(float) - expected).mean(axis=(1, 2, 3))  # H.264 on noisy 32 px images
    apart = np.abs(expected[0].astype(float) - expected[1]).mean()
    assert len(frames) == 7 and error.max() < 8 and error.max() < apart / 2, (error, apart)

    grid = work.root / "grid"
    result = invoke("interpolate", "--network", work.network, "--seeds", "0-7", "--grid", "2x2", "--kind", "cubic",
                    "--loop", "--frames-per-transition", 3, "--out", grid, "--distance", "msssim")
    assert result.exit_code == 0, result.output
    report = json.loads((grid / "smoothness.json").read_text())
    assert len(report["smoothness"]) == 4 and report["frames"] == 6  # 2 keyframes per walk, looped
    meta, frames = decode(grid / "interpolation.mp4", 66)
    assert meta["source_size"] == [66, 66] and len(frames) == 6  # 2x2 cells of 32 px, 2 px apart
    slerp = invoke("interpolate", "--network", work.network, "--seeds", "3,9", "--kind", "slerp",
                   "--frames-per-transition", 4, "--out", work.root / "slerp", "--distance", "msssim")
    assert slerp.exit_code == 0, slerp.output


def test_figure_has_three_rows_of_eight(work, projected):
    out = work.root / "figure.png"
    result = invoke("figure", "--network", work.network, "--projection", projected, "--out", out, "--no-labels")
    assert result.exit_code == 0, result.output
    image = np.asarray(PIL.Image.open(out))
    assert image.shape == (3 * 32 + 2 * 2, 8 * 32 + 7 * 2, 3)
    G = legacy.load_network_pkl(work.network)["G_ema"]
    with np.load(projected / "ws.npz") as data:
        ws = data["w"]
    with torch.no_grad():
        first, last = projector.to_uint8(projector.synthesize(G, torch.from_numpy(ws[[24, 36]])))
    assert np.array_equal(image[34:66, :32], first) and np.array_equal(image[68:100, -32:], last)  # w(0), w(1)
    assert np.array_equal(image[68:100, :32], first)  # the interpolation starts on the first projection
    _, truth = read_video(work.video, 32)
    truth = np.stack(list(truth))
    assert np.array_equal(image[:32, :32], truth[48]) and np.array_equal(image[:32, -32:], truth[72])
    labelled = invoke("figure", "--network", work.network, "--projection", projected, "--out", out, "--force")
    assert labelled.exit_code == 0 and np.asarray(PIL.Image.open(out)).shape[1] > image.shape[1]


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error"), result.output
    for fragment in fragments:
        assert fragment in lines[-1], result.output


def test_bad_inputs_give_one_line_and_leave_nothing(work, projected, tmp_path, monkeypatch):
    short = tmp_path / "short.mp4"
    write_mp4(str(short), [np.full((32, 32, 3), 5 * i, np.uint8) for i in range(48)], 24)  # 2 s
    wide = tmp_path / "wide.mp4"
    write_mp4(str(wide), [np.full((24, 48, 3), 8 * i, np.uint8) for i in range(24)], 24)
    corrupt_net = tmp_path / "net.pkl"
    corrupt_net.write_bytes(open(work.network, "rb").read()[:400])
    corrupt_video = tmp_path / "broken.mp4"
    corrupt_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    project = ["project", "--network", work.network, "--steps", 2, "--every", 4, "--distance", "msssim"]

    offline_out = tmp_path / "offline"
    monkeypatch.setattr(detectors, "open_url", lambda url, **kw: (_ for _ in ()).throw(
        dnnlib.util.DownloadError(f"Could not download {url}: network is unreachable")))
    monkeypatch.delenv(detectors.DETECTOR_DIR_ENV, raising=False)
    assert_one_line_error(invoke(*project[:-2], "--video", short, "--out", offline_out), "vgg16.pt",
                          "--distance msssim")
    assert_one_line_error(invoke(*project, "--video", corrupt_video, "--out", tmp_path / "a"), "broken.mp4")
    assert_one_line_error(invoke("project", "--network", corrupt_net, "--video", short, "--out", tmp_path / "b",
                                 "--distance", "msssim"), "--network", "net.pkl")
    assert_one_line_error(invoke(*project, "--video", short, "--out", tmp_path / "c", "--start", 3), "no frames")
    assert_one_line_error(invoke(*project, "--video", short, "--out", tmp_path / "c", "--start", 1, "--end", 0.5),
                          "--end")
    assert_one_line_error(invoke(*project, "--video", short, "--out", tmp_path / "c", "--every", 0), "--every")
    assert_one_line_error(invoke(*project, "--video", short, "--out", tmp_path / "c", "--space", "z"), "--space")
    assert_one_line_error(invoke(*project, "--video", short, "--out", projected), "already exists")

    # a clip shorter than the study's offsets (2 s + 1 s) cannot be interpolated or drawn
    ok = invoke(*project, "--video", short, "--out", tmp_path / "short_proj")
    assert ok.exit_code == 0, ok.output
    assert_one_line_error(invoke("interpolate", "--network", work.network, "--projection", tmp_path / "short_proj",
                                 "--out", tmp_path / "d", "--distance", "msssim"), "too short", "--start-offset")
    assert_one_line_error(invoke("figure", "--network", work.network, "--projection", tmp_path / "short_proj",
                                 "--out", tmp_path / "e.png"), "too short")
    assert_one_line_error(invoke("interpolate", "--network", work.network, "--projection", projected, "--kind",
                                 "slerp", "--out", tmp_path / "d", "--distance", "msssim"), "--seeds")
    assert_one_line_error(invoke("interpolate", "--network", work.network, "--seeds", "1,2,3", "--grid", "2x1",
                                 "--out", tmp_path / "d", "--distance", "msssim"), "--seeds")
    assert_one_line_error(invoke("interpolate", "--network", work.network, "--seeds", "1,2", "--grid", "0x1",
                                 "--out", tmp_path / "d"), "--grid")
    assert_one_line_error(invoke("interpolate", "--network", work.network, "--projection", projected,
                                 "--keyframes", "48,49", "--out", tmp_path / "d", "--distance", "msssim"), "49")
    assert_one_line_error(invoke("figure", "--network", work.network, "--projection", tmp_path,
                                 "--out", tmp_path / "e.png"), "ws.npz")
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["broken.mp4", "net.pkl", "short.mp4", "short_proj", "wide.mp4"], leftovers

    # a video of another size is resized, and the run says so
    resized = invoke(*project, "--video", wide, "--out", tmp_path / "wide_proj")
    assert resized.exit_code == 0 and "48x24" in resized.output and "resized" in resized.output
