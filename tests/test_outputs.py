"""All-or-nothing outputs keep the user's umask: final folders and files get the permissions any new one would."""

import contextlib
import os
import stat

import pytest
from click.testing import CliRunner

import dataset_tool_anime
from manganime_ext.io.outputs import atomic_file, atomic_output_dir


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(root) -> dict:
    """{path relative to root's parent: permission bits} for root and everything under it."""
    out = {root.name: stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root.parent))] = stat.S_IMODE(path.stat().st_mode)
    return out


def wrong_modes(root, mask: int) -> dict:
    want_dir, want_file = 0o777 & ~mask, 0o666 & ~mask
    return {p: oct(m) for p, m in modes(root).items()
            if m != (want_dir if (root.parent / p).is_dir() else want_file)}


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_outputs_honour_the_umask(tmp_path, mask):
    with umask(mask):
        with atomic_output_dir(str(tmp_path / "out")) as tmp:
            with open(os.path.join(tmp, "plain.txt"), "w") as f:
                f.write("x")
        with atomic_file(str(tmp_path / "out" / "atomic.bin")) as f:
            f.write(b"x")
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~mask
    assert wrong_modes(tmp_path / "out", mask) == {}
    assert sorted(os.listdir(tmp_path)) == ["out"]                          # no temp folder or file left
    assert sorted(os.listdir(tmp_path / "out")) == ["atomic.bin", "plain.txt"]


def run(*args):
    result = CliRunner().invoke(dataset_tool_anime.cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_stage_folders_honour_the_umask(tiny_series, tiny_stores, tmp_path, mask):
    """frames, cuts, align and manga: whole folders and, with --shard, folders shared by the jobs."""
    series, truth = tiny_series
    video = series / truth["episodes"][0]["file"]
    truth_file = series / "ground_truth.json"
    with umask(mask):
        run("frames", "--out", tmp_path / "stores", "--resolution", 16, "--duration", 0.5, video)
        run("frames", "--out", tmp_path / "sharded", "--resolution", 16, "--duration", 0.5, "--shard", "0/1", video)
        run("cuts", "--stores", tiny_stores, "--out", tmp_path / "cuts", "--truth", truth_file)
        run("cuts", "--stores", tiny_stores, "--out", tmp_path / "cuts-sharded", "--shard", "1/2")
        run("align", "--stores", tiny_stores, "--manga", series / "manga", "--out", tmp_path / "align",
            "--truth", truth_file)
        run("manga", series / "manga", "--out", tmp_path / "pages", "--resolution", 16)
    for name in ("stores", "sharded", "cuts", "cuts-sharded", "align", "pages"):
        assert wrong_modes(tmp_path / name, mask) == {}, name
    assert stat.S_IMODE((tmp_path / "stores").stat().st_mode) == 0o777 & ~mask
