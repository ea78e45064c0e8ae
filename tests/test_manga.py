"""manga: natural sort, start/end/exclude/crop, greyscale squash, folder or CBZ, study config, errors."""

import json
import zipfile

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from manganime_ext.cli.cuts_align import _manga_pages
from manganime_ext.cli.manga import manga as manga_cmd
from manganime_ext.data.series_config import load
from manganime_ext.io import manga
from manganime_ext.io.manga import MangaError, MangaSettings


def run(*args):
    return CliRunner().invoke(manga_cmd, [str(a) for a in args])


def numbered_pages(folder, count=12, size=(40, 60)):
    """Pages ``p1.png .. p{count}.png`` whose colour encodes the number (so order is checkable after squash)."""
    folder.mkdir()
    for k in range(1, count + 1):
        PIL.Image.new("RGB", size, (10 * k, 10 * k, 10 * k)).save(folder / f"p{k}.png")
    return folder


def test_natural_sort():
    names = ["page10.png", "page2.png", "Page1.png", "page100.png", "a/page3.png"]
    assert sorted(names, key=manga.natural_key) == ["a/page3.png", "Page1.png", "page2.png", "page10.png",
                                                    "page100.png"]


def test_select_pages_uses_original_indices():
    assert manga.select_pages(10, MangaSettings(start=2, end=3, exclude=[0, 4, 6])) == [2, 3, 5]
    with pytest.raises(MangaError, match="exclude"):
        manga.select_pages(10, MangaSettings(exclude=[10]))
    with pytest.raises(MangaError, match="leave none"):
        manga.select_pages(4, MangaSettings(start=2, end=2))


def test_process_page_crops_greys_and_squashes():
    rgb = np.zeros((50, 30, 3), np.uint8)
    rgb[10:40, 5:25] = (255, 0, 0)                        # red inside the crop, black margin outside
    page = manga.process_page(PIL.Image.fromarray(rgb), [10, 10, 5, 5], 16)
    assert page.shape == (16, 16) and page.dtype == np.uint8 and abs(int(page.mean()) - 76) <= 1
    with pytest.raises(MangaError, match="crop"):
        manga.process_page(PIL.Image.fromarray(rgb), [25, 25, 0, 0], 16, "x.png")


def test_folder_with_flags(tmp_path):
    src = numbered_pages(tmp_path / "vol")
    (src / "notes.txt").write_text("not a page")
    result = run(src, "--out", tmp_path / "out", "--resolution", 32, "--start", 1, "--end", 2, "--exclude", 3,
                 "--exclude", 5, "--crop", 2, 2, 1, 1)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "out" / "manga.json").read_text())
    assert [p["source"] for p in info["pages"]] == ["p2.png", "p3.png", "p5.png", "p7.png", "p8.png", "p9.png",
                                                    "p10.png"]
    assert info["settings"] == {"start": 1, "end": 2, "exclude": [3, 5], "crop": [2, 2, 1, 1]}
    for k, p in enumerate(info["pages"]):
        img = PIL.Image.open(tmp_path / "out" / f"page{k:04d}.png")
        assert img.mode == "L" and img.size == (32, 32) and p["file"] == f"page{k:04d}.png"
        assert np.asarray(img).mean() == pytest.approx(10 * (p["index"] + 1), abs=1)


def test_cbz_with_study_config_and_flag_override(tmp_path):
    src = numbered_pages(tmp_path / "vol", count=6)
    cbz = tmp_path / "vol.cbz"
    with zipfile.ZipFile(cbz, "w") as z:
        for k in range(1, 7):
            z.write(src / f"p{k}.png", f"vol/p{k}.png")
        z.writestr("ComicInfo.xml", "<ComicInfo/>")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"start": 1, "end": 1, "exclude": [2], "crop": [0, 0, 0, 0]}))
    result = run(cbz, "--out", tmp_path / "out", "--resolution", 8, "--config", config, "--end", 0)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "out" / "manga.json").read_text())
    assert [p["source"] for p in info["pages"]] == ["vol/p2.png", "vol/p4.png", "vol/p5.png", "vol/p6.png"]


def test_synthetic_volume(tiny_series, tmp_path):
    series, truth = tiny_series
    result = run(series / "manga", "--out", tmp_path / "pages", "--resolution", 64, "--crop", 4, 4, 4, 4)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "pages" / "manga.json").read_text())
    assert len(info["pages"]) == truth["pages"]
    page = np.asarray(PIL.Image.open(tmp_path / "pages" / "page0000.png"))
    assert page.shape == (64, 64) and page.min() < 60 and page.max() > 200   # line art: ink and paper


@pytest.mark.parametrize("config, message", [
    ({"start": 1, "margin": 3}, "unknown fields ['margin']"),
    ({"crop": [1, 2, 3]}, "crop must be"),
    ({"exclude": 4}, "exclude must be"),
    ({"start": -1}, "start must be"),
    ({"end": "2"}, "end must be"),
    ({"exclude": [99]}, "exclude: indices [99] are out of range"),
    ({"crop": [30, 30, 0, 0]}, "leaves nothing of a 40x60 page"),
])
def test_bad_configs(tmp_path, config, message):
    src = numbered_pages(tmp_path / "vol", count=3)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = run(src, "--out", tmp_path / "out", "--config", path)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "vol"]   # no output, no temp folder


def test_bad_sources_and_existing_output(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "empty", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "no page images" in result.output
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    assert "no page images" in run(tmp_path / "text", "--out", tmp_path / "out").output
    src = numbered_pages(tmp_path / "vol", count=3)
    (src / "p2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run(src, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "p2.png: not a readable image" in result.output
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    (tmp_path / "bad.cbz").write_bytes(b"not a zip")
    assert "neither a folder nor a readable CBZ" in run(tmp_path / "bad.cbz", "--out", tmp_path / "out").output
    assert "no such folder" in run(tmp_path / "missing", "--out", tmp_path / "out").output
    config = tmp_path / "broken.json"
    config.write_text("{")
    assert "broken.json: cannot read JSON" in run(src, "--out", tmp_path / "out", "--config", config).output
    good = numbered_pages(tmp_path / "good", count=2)
    assert run(good, "--out", tmp_path / "out").exit_code == 0
    result = run(good, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "already exists" in result.output
    assert run(good, "--out", tmp_path / "out", "--force", "--resolution", 8).exit_code == 0
    assert PIL.Image.open(tmp_path / "out" / "page0000.png").size == (8, 8)


def test_one_page_listing_for_every_stage(tmp_path):
    """The manga stage, align --manga and the series config list a folder's pages alike (.gif included)."""
    folder = tmp_path / "vol"
    folder.mkdir()
    for name in ("page10.png", "page2.gif", "Page1.JPG", "page3.webp", ".page0.png"):
        PIL.Image.new("L", (8, 8), 200).save(folder / name, format=PIL.Image.registered_extensions()[
            "." + name.rsplit(".", 1)[1].lower()])
    (folder / "notes.txt").write_text("not a page")
    (folder / "page4.png").mkdir()                                        # a folder, whatever its name
    expected = [str(folder / n) for n in ("Page1.JPG", "page2.gif", "page3.webp", "page10.png")]
    assert manga.list_pages(str(folder)) == expected
    assert [str(folder / n) for n in manga.ScanVolume(str(folder)).names] == expected
    assert _manga_pages(str(folder)) == expected
    config = tmp_path / "series.json"
    config.write_text(json.dumps(dict(volumes=[dict(name="v", pages="vol")], episodes=[dict(
        name="e", video="e.mp4", store="stores/e", volume="v", page_range=[0, 4])])))
    assert load(str(config)).volumes["v"].pages == expected
