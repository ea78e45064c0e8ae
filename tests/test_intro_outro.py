"""intro / outro: auto (shared sequence) and reference (study) detection against the synthetic truth; files, errors."""

import json

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from manganime_ext.analysis import intro_outro
from manganime_ext.analysis.decode import write_frames
from manganime_ext.analysis.exclusions import merge_ranges
from manganime_ext.cli.intro_outro import intro, outro
from manganime_ext.data import page_function
from manganime_ext.io.frame_store import FrameStore

TOLERANCE = 2   # frames: detected ranges must match the ground truth this closely


def run(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args])


def store_paths(tiny_series, tiny_stores):
    _, truth = tiny_series
    return [tiny_stores / ep["file"].split("/")[-1][:-4] for ep in truth["episodes"]]


def assert_matches_truth(found, truth, part, shift=None):
    for name, ep in zip(sorted(found), truth["episodes"]):
        (start, stop), = found[name]
        true_start, true_stop = np.add(ep[part], (shift or {}).get(name, 0))
        assert abs(start - true_start) <= TOLERANCE and abs(stop - true_stop) <= TOLERANCE, (name, found[name], ep[part])


def test_longest_common_run_finds_offset_and_tolerates_noise():
    rnd = np.random.RandomState(0)
    shared = rnd.uniform(0, 255, (20, 64))
    a = np.concatenate([rnd.uniform(0, 255, (5, 64)), shared, rnd.uniform(0, 255, (9, 64))])
    b = np.concatenate([rnd.uniform(0, 255, (11, 64)), shared + rnd.normal(0, 2, shared.shape), rnd.uniform(0, 255, (3, 64))])
    assert intro_outro.longest_common_run(a.astype(np.float32), b.astype(np.float32), 10.0) == (20, 5, 11)
    assert intro_outro.shared_ranges([a, b, rnd.uniform(0, 255, (30, 64))], 10, 10.0) == [(5, 25), (11, 31), None]


def test_windows_and_merge():
    assert intro_outro.search_window(100, 30, "intro") == (0, 30)
    assert intro_outro.search_window(100, 500, "outro") == (50, 100)     # never more than half the episode
    assert merge_ranges([[80, 96], [0, 24], [20, 30], [30, 31]]) == [(0, 31), (80, 96)]


@pytest.mark.parametrize("part", ["intro", "outro"])
def test_auto_matches_truth(tiny_series, tiny_stores, tmp_path, part):
    _, truth = tiny_series
    out = tmp_path / "exclusions.json"
    result = run(intro if part == "intro" else outro, *store_paths(tiny_series, tiny_stores), "--out", out,
                 "--min-seconds", 0.25)
    assert result.exit_code == 0, result.output
    assert_matches_truth(json.loads(out.read_text()), truth, part)


def test_auto_finds_intro_after_a_cold_open(tiny_series, tiny_stores, tmp_path):
    """Episode 1 gets 30 frames of its own body before the intro: the shared run moves with it."""
    _, truth = tiny_series
    paths = store_paths(tiny_series, tiny_stores)
    ep1 = FrameStore(str(paths[1]))
    write_frames(str(tmp_path / "ep001"), (f for f in np.concatenate([ep1[40:70], ep1[:]])), ep1.header)
    found = intro_outro.detect_auto(intro_outro.open_stores([str(paths[0]), str(tmp_path / "ep001")]),
                                    "intro", 3.0, 0.25)
    assert_matches_truth(found, truth, "intro", shift={"ep001": 30})


@pytest.mark.parametrize("part", ["intro", "outro"])
def test_reference_matches_truth(tiny_series, tiny_stores, tmp_path, part):
    """The study's method, with a frame of episode 0's sequence (upscaled, as a user's screenshot would be)."""
    _, truth = tiny_series
    paths = store_paths(tiny_series, tiny_stores)
    start, stop = truth["episodes"][0][part]
    best = (start + stop) // 2
    PIL.Image.fromarray(FrameStore(str(paths[0]))[best]).resize((256, 256)).save(tmp_path / "ref.png")
    out = tmp_path / "exclusions.json"
    result = run(intro if part == "intro" else outro, *paths, "--out", out, "--method", "reference",
                 "--image", tmp_path / "ref.png", "--left", best - start, "--right", stop - best - 1)
    assert result.exit_code == 0, result.output
    assert_matches_truth(json.loads(out.read_text()), truth, part)


def test_intro_then_outro_merge_into_page_function_exclusions(tiny_series, tiny_stores, tmp_path):
    _, truth = tiny_series
    paths, out = store_paths(tiny_series, tiny_stores), tmp_path / "exclusions.json"
    assert run(intro, *paths, "--out", out, "--min-seconds", 0.25).exit_code == 0
    result = run(outro, *paths, "--out", out, "--min-seconds", 0.25)
    assert result.exit_code == 1 and "already exists" in result.output
    assert run(outro, *paths, "--out", out, "--min-seconds", 0.25, "--merge").exit_code == 0
    exclusions = intro_outro.load_exclusions(str(out))
    for ep, name in zip(truth["episodes"], sorted(exclusions)):
        assert len(exclusions[name]) == 2
        first_page = ep["page_range"][0]
        pf = page_function.from_study_tags(ep["boundaries"], name, ep["frames"], first_page, exclusions[name])
        pages = page_function.pages_of_frames(pf, range(ep["frames"]))
        assert (pages[: ep["intro"][1] - TOLERANCE] == -1).all() and (pages[ep["outro"][0] + TOLERANCE:] == -1).all()
    assert run(outro, *paths, "--out", out, "--min-seconds", 0.25, "--force").exit_code == 0
    assert all(len(r) == 1 for r in json.loads(out.read_text()).values())


def test_errors(tiny_series, tiny_stores, tmp_path):
    paths, out = store_paths(tiny_series, tiny_stores), tmp_path / "x.json"
    result = run(intro, paths[0], "--out", out)
    assert result.exit_code == 1 and "at least 2 episodes" in result.output
    result = run(intro, *paths, "--out", out, "--method", "reference", "--image", tmp_path / "nope.png")
    assert result.exit_code == 2 and "--left, --right" in result.output
    (tmp_path / "bad.png").write_bytes(b"not an image")
    result = run(intro, *paths, "--out", out, "--method", "reference", "--image", tmp_path / "bad.png",
                 "--left", 1, "--right", 1)
    assert result.exit_code == 1 and "bad.png: not a readable image" in result.output
    result = run(intro, *paths, "--out", out, "--min-seconds", 3)
    assert result.exit_code == 1 and "no intro found" in result.output
    result = run(intro, paths[0], tmp_path, "--out", out)
    assert result.exit_code == 1 and "not a readable frame store" in result.output
    assert not out.exists() and "Traceback" not in result.output
    out.write_text("[1, 2]")
    result = run(intro, *paths, "--out", out, "--merge", "--min-seconds", 0.25)
    assert result.exit_code == 1 and "x.json: not an exclusions file" in result.output
