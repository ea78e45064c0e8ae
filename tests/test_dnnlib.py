"""dnnlib.util: EasyDict and open_url (local paths, file:// URLs, cached http downloads).

http is served by a local server on 127.0.0.1 in a thread; nothing here touches the network.
"""

import http.server
import os
import pathlib
import pickle
import threading

import pytest

from stylegan2_ada import dnnlib
from stylegan2_ada.dnnlib import util

PAYLOAD = b"network bytes \x00\x01" * 1000


def test_easydict_attribute_access_and_pickle():
    d = dnnlib.EasyDict(a=1)
    d.b = 2
    assert d == {"a": 1, "b": 2} and d.a == 1 and d["b"] == 2
    del d.a
    assert "a" not in d
    with pytest.raises(AttributeError):
        _ = d.missing
    assert not hasattr(d, "missing")
    back = pickle.loads(pickle.dumps(d))
    assert isinstance(back, dnnlib.EasyDict) and back == {"b": 2}


def test_open_local_path_and_file_url(tmp_path):
    path = tmp_path / "net.pkl"
    path.write_bytes(PAYLOAD)
    with dnnlib.util.open_url(str(path)) as f:
        assert f.read() == PAYLOAD
    with dnnlib.util.open_url(path.as_uri()) as f:
        assert f.read() == PAYLOAD
    assert dnnlib.util.open_url(str(path), return_filename=True) == str(path)


def test_missing_local_file_is_one_line_error(tmp_path):
    missing = tmp_path / "nope.pkl"
    for url in (str(missing), missing.as_uri()):
        with pytest.raises(FileNotFoundError) as info:
            dnnlib.util.open_url(url)
        assert str(missing) in str(info.value) and "\n" not in str(info.value)


def test_unsupported_scheme():
    with pytest.raises(ValueError, match="ftp"):
        dnnlib.util.open_url("ftp://example.invalid/x.pkl")


def test_cache_dir_env_vars(monkeypatch, tmp_path):
    monkeypatch.delenv("MANGANIME_CACHE_DIR", raising=False)
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnnlib"))
    assert util.make_cache_dir_path("x") == str(tmp_path / "dnnlib" / "x")
    monkeypatch.setenv("MANGANIME_CACHE_DIR", str(tmp_path / "mg"))
    assert util.make_cache_dir_path("downloads", "y") == str(tmp_path / "mg" / "downloads" / "y")
    monkeypatch.delenv("MANGANIME_CACHE_DIR")
    monkeypatch.delenv("DNNLIB_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert util.make_cache_dir_path() == str(tmp_path / "home" / ".cache" / "dnnlib")


@pytest.fixture
def http_server():
    """Serve PAYLOAD at /files/<any name>, 404 elsewhere; counts GET requests."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            hits.append(self.path)
            if not self.path.startswith("/files/"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_download_is_cached(http_server, tmp_path, monkeypatch):
    base, hits = http_server
    monkeypatch.setenv("MANGANIME_CACHE_DIR", str(tmp_path / "cache"))
    url = f"{base}/files/my%20net.pkl?v=1"
    with dnnlib.util.open_url(url, verbose=False) as f:
        assert f.read() == PAYLOAD
    assert len(hits) == 1
    cached = dnnlib.util.open_url(url, verbose=False, return_filename=True)
    assert len(hits) == 1, "second open must come from the cache"
    assert pathlib.Path(cached).parent == tmp_path / "cache" / "downloads"
    assert os.listdir(tmp_path / "cache" / "downloads") == [os.path.basename(cached)], "no temp files left"
    with dnnlib.util.open_url(url, verbose=False) as f:
        assert f.read() == PAYLOAD
    assert len(hits) == 1


def test_http_without_cache_and_failed_download(http_server, tmp_path):
    base, hits = http_server
    with dnnlib.util.open_url(f"{base}/files/a.pkl", cache=False, verbose=False) as f:
        assert f.read() == PAYLOAD
    with pytest.raises(OSError, match="404"):
        dnnlib.util.open_url(f"{base}/missing.pkl", cache_dir=str(tmp_path), num_attempts=2, verbose=False)
    assert len(hits) == 3
    assert os.listdir(tmp_path) == [], "a failed download must leave nothing in the cache"


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "snap.pkl"
    with dnnlib.atomic_write(path) as f:
        f.write(b"old")
    with pytest.raises(RuntimeError):
        with dnnlib.atomic_write(path) as f:
            f.write(b"half-written")
            raise RuntimeError("crash mid-write")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["snap.pkl"]
