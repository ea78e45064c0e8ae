"""cuts: the adaptive and fixed-cutoff detectors on rho, the verification on frames (real photographs), the
synthetic series and a photo clip; the CLI."""

import importlib.util
import json
import os

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from manganime_ext.analysis import cuts
from manganime_ext.synthetic import photo_clip
from manganime_ext.cli.cuts_align import cuts_cmd
from manganime_ext.analysis.decode import write_frames
from manganime_ext.io.frame_store import FrameStore

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


def run(*args):
    return CliRunner().invoke(cuts_cmd, [str(a) for a in args])


def test_adaptive_ignores_twos_and_pan_onset():
    # On twos: d alternates 0 / motion. A still stretch, then a pan starts at 40, a cut at 70.
    d = np.zeros(100)
    d[1:40:2] = 0.004
    d[41:100:2] = 0.06                        # the pan: a sustained rise to 15x the still level
    d[69] = 0.15                              # pair (69, 70): a new shot starts at 70
    rho = 1.0 - d
    assert cuts.adaptive_cuts(rho) == [70]
    assert cuts.cosine_cuts(rho, 0.9) == [70] and cuts.cosine_cuts(rho, 0.95) == list(range(42, 101, 2))


def test_adaptive_cut_into_fast_motion_and_pose_change():
    # A still shot on twos, then a cut at 40 into a fast, uneven pan: the cut stands 10x above the still
    # side but only ~1.25x above the pan, which the rule for both sides alone (busy >= RATIO) misses.
    d = np.zeros(100)
    d[1:40:2] = 0.006
    d[41:100:2] = np.random.RandomState(0).uniform(0.025, 0.06, 30)
    d[39] = 0.07
    assert cuts.adaptive_cuts(1.0 - d) == [40]
    assert cuts.adaptive_cuts(1.0 - d, quiet_ratio=np.inf) == []
    onset = d.copy()
    onset[39] = d[41]                          # the same pan starting within one shot: no spike, no cut
    assert cuts.adaptive_cuts(1.0 - onset) == []
    pose = np.zeros(60)
    pose[30] = 0.012                           # a character switches pose in a still shot
    assert cuts.adaptive_cuts(1.0 - pose) == [] and cuts.adaptive_cuts(1.0 - pose, min_drop=0.01) == [31]


def test_match_and_stride():
    r = cuts.match([10, 21, 40], [11, 20, 30], tolerance=1)
    assert (r["true_positives"], r["precision"], r["recall"]) == (2, 2 / 3, 2 / 3)
    assert cuts.match_all([([5], [5]), ([], [9])])["recall"] == 0.5
    assert cuts.truth_in_store_frames([24, 45, 60], stride=2) == [12, 23, 30]
    assert cuts.truth_in_store_frames([24, 45], stride=2, start_frame=24) == [11]


def test_tiny_series_cli_report(tiny_series, tiny_stores, tmp_path):
    series, truth = tiny_series
    scores = {}
    for method, extra in [("adaptive", []), ("rho-only", ["--rho-only"]), ("cosine", ["--method", "cosine"])]:
        out = tmp_path / method
        result = run("--stores", tiny_stores, "--out", out, "--truth", series / "ground_truth.json", *extra)
        assert result.exit_code == 0, result.output
        report = json.loads((out / "report.json").read_text())["episodes"]
        scores[method] = report["all"]
        ep = json.loads((out / "ep000.json").read_text())
        assert ep["episode"] == "ep000" and ep["frames"] == truth["episodes"][0]["frames"]
    for method in ("adaptive", "rho-only"):
        assert scores[method]["recall"] >= 0.9 and scores[method]["precision"] >= 0.9
        assert scores[method]["f1"] > scores["cosine"]["f1"]
    params = json.loads((tmp_path / "adaptive" / "ep000.json").read_text())["params"]
    assert params["verified"] and "verified" not in json.loads((tmp_path / "rho-only" / "ep000.json").read_text())["params"]


def _photos(source: str):
    """Five 'photographs': real ones shipped in scikit-image's wheel, or 1/f noise with photo-like spectra."""
    if source == "photos":
        spec = importlib.util.find_spec("skimage")
        if spec is None:
            pytest.skip("scikit-image (its bundled photos) is not installed; see requirements-dev.txt")
        folder = os.path.join(os.path.dirname(spec.origin), "data")
        return [np.asarray(PIL.Image.open(os.path.join(folder, n)).convert("RGB")) for n in PHOTOS]
    rnd = np.random.RandomState(0)
    fy, fx = np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(384), indexing="ij")
    amp = 1.0 / np.maximum(np.hypot(fy, fx), 1 / 384)
    out = []
    for _ in PHOTOS:
        img = np.stack([np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rnd.rand(256, 384)))) for _ in range(3)], -1)
        out.append(np.uint8(255 * (img - img.min()) / np.ptp(img)))
    return out


@pytest.mark.parametrize("source", ["photos", "noise"])
def test_photo_clip_pans_zooms_and_hard_cuts(source, tmp_path):
    shot = 30
    write_frames(str(tmp_path / "clip"), photo_clip.clip_frames(_photos(source), shot, 64), {"source": source})
    rho = FrameStore(str(tmp_path / "clip")).rho
    truth = photo_clip.true_cuts(len(PHOTOS), shot)
    adaptive, fixed = cuts.detect(rho, "adaptive"), cuts.detect(rho, "cosine", cutoff=0.8)
    assert cuts.match(adaptive, truth)["recall"] == 1.0
    false_adaptive = len(adaptive) - cuts.match(adaptive, truth)["true_positives"]
    false_fixed = len(fixed) - cuts.match(fixed, truth)["true_positives"]
    assert false_adaptive <= false_fixed


def test_errors_one_line_no_partial_output(tiny_series, tiny_stores, tmp_path):
    out = tmp_path / "c"
    assert run("--stores", tiny_stores, "--out", out).exit_code == 0
    again = run("--stores", tiny_stores, "--out", out)
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    assert run("--stores", tiny_stores, "--out", out, "--force").exit_code == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args, words in [(["--stores", tmp_path / "nope"], "--stores"), (["--stores", tiny_stores, "--truth", bad], "bad.json"),
                        (["--stores", tmp_path / "c"], "no frame stores")]:
        result = run(*args, "--out", tmp_path / "new")
        assert result.exit_code == 1 and words in result.output and len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "new").exists()


def test_episode_ends_are_not_quiet_sides():
    # The last pair of a fast pan is a little above the pan's level: with no pairs after it, "nothing
    # there" used to count as a quiet side (quiet ratio infinite), and it fired.
    d = np.random.RandomState(1).uniform(0.025, 0.04, 60)
    d[-1] = 0.045
    assert cuts.adaptive_cuts(1.0 - d) == []
    d[-1] = 0.09                               # a real cut into the last frame still stands out
    assert cuts.adaptive_cuts(1.0 - d) == [60]


def test_verification_matches_camera_motion_away_but_not_a_cut():
    # Real photographs (scikit-image's): a pan over one is matched at some shift; another photo is not.
    a, b = _photos("photos")[:2]
    big = np.asarray(PIL.Image.fromarray(a).resize((384, 256)))
    view = lambda x: np.ascontiguousarray(big[40:232, x:x + 192])
    still, pan = view(100), [view(x) for x in range(112, 173, 12)]  # then 12 px (a sixteenth of the frame) per pair
    other = np.asarray(PIL.Image.fromarray(b).resize((192, 192)))
    thumbs = [cuts.thumbnail(f) for f in (still, pan[0], pan[-1], other)]
    assert cuts.compensated_change(thumbs[0], thumbs[1]) < 0.05 < cuts.compensated_change(thumbs[0], thumbs[1], shift=0)
    assert cuts.compensated_change(thumbs[2], thumbs[3]) > 0.5
    assert cuts.compensated_change(np.zeros((32, 32, 3)), thumbs[0]) == 1.0   # a black frame: rho decides
    # The same rho spike where the pan starts and where the other photo's shot starts: only the cut is confirmed.
    frames = [still] * 20 + pan + [other] * 20
    onset, cut = 20, 20 + len(pan)
    d = np.full(len(frames) - 1, 0.002)
    d[[onset - 1, cut - 1]] = 0.06
    assert cuts.adaptive_cuts(1.0 - d) == [onset, cut]
    assert cuts.verified_cuts(1.0 - d, frames) == [cut]
    assert cuts.detect(1.0 - d, frames=frames) == [cut] and cuts.detect(1.0 - d) == [onset, cut]
