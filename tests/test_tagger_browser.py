"""The tagger end to end in headless Chromium (Debian's package, driven by Playwright): keyboard only.

A scripted person (``benchmarks/bench_tagger.py``'s ``KeyboardPerson``, who knows the true boundaries)
tags every page of the tiny synthetic series with the keyboard, without and with the alignment
proposal; the page is reloaded and the saved files are checked against the truth. A screenshot is
left in the test's tmp folder. Skipped, with the reason, only where Chromium or Playwright is missing
(``.ci/run`` installs both).
"""

import importlib.util
import json
import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import dataset_tool_anime
from manganime_ext.data import series_config
from manganime_ext.tagger.server import TaggerServer
from manganime_ext.tagger.workspace import Workspace

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_tagger.py"
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (requirements-dev.txt)")
if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)",
                allow_module_level=True)
spec = importlib.util.spec_from_file_location("bench_tagger", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
# A name that would run script if the page ever parsed names as HTML.
HOSTILE = "ep001 <img src=x onerror=\"document.title='injected'\">"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = bench.launch(pw)
        yield b
        b.close()


@pytest.fixture(scope="module")
def proposals(tiny_stores, tiny_series, tmp_path_factory):
    series, _ = tiny_series
    out = tmp_path_factory.mktemp("align") / "proposals"
    result = CliRunner().invoke(dataset_tool_anime.cli, ["align", "--stores", str(tiny_stores), "--manga",
                                                         str(series / "manga"), "--out", str(out), "--truth",
                                                         str(series / "ground_truth.json")])
    assert result.exit_code == 0, result.output
    return out


def session(tmp_path, tiny_series, tiny_stores, proposals=None, rename=False):
    series, _ = tiny_series
    config = Path(bench.fresh_config(str(series), str(tiny_stores), str(tmp_path)))
    if rename:
        d = json.loads(config.read_text())
        d["episodes"][1]["name"] = HOSTILE
        config.write_text(json.dumps(d))
    server = TaggerServer(Workspace(series_config.load(str(config)), proposals=proposals and str(proposals)), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return config, server


def open_page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(server.url)
    bench.wait_for(page, "document.body.dataset.busy === '0'")
    return page, problems


def test_keyboard_only_tagging_survives_a_reload(browser, tiny_series, tiny_stores, tmp_path):
    config, server = session(tmp_path, tiny_series, tiny_stores, rename=True)
    truth = bench.true_boundaries(str(tmp_path))
    try:
        page, problems = open_page(browser, server)
        person = bench.KeyboardPerson(page, truth)
        presses = person.series(with_proposal=False)
        pages = sum(len(t) for t in truth)
        print(f"keyboard only, no proposal: {presses} key presses for {pages} pages")
        assert bench.saved_matches_truth(str(config), truth)
        # a refused tag is shown, and changes nothing: frame 0 is in the intro, it has no page
        for key in ("Home", "Enter"):
            page.keyboard.press(key)
        assert page.inner_text("#message").startswith("Refused: frame 0 has no page")
        for key in ("]", "Enter"):  # the person insists on a page: the server says why not
            page.keyboard.press(key)
        bench.wait_for(page, "document.body.dataset.busy === '0'")
        assert page.inner_text("#message").startswith("Refused: frame 0 is excluded")
        assert bench.saved_matches_truth(str(config), truth)
        # undo and redo from the keyboard reach the file
        page.keyboard.press("z")
        bench.wait_for(page, "document.body.dataset.busy === '0'")
        assert not bench.saved_matches_truth(str(config), truth)
        page.keyboard.press("Shift+Z")
        bench.wait_for(page, "document.body.dataset.busy === '0'")
        assert bench.saved_matches_truth(str(config), truth)
        page.reload()
        bench.wait_for(page, "document.body.dataset.busy === '0'")
        assert f"{pages}/{pages} pages tagged" in page.inner_text("#progress-series")
        assert page.evaluate("S.ep.provenance.every((p) => p === 'hand')")
        names = page.evaluate("[...document.querySelectorAll('#episode option')].map((o) => o.textContent)")
        assert names[1] == HOSTILE and page.title() == "manGANime page tagger"
        assert page.evaluate("document.querySelector('img[src=\"x\"]')") is None and problems == []
        shot = tmp_path / "tagger.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    finally:
        server.shutdown()
        server.server_close()
    result = CliRunner().invoke(dataset_tool_anime.cli, ["check", "--series", str(config)])
    assert result.exit_code == 0, result.output


def test_keyboard_tagging_with_the_alignment_proposal(browser, tiny_series, tiny_stores, proposals, tmp_path):
    config, server = session(tmp_path, tiny_series, tiny_stores, proposals=proposals)
    truth = bench.true_boundaries(str(tmp_path))
    try:
        page, problems = open_page(browser, server)
        presses = bench.KeyboardPerson(page, truth).series(with_proposal=True)
        print(f"keyboard only, with the proposal: {presses} key presses for {sum(len(t) for t in truth)} pages")
        assert bench.saved_matches_truth(str(config), truth) and problems == []
    finally:
        server.shutdown()
        server.server_close()
