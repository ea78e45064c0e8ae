"""frames: decode the synthetic series into stores; stride, random access, rho at cuts, errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import dataset_tool_anime
from manganime_ext.analysis import decode
from manganime_ext.analysis.similarity import cosine_similarity, frame_vector
from manganime_ext.io import video
from manganime_ext.io.frame_store import FrameStore


def run(*args):
    return CliRunner().invoke(dataset_tool_anime.cli, [str(a) for a in args])


def test_stores_count_and_random_access(tiny_series, tiny_stores):
    series, truth = tiny_series
    for ep in truth["episodes"]:
        store = FrameStore(str(tiny_stores / ep["file"].split("/")[-1][:-4]))
        assert len(store) == ep["frames"] and store[0].shape == (64, 64, 3) and store.rho.shape == (ep["frames"] - 1,)
        _, frames = video.read_video(str(series / ep["file"]), 64)
        sequential = np.stack(list(frames))
        order = np.random.RandomState(0).permutation(len(store))
        assert all(np.array_equal(store[i], sequential[i]) for i in order)


def test_rho_drops_at_true_cuts(tiny_series, tiny_stores):
    _, truth = tiny_series
    for ep in truth["episodes"]:
        store = FrameStore(str(tiny_stores / ep["file"].split("/")[-1][:-4]))
        rho = store.rho
        cut_rho = rho[np.array(ep["cuts"]) - 1]            # pair (c - 1, c) straddles the cut at c
        within = np.delete(rho, np.array(ep["cuts"]) - 1)
        assert cut_rho.max() < np.median(within) and np.median(within) > 0.98
        assert rho[5] == cosine_similarity(frame_vector(store[5]), frame_vector(store[6]))


def test_intro_identical_across_episodes(tiny_series, tiny_stores):
    _, truth = tiny_series
    stop = truth["episodes"][0]["intro"][1]
    a, b = (FrameStore(str(tiny_stores / f"ep00{i}"))[:stop].astype(int) for i in (0, 1))
    assert np.abs(a - b).mean() < 2.0
    body = (FrameStore(str(tiny_stores / "ep000"))[stop:stop + 10].astype(int)
            - FrameStore(str(tiny_stores / "ep001"))[stop:stop + 10].astype(int))
    assert np.abs(body).mean() > 10, "bodies differ"


@pytest.mark.parametrize("transform", ["squash", "center-crop", "letterbox"])
def test_stride_trim_transform(tiny_series, tmp_path, transform):
    series, truth = tiny_series
    mp4 = series / truth["episodes"][0]["file"]
    out = tmp_path / "st"
    result = run("frames", "--out", out, "--stride", 3, "--resolution", 32, "--transform", transform,
                 "--start", 1, "--duration", 2, mp4)
    assert result.exit_code == 0, result.output
    store = FrameStore(str(out / "ep000"))
    assert len(store) == 16 and store[0].shape == (32, 32, 3)  # 48 frames in 2 s, every 3rd
    assert json.loads((out / "ep000" / "header.json").read_text())["stride"] == 3


def test_cli_errors_leave_no_output(tiny_series, tmp_path):
    series, truth = tiny_series
    good = series / truth["episodes"][0]["file"]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.RandomState(0).bytes(5000))
    out = tmp_path / "out"
    for bad, name in [(tmp_path / "missing.mkv", "missing.mkv"), (corrupt, "corrupt.mp4")]:
        result = run("frames", "--out", out, good, bad)
        assert result.exit_code == 1 and name in result.output and "Traceback" not in result.output
        assert "\n" not in result.output.split("Error: ")[1].strip(), "a one-line error (after the progress bar)"
    empty = run("frames", "--out", out, "--start", 100, good)
    assert empty.exit_code == 1 and "no frames" in empty.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.mp4"], "no partial output"
    assert run("frames", "--out", out, good).exit_code == 0
    again = run("frames", "--out", out, good)
    assert again.exit_code == 1 and "already exists" in again.output
    assert run("frames", "--out", out, "--force", good).exit_code == 0
    assert run("frames", "--out", tmp_path / "d", good, good).exit_code == 2


def test_store_rho_of_black_frames(tmp_path):
    frames = [np.zeros((4, 4, 3), np.uint8)] * 2 + [np.full((4, 4, 3), 9, np.uint8)]
    assert decode.write_frames(str(tmp_path / "s"), iter(frames), {}) == 3
    assert list(FrameStore(str(tmp_path / "s")).rho) == [1.0, 0.0]
