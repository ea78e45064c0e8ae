"""The page tagger's rules and API: tags, refusals, undo/redo, atomic saves, two writers, token, traversal."""

import http.client
import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool_anime
from manganime_ext.data import ground_truth, page_function, series_config
from manganime_ext.data.page_function import PageFunction
from manganime_ext.io import outputs
from manganime_ext.tagger import edits
from manganime_ext.tagger.edits import EditRefused
from manganime_ext.tagger.server import TaggerServer
from manganime_ext.tagger.workspace import Conflict, Workspace


def fresh_config(tiny_series, tiny_stores, folder: Path) -> Path:
    """A series config for the tiny stores with no tags yet (the truth's config without its page functions)."""
    series, _ = tiny_series
    ground_truth.write_truth_config(str(series), str(tiny_stores), str(folder / "truth"))
    config = json.loads((folder / "truth" / "series.json").read_text())
    for ep in config["episodes"]:
        ep.pop("page_function")
    (folder / "series.json").write_text(json.dumps(config))
    return folder / "series.json"


def truth_of(folder: Path, name: str) -> PageFunction:
    return page_function.load(str(folder / "truth" / "tags" / f"{name}.json"))


@pytest.fixture(scope="module")
def proposals(tiny_stores, tiny_series, tmp_path_factory):
    """align's proposals for the tiny series (the command's --out folder)."""
    series, _ = tiny_series
    out = tmp_path_factory.mktemp("align") / "proposals"
    result = CliRunner().invoke(dataset_tool_anime.cli, ["align", "--stores", str(tiny_stores), "--manga",
                                                         str(series / "manga"), "--out", str(out), "--truth",
                                                         str(series / "ground_truth.json")])
    assert result.exit_code == 0, result.output
    return out


class Client:
    """HTTP to the tagger, as the page talks to it."""

    def __init__(self, server: TaggerServer, token: str = None):
        self.port, self.token = server.port, server.token if token is None else token

    def request(self, method: str, path: str, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"X-Tagger-Token": self.token} if self.token else {}
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        res = conn.getresponse()
        payload = res.read()
        conn.close()
        return res.status, dict(res.getheaders()), payload

    def state(self, ep: int = 0) -> dict:
        status, _, payload = self.request("GET", f"/api/episodes/{ep}")
        assert status == 200
        return json.loads(payload)

    def act(self, action: str, ep: int = 0, revision=None, **fields):
        body = dict(action=action, revision=self.state(ep)["revision"] if revision is None else revision, **fields)
        status, _, payload = self.request("POST", f"/api/episodes/{ep}", body)
        return status, json.loads(payload)


@pytest.fixture
def served(tiny_series, tiny_stores, proposals, tmp_path):
    """(client, workspace, config path) of a running tagger on a fresh copy of the tiny series."""
    config = fresh_config(tiny_series, tiny_stores, tmp_path)
    ws = Workspace(series_config.load(str(config)), proposals=str(proposals))
    server = TaggerServer(ws, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Client(server), ws, config
    server.shutdown()
    server.server_close()
    thread.join()


def saved(config: Path, name: str = "ep000") -> PageFunction:
    return page_function.load(str(config.parent / "tags" / f"{name}.json"))


# --- the rules, without a server --------------------------------------------------------------------------

def test_edits_keep_pages_in_order_and_say_why():
    pf = PageFunction("ep", 100, 10, [100] * 4, [None] * 4, [(0, 10), (95, 100)])
    pf = edits.tag(pf, 11, 40)
    assert pf.boundaries == [100, 40, 100, 100] and pf.provenance == [None, "hand", None, None]
    with pytest.raises(EditRefused, match="page 10 cannot end at frame 50: page 11, after it, already ends at frame 40"):
        edits.tag(pf, 10, 50)
    with pytest.raises(EditRefused, match="page 12 cannot end at frame 30: page 11, before it"):
        edits.tag(pf, 12, 30)
    with pytest.raises(EditRefused, match="not one of this episode's pages 10..13"):
        edits.tag(pf, 14, 60)
    with pytest.raises(EditRefused, match="outside the episode's frames 0..99"):
        edits.tag(pf, 12, 100)
    with pytest.raises(EditRefused, match=r"excluded \(\[0, 10\)"):
        edits.tag(pf, 10, 5)
    with pytest.raises(EditRefused, match="last page ends at frame 60"):  # page_function.validate's own rule
        edits.tag(pf, 13, 60)
    assert edits.nudge(pf, 11, -3).boundaries[1] == 37
    with pytest.raises(EditRefused, match="page 12 is not tagged"):
        edits.nudge(pf, 12, 1)
    assert edits.untag(pf, 11).boundaries == [100] * 4
    taken = edits.accept_all(pf, [20, 45, 70, 94])      # page 11's tag stays; 45 would cross nothing but it is tagged
    assert taken.boundaries == [20, 40, 70, 94] and taken.provenance == ["proposed", "hand", "proposed", "proposed"]
    assert edits.accept_all(pf, [50, 45, 70, 94]).boundaries == [100, 40, 70, 94]  # 50 would cross page 11's tag
    assert edits.accept(pf, [50, 45, 70, 94], 12).provenance[2] == "hand"


# --- the API -------------------------------------------------------------------------------------------

def test_tag_saves_at_once_and_names_the_file_in_the_config(served, tiny_series):
    client, ws, config = served
    state = client.state()
    assert state["boundaries"] == [state["frames"]] * len(state["boundaries"])
    assert state["stops"][-1] == state["frames"] - 1 and all(c - 1 in state["stops"] for c in state["cuts"])
    truth = truth_of(config.parent, "ep000")
    page, frame = truth.first_page, truth.boundaries[0]
    status, state = client.act("tag", page=page, frame=frame)
    assert status == 200 and state["boundaries"][0] == frame and state["provenance"][0] == "hand"
    assert saved(config).boundaries[0] == frame and saved(config).provenance[0] == "hand"
    entry = json.loads(config.read_text())["episodes"][0]
    assert entry["page_function"] == "tags/ep000.json"
    result = CliRunner().invoke(dataset_tool_anime.cli, ["check", "--series", str(config)])
    assert result.exit_code == 0 and "ep000" in result.output, result.output
    # the guess fills the untagged pages between the tags, the way the exports read them
    pf = saved(config)
    assert state["guess"] == [int(g) for g in page_function.interpolate_untagged(pf.boundaries, pf.num_frames,
                                                                                pf.exclusions)]


def test_refusals_are_visible_and_change_nothing(served):
    client, ws, config = served
    n = client.state()["frames"]
    first = client.state()["first_page"]
    assert client.act("tag", page=first + 1, frame=50)[0] == 200
    before = config.parent.joinpath("tags", "ep000.json").read_bytes()
    for fields, words in [(dict(page=first, frame=60), "tags keep the pages in order"),
                          (dict(page=first + 2, frame=n), "outside the episode's frames"),
                          (dict(page=first + 2, frame=-1), "outside the episode's frames"),
                          (dict(page=first + 2, frame=0), "excluded"),
                          (dict(page=999, frame=70), "not one of this episode's pages"),
                          (dict(page="x", frame=70), "expected the page as a whole number")]:
        status, body = client.act("tag", **fields)
        assert status == 422 and words in body["error"] and body["state"]["boundaries"][1] == 50, (fields, body)
    assert config.parent.joinpath("tags", "ep000.json").read_bytes() == before


def test_undo_redo(served):
    client, ws, config = served
    first = client.state()["first_page"]
    assert client.act("undo")[0] == 422
    client.act("tag", page=first, frame=40)
    client.act("tag", page=first + 1, frame=60)
    client.act("nudge", page=first + 1, delta=2)
    assert saved(config).boundaries[:2] == [40, 62]
    assert client.act("undo")[1]["boundaries"][:2] == [40, 60]
    status, state = client.act("undo")
    assert saved(config).boundaries[1] == state["frames"] and state["can_redo"]
    client.act("redo")
    assert saved(config).boundaries[:2] == [40, 60]
    assert client.act("tag", page=first + 2, frame=83)[0] == 200   # a new change forgets what could be redone
    status, body = client.act("redo")
    assert status == 422 and "nothing to redo" in body["error"]


def test_accept_one_and_all_proposals(served, proposals):
    client, ws, config = served
    prop = page_function.load(str(proposals / "ep000.json")).boundaries
    first = client.state()["first_page"]
    status, state = client.act("accept", page=first + 1)
    assert status == 200 and state["boundaries"][1] == prop[1] and state["provenance"][1] == "hand"
    status, state = client.act("accept_all")
    assert state["boundaries"] == prop and state["provenance"][1] == "hand"
    assert state["provenance"].count("proposed") == len(prop) - 1
    status, state = client.act("tag", page=first, frame=prop[0])   # confirming a proposal taken unreviewed
    assert saved(config).provenance[0] == "hand"


def test_two_tabs_cannot_overwrite_each_other(served):
    client, ws, config = served
    first = client.state()["first_page"]
    revision = client.state()["revision"]
    assert client.act("tag", revision=revision, page=first, frame=40)[0] == 200
    status, body = client.act("tag", revision=revision, page=first, frame=45)   # the other tab's stale view
    assert status == 409 and "another tab" in body["error"] and body["state"]["boundaries"][0] == 40
    assert saved(config).boundaries[0] == 40
    status, body = client.act("tag", revision=body["state"]["revision"], page=first, frame=45)  # after reloading
    assert status == 200 and saved(config).boundaries[0] == 45


def test_two_processes_on_one_file_never_corrupt_it(served, tiny_series, tiny_stores):
    client, ws, config = served
    first = client.state()["first_page"]
    client.act("tag", page=first, frame=40)
    other = Workspace(series_config.load(str(config)))   # a second tagger started on the same config
    other.apply(0, "tag", other.episode(0).revision, page=first + 1, frame=70)
    status, body = client.act("tag", page=first + 2, frame=83)
    assert status == 409 and "changed by another program" in body["error"]
    assert body["state"]["boundaries"][:2] == [40, 70] and saved(config).boundaries[2] == body["state"]["frames"]
    assert client.act("tag", page=first + 2, frame=83)[0] == 200
    assert saved(config).boundaries == [40, 70, 83]


def test_a_failed_save_keeps_the_file_and_the_state(served, monkeypatch):
    client, ws, config = served
    first = client.state()["first_page"]
    client.act("tag", page=first, frame=40)
    path = config.parent / "tags" / "ep000.json"
    before = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "fsync", full_disk)
    status, body = client.act("tag", page=first + 1, frame=60)
    assert status == 500 and "No space left" in body["error"] and body["state"]["boundaries"][1] == body["state"]["frames"]
    assert path.read_bytes() == before and sorted(os.listdir(path.parent)) == ["ep000.json"]  # no temp file left
    monkeypatch.undo()
    assert client.act("undo")[1]["boundaries"][0] == client.state()["frames"]  # history is the saved one


def test_token_hosts_and_headers(served):
    client, ws, config = served
    anonymous, wrong = Client.__new__(Client), Client.__new__(Client)
    anonymous.port, anonymous.token = client.port, ""
    wrong.port, wrong.token = client.port, "nope"
    status, headers, page = anonymous.request("GET", "/")
    assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"] and b"tagger.js" in page
    for c in (anonymous, wrong):
        assert c.request("GET", "/api/series")[0] == 403
        assert c.request("GET", "/frames/0/0.jpg")[0] == 403
        assert c.request("POST", "/api/episodes/0", dict(action="tag", revision=0, page=0, frame=40))[0] == 403
    # the token in the URL is enough to read an image, never to write
    assert anonymous.request("GET", f"/frames/0/0.jpg?token={client.token}")[0] == 200
    assert anonymous.request("POST", f"/api/episodes/0?token={client.token}",
                             dict(action="tag", revision=0, page=0, frame=40))[0] == 403
    assert client.request("GET", "/api/series", headers={"Host": "evil.example:80"})[0] == 403
    assert not (config.parent / "tags").exists()


def test_only_the_series_frames_and_pages_are_served(served, tiny_stores):
    client, ws, config = served
    n = client.state()["frames"]
    status, headers, body = client.request("GET", "/frames/0/5.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and "immutable" in headers["Cache-Control"]
    shown = np.asarray(PIL.Image.open(io.BytesIO(body)), np.float32)
    assert np.abs(shown - ws.episode(0).store[5]).mean() < 6  # the store's frame, JPEG-encoded
    assert client.request("GET", "/pages/0/0")[0] == 200
    for path in [f"/frames/0/{n}.jpg", "/frames/2/0.jpg", "/frames/0/-1.jpg", "/frames/0/../../../etc/passwd",
                 "/frames/0/%2e%2e/%2e%2e/header.json", "/pages/0/9999", "/pages/0/..%2fpage0000.png",
                 "/static/", "/static/../server.py", "/static/server.py", "/tags/ep000.json", "/api/episodes/7",
                 "//etc/passwd", "/series.json"]:
        status, _, body = client.request("GET", path)
        assert status == 404, path
        assert b"root:" not in body and b"frames" not in body


def test_cli_errors_and_start(tiny_series, tiny_stores, tmp_path, monkeypatch):
    config = fresh_config(tiny_series, tiny_stores, tmp_path)
    runner = CliRunner()
    for args, words in [(["--series", tmp_path / "none.json"], "none.json"),
                        (["--series", config, "--episode", "ep9"], "--episode ep9"),
                        (["--series", config, "--proposals", tmp_path / "none"], "--proposals"),
                        (["--series", config, "--cuts", tmp_path / "none.json"], "--cuts")]:
        result = runner.invoke(dataset_tool_anime.cli, ["tag"] + [str(a) for a in args])
        assert result.exit_code == 1 and words in result.output and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    (tmp_path / "tags").mkdir()
    (tmp_path / "tags" / "ep000.json").write_text("[1, 2]")  # tags the config does not name: never overwritten
    result = runner.invoke(dataset_tool_anime.cli, ["tag", "--series", str(config)])
    assert result.exit_code == 1 and "names no page_function" in result.output
    (tmp_path / "tags" / "ep000.json").unlink()

    def stop_at_once(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(TaggerServer, "serve_forever", stop_at_once)
    result = runner.invoke(dataset_tool_anime.cli, ["tag", "--series", str(config), "--port", "0", "--episode", "ep001"])
    assert result.exit_code == 0 and "http://127.0.0.1:" in result.output and "token=" in result.output
    assert "episode=1" in result.output and "Stopped" in result.output
