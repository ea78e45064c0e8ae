"""The page tagger in a real browser: how fast a frame is on screen, and how many keys tagging a series takes.

    python benchmarks/bench_tagger.py [--episodes 3 --seconds 30 --resolution 256 --seed 0 --presses 200]

Needs Debian's chromium (/usr/bin/chromium, or --chromium PATH) and Playwright from requirements-dev.txt;
no browser is ever downloaded. Writes a synthetic series to a temp folder (synth at 128 px, frame stores
at --resolution), proposes its page functions with align, and starts the tagger on it.

Latency, milliseconds, median and p99, each stage measured in the same run so they can be compared:

- ``store read``: ``store[i]`` copied out of the memory-mapped store (the work below every request);
- ``JPEG encode``: that frame encoded as the server sends it;
- ``HTTP``: a frame requested over HTTP/1.1 keep-alive from a cold server cache (read + encode + transfer);
- ``on screen, stepping``: from a key press (next frame, next cut, step) to the frame decoded and
  painted in Chromium, with the page's own prefetching of the neighbours;
- ``on screen, random jumps``: the same for jumps to random frames, which no prefetch can foresee.

Key presses: a scripted person who knows the true boundaries (the synthetic series' ground truth)
tags every page of every episode with the keyboard only, first without the alignment proposal
(cut-to-cut navigation, page keys where the linear guess shows the wrong page, Enter), then with it
(accept all, go to the first boundary with ``n``, then at each: nudge it into place if needed, and
Space, which tags it and goes on to the next).
Every press is counted; the saved files must equal the truth. ``tests/test_tagger_browser.py`` runs
the same person on the tests' tiny series.
"""

import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

import click
import numpy as np

from manganime_ext.data import ground_truth, page_function, series_config
from manganime_ext.tagger import images
from manganime_ext.tagger.server import TaggerServer
from manganime_ext.tagger.workspace import Workspace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
EDIT_KEYS = {"Enter", "t", "Space", "Delete", "a", "A", ".", ",", ">", "<", "z", "Z"}


def launch(playwright, chromium: str = CHROMIUM):
    """Debian's Chromium, headless, quiet on a closed network."""
    return playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)


def wait_for(page, condition: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript condition (``page.wait_for_function`` evaluates strings, which the tagger's CSP forbids)."""
    end = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({condition})"):
        if time.monotonic() > end:
            raise TimeoutError(f"waited {timeout:g} s for {condition}")
        time.sleep(0.01)


def serve(workspace: Workspace) -> TaggerServer:
    """A tagger on a free loopback port, serving from a daemon thread."""
    server = TaggerServer(workspace, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fresh_config(series_dir: str, stores: str, folder: str) -> str:
    """A config for ``stores`` with no tags (the truth config without page functions); returns its path.

    The truth itself is left in ``folder``/truth (tags/<episode>.json) for the person to read.
    """
    ground_truth.write_truth_config(series_dir, stores, os.path.join(folder, "truth"))
    with open(os.path.join(folder, "truth", "series.json")) as f:
        config = json.load(f)
    for ep in config["episodes"]:
        ep.pop("page_function")
    path = os.path.join(folder, "series.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return path


class KeyboardPerson:
    """Tags a series in the browser with the keyboard only, knowing the true boundaries; counts every press."""

    def __init__(self, page, truth: List[List[int]]):
        self.page, self.truth, self.presses = page, truth, 0

    def press(self, key: str) -> None:
        self.presses += 1
        self.page.keyboard.press(key)
        if key in EDIT_KEYS or key in ("e", "E"):
            wait_for(self.page, "document.body.dataset.busy === '0'")
        message = self.page.inner_text("#message")
        if message.startswith(("Refused", "Conflict", "Not saved")):
            raise AssertionError(f"after {key!r}: {message}")

    def view(self) -> dict:
        return self.page.evaluate("() => ({frame: S.frame, page: currentPage(), index: S.ep.index, name: S.ep.name, "
                                  "first: S.ep.first_page, stops: S.ep.stops, boundaries: S.ep.boundaries, "
                                  "frames: S.ep.frames, step: step()})")

    def go_to(self, target: int) -> None:
        """Reach frame ``target``: next/previous cut while a stop lies on the way, else steps, else frames."""
        while True:
            v = self.view()
            f, stops, step = v["frame"], v["stops"], v["step"]
            if f == target:
                return
            if f < target:
                key = ("ArrowDown" if any(f < s <= target for s in stops) else
                       "Shift+ArrowRight" if target - f >= step else "ArrowRight")
            else:
                key = ("ArrowUp" if any(target <= s < f for s in stops) else
                       "Shift+ArrowLeft" if f - target >= step else "ArrowLeft")
            self.press(key)

    def choose_page(self, page: int) -> None:
        while self.view()["page"] != page:
            current = self.view()["page"]
            self.press("]" if current is None or current < page else "[")

    def tag_by_hand(self, page: int, frame: int) -> None:
        self.go_to(frame)
        self.choose_page(page)
        self.press("Enter")

    def episode(self, with_proposal: bool) -> None:
        v = self.view()
        truth = self.truth[v["index"]]
        if with_proposal:
            self.press("A")
        for i, b in enumerate(truth):
            page = v["first"] + i
            if with_proposal and self.view()["boundaries"][i] < v["frames"]:
                while not (self.view()["page"] == page and self.view()["frame"] == self.view()["boundaries"][i]):
                    self.press("n")
                self.fix_boundary(page, b)
            else:
                self.tag_by_hand(page, b)

    def fix_boundary(self, page: int, true_frame: int) -> None:
        """At a taken proposal: nudge it onto the true frame if needed, then Space (tag it, go to the next)."""
        while True:
            v = self.view()
            at = v["boundaries"][page - v["first"]]
            if at == true_frame:
                if v["frame"] != at or v["page"] != page:
                    raise AssertionError(f"the view left page {page}'s boundary")
                break
            gap = true_frame - at
            self.press((">" if gap > 0 else "<") if abs(gap) >= v["step"] else ("." if gap > 0 else ","))
        self.press("Space")

    def series(self, with_proposal: bool) -> int:
        """Tag every episode, first to last; return the key presses."""
        count = self.page.evaluate("S.series.episodes.length")
        for k in range(count):
            if k:
                self.press("e")
            self.episode(with_proposal)
        return self.presses


def saved_matches_truth(config: str, truth: List[List[int]]) -> bool:
    """Whether every episode's saved page function holds the true boundaries, all tagged by hand."""
    for ep, bounds in zip(series_config.load(config).episodes, truth):
        if ep.page_function is None:
            return False
        pf = page_function.load(ep.page_function)
        if pf.boundaries != bounds or set(pf.provenance) != {"hand"}:
            return False
    return True


def true_boundaries(folder: str) -> List[List[int]]:
    """The true boundaries per episode, in the config's order (from ``fresh_config``'s truth folder)."""
    truth = series_config.load(os.path.join(folder, "truth", "series.json"))
    return [page_function.load(ep.page_function).boundaries for ep in truth.episodes]


def tag_session(playwright, config: str, proposals: Optional[str], chromium: str) -> int:
    """Key presses for the keyboard person to tag the whole series (checked against the truth)."""
    folder = os.path.dirname(config)
    truth = true_boundaries(folder)
    server = serve(Workspace(series_config.load(config), proposals=proposals))
    browser = launch(playwright, chromium)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        wait_for(page, "document.body.dataset.busy === '0'")
        presses = KeyboardPerson(page, truth).series(with_proposal=proposals is not None)
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
    if not saved_matches_truth(config, truth):
        raise AssertionError(f"{config}: the saved tags differ from the truth")
    return presses


def percentiles(ms: List[float]) -> str:
    return f"median {statistics.median(ms):6.2f} ms, p99 {np.percentile(ms, 99):6.2f} ms ({len(ms)} frames)"


def latency(playwright, config: str, presses: int, chromium: str, rng: np.random.RandomState) -> Dict[str, List[float]]:
    ws = Workspace(series_config.load(config))
    store = ws.episode(0).store
    n = len(store)
    frames = rng.randint(0, n, presses)
    read = [_timed(lambda i=i: np.array(store[i])) for i in frames]
    encode = [_timed(lambda i=i: images.encode_frame(store[i])) for i in frames]
    server = serve(ws)
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    http_ms = []
    for i in frames:
        server.cache = images.ByteCache()  # cold: nothing encoded yet
        t = time.perf_counter()
        conn.request("GET", f"/frames/0/{i}.jpg?token={server.token}")
        conn.getresponse().read()
        http_ms.append((time.perf_counter() - t) * 1e3)
    conn.close()
    browser = launch(playwright, chromium)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        wait_for(page, "document.body.dataset.busy === '0'")
        keys = ["ArrowRight", "ArrowRight", "Shift+ArrowRight", "ArrowDown", "ArrowUp", "Shift+ArrowLeft", "ArrowLeft"]
        stepping = _on_screen(page, lambda k: page.keyboard.press(keys[k % len(keys)]), presses)
        jumps = _on_screen(page, lambda k: page.evaluate(f"setFrame({int(frames[k])})"), presses)
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
    return {"store read": read, "JPEG encode": encode, "HTTP (cold server cache)": http_ms,
            "on screen, stepping": stepping, "on screen, random jumps": jumps}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _on_screen(page, act, count: int) -> List[float]:
    """Per action, ms from its start to the frame painted (the page records it in window.taggerTimings)."""
    page.evaluate("window.taggerTimings.length = 0")
    for k in range(count):
        before = page.evaluate("window.taggerTimings.length")
        act(k)
        wait_for(page, f"window.taggerTimings.length > {before} || document.body.dataset.shown === String(S.frame)")
    return list(page.evaluate("window.taggerTimings"))


@click.command()
@click.option("--episodes", default=3, show_default=True)
@click.option("--seconds", default=30.0, show_default=True)
@click.option("--resolution", default=256, show_default=True, help="Frame stores' size, square px.")
@click.option("--seed", default=0, show_default=True)
@click.option("--presses", default=200, show_default=True, help="Frames timed per latency measurement.")
@click.option("--chromium", default=CHROMIUM, show_default=True, type=click.Path())
def main(episodes, seconds, resolution, seed, presses, chromium) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        sys.exit(f"bench_tagger: cannot import Playwright ({e}); install requirements-dev.txt")
    if not os.path.exists(chromium):
        sys.exit(f"bench_tagger: no Chromium at {chromium} (apt-get install chromium)")
    from click.testing import CliRunner

    import dataset_tool_anime

    def tool(*args: str) -> None:
        result = CliRunner().invoke(dataset_tool_anime.cli, list(args))
        if result.exit_code:
            sys.exit(f"bench_tagger: {' '.join(args[:1])}: {result.output}")

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        series, stores = os.path.join(tmp, "series"), os.path.join(tmp, "stores")
        tool("synth", "--out", series, "--episodes", str(episodes), "--seconds", str(seconds), "--seed", str(seed))
        videos = sorted(os.path.join(series, "episodes", v) for v in os.listdir(os.path.join(series, "episodes")))
        tool("frames", "--out", stores, "--resolution", str(resolution), *videos)
        tool("align", "--stores", stores, "--manga", os.path.join(series, "manga"), "--out",
             os.path.join(tmp, "proposals"), "--truth", os.path.join(series, "ground_truth.json"))
        configs = {}
        for name in ("latency", "by hand", "with proposal"):
            os.makedirs(os.path.join(tmp, name))
            configs[name] = fresh_config(series, stores, os.path.join(tmp, name))
        pages = sum(len(b) for b in true_boundaries(os.path.join(tmp, "by hand")))
        print(f"synthetic series: {episodes} x {seconds:g} s (seed {seed}), {pages} pages; stores at {resolution} px; "
              f"Chromium {chromium}; {os.cpu_count()} CPUs")
        timings = latency(pw, configs["latency"], presses, chromium, np.random.RandomState(seed))
        for label, ms in timings.items():
            print(f"  {label:28s}: {percentiles(ms)}")
        by_hand = tag_session(pw, configs["by hand"], None, chromium)
        with_proposal = tag_session(pw, configs["with proposal"], os.path.join(tmp, "proposals"), chromium)
        print(f"key presses to tag all {pages} pages (saved files equal the truth): {by_hand} without the proposal "
              f"({by_hand / pages:.1f} per page), {with_proposal} with it ({with_proposal / pages:.1f} per page)")
        result = {label.replace(" ", "_").replace(",", ""): dict(median_ms=statistics.median(ms),
                                                                p99_ms=float(np.percentile(ms, 99)))
                  for label, ms in timings.items()}
        result.update(pages=pages, presses_without_proposal=by_hand, presses_with_proposal=with_proposal)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
