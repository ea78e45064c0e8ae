"""--shard I/N on the per-episode stages (frames, cuts, align): shards add up to one whole run, reruns skip,
--force redoes, a bad value is one line naming the flag."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import dataset_tool_anime
from manganime_ext.io.frame_store import FrameStore

SHARDS = ("0/2", "1/2")


def run(*args):
    return CliRunner().invoke(dataset_tool_anime.cli, [str(a) for a in args])


def listing(folder):
    return sorted(os.listdir(folder))


def test_frames_shards_add_up_and_rerun_skips(tiny_series, tiny_stores, tmp_path):
    series, truth = tiny_series
    videos = [series / ep["file"] for ep in truth["episodes"]]
    out = tmp_path / "stores"
    for shard in SHARDS:                                  # tiny_stores is the same command without --shard
        result = run("frames", "--out", out, "--resolution", 64, "--shard", shard, *videos)
        assert result.exit_code == 0, result.output
    assert listing(out) == listing(tiny_stores) == ["ep000", "ep001"]
    for name in listing(out):
        a, b = FrameStore(str(out / name)), FrameStore(str(tiny_stores / name))
        assert len(a) == len(b) and np.array_equal(a.frames, b.frames) and np.array_equal(a.rho, b.rho)
    header = out / "ep001" / "header.json"
    stamp = header.stat().st_mtime_ns
    again = run("frames", "--out", out, "--resolution", 64, "--shard", "1/2", *videos)
    assert again.exit_code == 0 and "ep001: skipped" in again.output and header.stat().st_mtime_ns == stamp
    forced = run("frames", "--out", out, "--resolution", 32, "--shard", "1/2", "--force", *videos)
    assert forced.exit_code == 0 and "skipped" not in forced.output
    assert FrameStore(str(out / "ep001"))[0].shape == (32, 32, 3) and listing(out) == ["ep000", "ep001"]


def test_frames_failed_episode_leaves_the_others(tiny_series, tmp_path):
    series, truth = tiny_series
    broken = tmp_path / "zz.mp4"                          # sorts last: ep000 is written before it fails
    broken.write_bytes(b"not a video")
    out = tmp_path / "stores"
    result = run("frames", "--out", out, "--resolution", 16, "--duration", 0.5, "--shard", "0/1",
                 series / truth["episodes"][0]["file"], broken)
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and last.startswith("Error: ") and "zz.mp4: ffmpeg cannot read" in last
    assert listing(out) == ["ep000"]                      # no half store, no temp folder left


def _run_both(command, out, args):
    for shard in SHARDS:
        result = run(command, "--out", out, "--shard", shard, *args)
        assert result.exit_code == 0, result.output


def test_cuts_shards_add_up_and_rerun_skips(tiny_series, tiny_stores, tmp_path):
    series, _ = tiny_series
    args = ["--stores", tiny_stores, "--truth", series / "ground_truth.json"]
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert run("cuts", "--out", whole, *args).exit_code == 0
    _run_both("cuts", sharded, args)
    assert listing(sharded) == ["ep000.json", "ep001.json", "report-0of2.json", "report-1of2.json"]
    for name in ("ep000.json", "ep001.json"):
        assert (sharded / name).read_text() == (whole / name).read_text()
    report = json.loads((whole / "report.json").read_text())["episodes"]
    for i, name in enumerate(("ep000", "ep001")):
        part = json.loads((sharded / f"report-{i}of2.json").read_text())["episodes"]
        assert part[name] == report[name] and set(part) == {name, "all"}
    episode = sharded / "ep000.json"
    stamp = episode.stat().st_mtime_ns
    again = run("cuts", "--out", sharded, "--shard", "0/2", *args)
    assert again.exit_code == 0 and "ep000: skipped" in again.output and episode.stat().st_mtime_ns == stamp
    assert json.loads((sharded / "report-0of2.json").read_text())["episodes"]["ep000"] == report["ep000"]
    forced = run("cuts", "--out", sharded, "--shard", "0/2", "--force", "--method", "cosine", *args)
    assert forced.exit_code == 0 and json.loads(episode.read_text())["method"] == "cosine"


def test_align_shards_add_up_and_rerun_skips(tiny_series, tiny_stores, tmp_path):
    series, _ = tiny_series
    args = ["--stores", tiny_stores, "--manga", series / "manga", "--truth", series / "ground_truth.json"]
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert run("align", "--out", whole, *args).exit_code == 0
    _run_both("align", sharded, args)
    files = ["ep000.json", "ep000.tags.json", "ep001.json", "ep001.tags.json"]
    assert listing(sharded) == files + ["report-0of2.json", "report-1of2.json"]
    assert all((sharded / name).read_text() == (whole / name).read_text() for name in files)
    parts = [json.loads((sharded / f"report-{i}of2.json").read_text()) for i in range(2)]
    report = json.loads((whole / "report.json").read_text())
    for key in ("hits", "boundaries"):
        assert sum(p[key] for p in parts) == report[key]
    stamp = (sharded / "ep001.json").stat().st_mtime_ns
    again = run("align", "--out", sharded, "--shard", "1/2", *args)
    assert again.exit_code == 0 and "ep001: skipped" in again.output
    assert (sharded / "ep001.json").stat().st_mtime_ns == stamp
    assert json.loads((sharded / "report-1of2.json").read_text()) == parts[1]
    (sharded / "ep001.tags.json").unlink()                # a job killed between the two renames: redone
    redo = run("align", "--out", sharded, "--shard", "1/2", *args)
    assert redo.exit_code == 0 and "skipped" not in redo.output and (sharded / "ep001.tags.json").exists()
    forced = run("align", "--out", sharded, "--shard", "1/2", "--force", *args)
    assert forced.exit_code == 0 and "skipped" not in forced.output


@pytest.mark.parametrize("value", ["2/2", "1/0", "x"])
def test_bad_shard_is_one_line_naming_the_flag(tiny_series, tiny_stores, tmp_path, value):
    series, truth = tiny_series
    out = tmp_path / "out"
    for args in (["frames", series / truth["episodes"][0]["file"]], ["cuts", "--stores", tiny_stores],
                 ["align", "--stores", tiny_stores, "--manga", series / "manga"]):
        result = run(*args, "--out", out, "--shard", value)
        assert result.exit_code == 1 and "--shard" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not out.exists()
