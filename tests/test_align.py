"""align: panel splitting, the monotonic DP, and proposals on the tiny synthetic series through the CLI."""

import json

import numpy as np
from click.testing import CliRunner

from manganime_ext.analysis import align
from manganime_ext.data import page_function
from manganime_ext.cli.cuts_align import align_cmd


def run(*args):
    return CliRunner().invoke(align_cmd, [str(a) for a in args])


def test_split_panels_by_gutters():
    page = np.full((142, 100), 255, np.uint8)
    for y0, y1, x0, x1 in [(6, 66, 6, 94), (72, 136, 6, 48), (72, 136, 52, 94)]:
        page[y0:y1, x0:x1] = 90
    assert align.split_panels(page) == [(6, 66, 6, 94), (72, 136, 6, 48), (72, 136, 52, 94)]
    assert align.split_panels(np.full((20, 20), 255, np.uint8)) == [(0, 20, 0, 20)]


def test_monotonic_assignment_prefers_order_and_covers_every_page():
    scores = np.array([[5, 0, 0], [0, 0, 9], [0, 5, 0], [0, 0, 5], [0, 0, 5]], float)
    assert list(align.monotonic_assignment(scores)) == [0, 1, 1, 2, 2]   # no jumping ahead to the 9
    assert list(align.monotonic_assignment(np.zeros((3, 3)))) == [0, 1, 2]


def test_truth_in_store_frames_stride():
    ep = {"boundaries": [39, 53, 83], "intro": [0, 24], "outro": [84, 96]}
    assert align.truth_in_store_frames(ep, 48, stride=2) == ([19, 26, 41], [(0, 12), (42, 48)])


def test_tiny_series_proposal(tiny_series, tiny_stores, tmp_path):
    series, truth = tiny_series
    out = tmp_path / "pf"
    result = run("--stores", tiny_stores, "--manga", series / "manga", "--out", out, "--truth", series / "ground_truth.json")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["share"] >= 0.8, result.output
    ep = truth["episodes"][1]
    pf = page_function.load(str(out / "ep001.json"))
    assert pf.page_range == tuple(ep["page_range"]) and set(pf.provenance) == {"proposed"}
    assert pf.exclusions == [tuple(ep["intro"]), tuple(ep["outro"])]
    assert json.loads((out / "ep001.tags.json").read_text()) == pf.boundaries


def test_explicit_pages_and_errors(tiny_series, tiny_stores, tmp_path):
    series, truth = tiny_series
    store = tiny_stores / "ep000"
    a, b = truth["episodes"][0]["page_range"]
    ok = run("--stores", store, "--manga", series / "manga", "--out", tmp_path / "one", "--pages", f"ep000={a}:{b}",
             "--exclude", "ep000=0:24")
    assert ok.exit_code == 0, ok.output
    assert page_function.load(str(tmp_path / "one" / "ep000.json")).exclusions == [(0, 24)]
    cases = [(["--stores", store, "--manga", series / "manga"], "--pages: no page range for episode ep000"),
             (["--stores", store, "--manga", series / "manga", "--pages", "ep000=0:999"], "has"),
             (["--stores", store, "--manga", series / "manga", "--pages", "ep000=5:2"], "--pages ep000=5:2"),
             (["--stores", store, "--manga", tmp_path, "--pages", "ep000=0:2"], "no page images"),
             (["--stores", store, "--manga", series / "manga", "--pages", f"ep000={a}:{b}", "--exclude", "ep000=0:96"],
              "supported frames cannot cover")]
    for args, words in cases:
        result = run(*args, "--out", tmp_path / "new")
        assert result.exit_code == 1 and words in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "new").exists()
    again = run("--stores", store, "--manga", series / "manga", "--out", tmp_path / "one", "--pages", f"ep000={a}:{b}")
    assert again.exit_code == 1 and "already exists" in again.output
