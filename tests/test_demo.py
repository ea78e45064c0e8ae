"""``make demo``'s pipeline at tiny sizes: every stage runs through the real commands, the report shows each
stage, reruns resume, failures name the stage, and index.html loads every picture and video in Chromium."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from manganime_ext.demo.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


def demo(out, *flags):
    return subprocess.run([sys.executable, "-m", "manganime_ext.cli.demo", "--out", str(out), "--quick", *flags],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    done = demo(out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_every_stage_runs_and_the_report_shows_it(demo_out):
    for stage in STAGES:
        record = json.loads((demo_out / "stages" / f"{stage.name}.json").read_text())
        assert record["seconds"] > 0 and record["commands"], stage.name
        assert all(c.startswith("python -m ") for c in record["commands"])
    page = (demo_out / "index.html").read_text()
    for stage in STAGES:
        assert f"id='{stage.name}'" in page and "Not run yet" not in page
    assert "kimg trained" in page and "numbers unavailable" not in page  # read back from the training log
    (train,) = json.loads((demo_out / "stages/stylegan2.json").read_text())["commands"]
    assert "--noise=0" in train.split()  # DemoSettings.gan_noise: every later stage ran on a noise-free G
    for path in ["stylegan2/network.pkl", "warpstyle/network.pkl", "paper/network.pkl", "evaluation/evaluation.json",
                 "rollout/rollout.mp4", "rollout/side_by_side.mp4", "rollout/figure.png", "pictures/frames.png"]:
        assert (demo_out / path).stat().st_size > 0, path
    evaluation = json.loads((demo_out / "evaluation/evaluation.json").read_text())
    assert set(evaluation["one_step"]) == {"paper", "warpstyle", "copy_last", "linear_extrapolation"}


def test_rerun_skips_finished_stages_and_redo_reruns_the_rest(demo_out):
    before = {s.name: (demo_out / "stages" / f"{s.name}.json").read_text() for s in STAGES}
    again = demo(demo_out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("done before, skipped") == len(STAGES)
    redo = demo(demo_out, "--redo", "rollout")
    assert redo.returncode == 0, redo.stdout + redo.stderr
    after = {s.name: (demo_out / "stages" / f"{s.name}.json").read_text() for s in STAGES}
    later = [s.name for s in STAGES][[s.name for s in STAGES].index("rollout"):]
    assert [n for n in before if before[n] != after[n]] == later  # the stage named and those after it


def test_gan_minutes_sets_the_training_budget(demo_out, tmp_path):
    longer = tmp_path / "longer"
    shutil.copytree(demo_out, longer)
    done = demo(longer, "--gan-minutes", "0.75", "--redo", "stylegan2", "--until", "stylegan2")
    assert done.returncode == 0, done.stdout + done.stderr
    (train,) = json.loads((longer / "stages/stylegan2.json").read_text())["commands"]
    assert "--max-minutes=0.75" in train.split()
    bad = demo(longer, "--gan-minutes", "0")
    assert bad.returncode != 0 and "--gan-minutes" in bad.stderr and "Traceback" not in bad.stderr


def test_a_failing_stage_is_named_in_one_line(demo_out, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(demo_out, broken)
    (broken / "warpstyle/network.pkl").write_bytes(b"not a network")
    done = demo(broken, "--redo", "evaluation")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: stage failed") and "evaluation.log" in last
    assert (broken / "index.html").exists()  # the report still shows what is done


def test_report_loads_every_picture_and_video_in_chromium(demo_out):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (requirements-dev.txt)")
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto((demo_out / "index.html").as_uri())
        page.wait_for_function("() => [...document.images].every(i => i.complete)"
                               " && [...document.querySelectorAll('video')].every(v => v.readyState >= 2 || v.error)",
                               timeout=20000)
        images = page.evaluate("() => [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])")
        videos = page.evaluate("() => [...document.querySelectorAll('video')].map(v => "
                               "[v.getAttribute('src'), v.readyState, v.videoWidth, v.error && v.error.code])")
        page.screenshot(path=str(demo_out / "report-screenshot.png"), full_page=True)
        browser.close()
    assert len(images) >= 8 and all(width > 0 for _, width in images), images
    assert len(videos) >= 2 and all(ready >= 2 and width > 0 and error is None for _, ready, width, error in videos), videos
