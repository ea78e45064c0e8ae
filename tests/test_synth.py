"""The synthetic series: deterministic, cartoon-like frames, manga pages with panels, consistent ground truth."""

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool_anime
from manganime_ext.data import page_function
from manganime_ext.synthetic import anime


def test_layout_and_truth(tiny_series):
    out, truth = tiny_series
    assert sorted(p.name for p in out.iterdir()) == ["episodes", "ground_truth.json", "manga"]
    assert len(list((out / "manga").glob("*.png"))) == truth["pages"]
    first = 0
    for ep in truth["episodes"]:
        assert (out / ep["file"]).stat().st_size > 0
        n = ep["frames"]
        assert n == 96 and ep["intro"] == [0, 24] and ep["outro"] == [84, 96]
        assert 24 in ep["cuts"] and 84 in ep["cuts"] and ep["cuts"] == sorted(ep["cuts"])
        assert ep["page_range"][0] == first
        first = ep["page_range"][1]
        assert all(c % 2 == 0 for c in ep["cuts"])  # shots are whole drawings held on twos
        page_function.from_study_tags(ep["boundaries"], ep["file"], n, ep["page_range"][0],
                                      exclusions=[ep["intro"], ep["outro"]])  # validates
        assert set(b + 1 for b in ep["boundaries"]) <= set(ep["cuts"]) | {n}  # pages end at cuts


def test_frames_deterministic_on_twos_and_cartoon_like():
    a = anime.make_episodes(1, 96, 24, 12, (12, 24), seed=5)[0]
    b = anime.make_episodes(1, 96, 24, 12, (12, 24), seed=5)[0]
    fa, fb = list(anime.episode_frames(a, 48)), list(anime.episode_frames(b, 48))
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert all(np.array_equal(fa[i], fa[i + 1]) for i in range(0, 96, 2))  # each drawing held two frames
    scene = fa[a.starts[a.intro_shots] + 4]
    colours = np.unique(scene.reshape(-1, 3), axis=0)
    dark = (scene.max(-1) < 90).mean()
    assert 0.005 < dark < 0.3, "dark outlines, not a dark picture"
    assert len(colours) < 1500, "flat colours (plus anti-aliasing and a sky gradient), not noise"


def test_cast_recurs_and_keeps_the_shots():
    """With a cast every character is one of its members; the shots themselves (lengths, positions,
    poses, backgrounds) are those of the series without a cast."""
    free = anime.make_episodes(2, 240, 24, 12, (12, 24), seed=5)
    cast = anime.make_episodes(2, 240, 24, 12, (12, 24), seed=5, cast=3)
    looks = set(anime.make_cast(3, 5))
    seen, free_looks = set(), set()
    for a, b in zip(free, cast):
        assert [s.frames for s in a.shots] == [s.frames for s in b.shots]
        for sa, sb in zip(a.shots, b.shots):
            assert sa.sky == sb.sky and [c.x for c in sa.characters] == [c.x for c in sb.characters]
            seen |= {(c.skin, c.shirt, c.pants, c.hair) for c in sb.characters}
            free_looks |= {(c.skin, c.shirt, c.pants, c.hair) for c in sa.characters}
    assert seen <= looks and len(seen) >= 2
    assert len(free_looks) > 3, "without a cast, characters are new in every shot"
    with pytest.raises(anime.SynthError, match="--cast"):
        anime.make_cast(10 ** 6, 0)


def test_pages_are_greyscale_with_panels(tiny_series):
    out, _ = tiny_series
    page = PIL.Image.open(sorted((out / "manga").glob("*.png"))[0])
    assert page.mode == "L" and page.size == (128, int(128 * 1.42))
    px = np.asarray(page)
    assert set(np.unique(px)) <= {0, 255}
    assert (px[:, :4] == 255).all(), "white margin around the panels"
    black_rows = (px[:, 10:-10] == 0).mean(1) > 0.9
    assert black_rows.sum() >= 2, "panel borders"


def test_screentone_and_line_art():
    flat = np.zeros((16, 16, 3), np.uint8) + np.array([120, 150, 140], np.uint8)
    art = anime.line_art(flat)
    assert 0 < (art == 0).mean() < 0.6, "a mid tone becomes a dot pattern"
    assert (anime.line_art(np.full((16, 16, 3), 250, np.uint8)) == 255).all()


def test_cli_synth_and_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "s"
    args = ["synth", "--out", str(out), "--episodes", "1", "--seconds", "2", "--resolution", "32",
            "--intro-seconds", "0.5", "--outro-seconds", "0.5"]
    assert runner.invoke(dataset_tool_anime.cli, args).exit_code == 0
    again = runner.invoke(dataset_tool_anime.cli, args)
    assert again.exit_code == 1 and "already exists" in again.output and "--force" in again.output
    assert runner.invoke(dataset_tool_anime.cli, args + ["--force"]).exit_code == 0
    short = runner.invoke(dataset_tool_anime.cli, ["synth", "--out", str(tmp_path / "t"), "--seconds", "1"])
    assert short.exit_code == 1 and "--seconds" in short.output and "Traceback" not in short.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"], "no partial output"


def test_write_series_rejects_bad_options(tmp_path):
    with pytest.raises(anime.SynthError, match="--seconds"):
        anime.write_series(str(tmp_path / "x"), seconds=2.0)
