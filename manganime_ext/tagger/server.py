"""The tagger's HTTP server: one static page, a small JSON API, frames and pages. Standard library only.

    GET  /                         the page (and /static/tagger.js, /static/tagger.css)
    GET  /api/series               episodes and progress                         (token)
    GET  /api/episodes/<i>         one episode's state                           (token)
    POST /api/episodes/<i>         {"action", "revision", "page", "frame", "delta"} -> new state (token header)
    GET  /frames/<i>/<n>.jpg       frame n of episode i, from its frame store    (token)
    GET  /pages/<i>/<p>            page p of episode i's manga volume           (token)

Security: bound to 127.0.0.1 unless told otherwise; a random per-session token, printed in the URL,
is needed by every API call and image (``X-Tagger-Token`` header, or ``token=`` in an image's URL),
and writes take it from the header only (a page of another site can neither read it nor set the
header). On a loopback address the Host header must name it, which stops DNS-rebinding pages.
Frames and pages are addressed by numbers, checked against the series, so no request can name a
file (anything else is a 404; there is no directory listing); the page's script and style are the
only files served, from a fixed table. The Content-Security-Policy allows no inline script, and the
page writes names with ``textContent``, so a file or episode name cannot inject code.

Speed: images are sent with long-lived ``Cache-Control`` under a URL that carries the store's
version, so the browser fetches each frame once; HTTP/1.1 keep-alive spares a connection per image.
"""

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from manganime_ext.io.frame_store import FrameStore
from manganime_ext.tagger import images
from manganime_ext.tagger.edits import EditRefused
from manganime_ext.tagger.workspace import Conflict, Workspace

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/tagger.js": ("tagger.js", "text/javascript; charset=utf-8"),
          "/static/tagger.css": ("tagger.css", "text/css; charset=utf-8")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_BODY = 4096
FRAME = re.compile(r"/frames/(\d{1,6})/(\d{1,9})\.jpg")
PAGE = re.compile(r"/pages/(\d{1,6})/(\d{1,9})")
EPISODE = re.compile(r"/api/episodes/(\d{1,6})")


class TaggerServer(ThreadingHTTPServer):
    """The server of one tagging session: its workspace, token, static files and image cache.

    ``workspace``: the series being tagged; ``host``/``port``: where to listen (port 0: any free one);
    ``token``: the session's secret (default: a fresh random one); ``start_episode``: the episode the
    printed URL opens.
    """

    daemon_threads = True

    def __init__(self, workspace: Workspace, host: str = "127.0.0.1", port: int = 8765,
                 token: Optional[str] = None, start_episode: int = 0):
        self.workspace = workspace
        self.token = token or secrets.token_urlsafe(24)
        self.start_episode = start_episode
        self.cache = images.ByteCache()
        self.static = {}
        for route, (name, kind) in STATIC.items():
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                self.static[route] = (f.read(), kind)
        self.versions = [_store_version(ep.store) for ep in workspace.episodes]
        super().__init__((host, port), Handler)
        self.loopback = _is_loopback(host)

    def handle_error(self, request, client_address) -> None:
        """A browser that drops a prefetch it no longer needs is routine; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/?token={self.token}&episode={self.start_episode}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _store_version(store: FrameStore) -> str:
    """A short tag that changes when a store is rewritten: part of every frame URL, so caches stay right."""
    st = os.stat(store.frames.filename)
    key = json.dumps([store.header, st.st_size, st.st_mtime_ns], sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


class Handler(BaseHTTPRequestHandler):
    """One request: route it, check the token, answer with JSON, an image or the page."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive + headers and body in two writes: Nagle would hold each reply ~40 ms
    server: TaggerServer

    def log_message(self, format, *args) -> None:  # one line per image would drown the terminal
        pass

    # --- plumbing --------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, kind: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if kind.startswith("text/html"):
            self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str, **extra) -> None:
        self._json(status, dict(error=message, **extra))

    def _host_ok(self) -> bool:
        """On a loopback address, the Host header must name it (a DNS-rebinding page names its own host)."""
        if not self.server.loopback:
            return True
        host = (self.headers.get("Host") or "").rsplit(":", 1)
        port = host[1] if len(host) == 2 else ""
        return host[0] in ("127.0.0.1", "localhost", "[::1]") and port == str(self.server.port)

    def _token_ok(self, query: dict, header_only: bool = False) -> bool:
        given = self.headers.get("X-Tagger-Token")
        if given is None and not header_only:
            given = (query.get("token") or [None])[0]
        return given is not None and hmac.compare_digest(given.encode(), self.server.token.encode())

    def _split(self) -> Tuple[str, dict]:
        parts = urlsplit(self.path)
        return parts.path, parse_qs(parts.query)

    # --- routes ----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path, query = self._split()
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
        if path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        if path in self.server.static:
            body, kind = self.server.static[path]
            return self._send(HTTPStatus.OK, body, kind)
        if not (path.startswith("/api/") or FRAME.fullmatch(path) or PAGE.fullmatch(path)):
            return self._error(HTTPStatus.NOT_FOUND, "not found")
        if not self._token_ok(query):
            return self._error(HTTPStatus.FORBIDDEN, "missing or wrong session token (open the URL the tagger printed)")
        ws = self.server.workspace
        if path == "/api/series":
            return self._json(HTTPStatus.OK, dict(config=os.path.basename(ws.series.path), episodes=ws.progress(),
                                                  versions=self.server.versions))
        m = EPISODE.fullmatch(path)
        if m and int(m[1]) < len(ws.episodes):
            return self._json(HTTPStatus.OK, ws.state(int(m[1])))
        m = FRAME.fullmatch(path)
        if m and int(m[1]) < len(ws.episodes) and int(m[2]) < len(ws.episodes[int(m[1])].store):
            ep, n = int(m[1]), int(m[2])
            body, kind = self.server.cache.get(("frame", ep, n), lambda: images.encode_frame(ws.episode(ep).store[n]))
            return self._send(HTTPStatus.OK, body, kind, "private, max-age=31536000, immutable")
        m = PAGE.fullmatch(path)
        if m and int(m[1]) < len(ws.episodes):
            ep = ws.series.episodes[int(m[1])]
            pages = ws.series.volumes[ep.volume].pages
            if int(m[2]) < len(pages):
                body, kind = self.server.cache.get(("page", ep.volume, int(m[2])),
                                                   lambda: images.page_bytes(pages[int(m[2])]))
                return self._send(HTTPStatus.OK, body, kind, "private, max-age=3600")
        return self._error(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:
        path, query = self._split()
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
        m = EPISODE.fullmatch(path)
        ws = self.server.workspace
        if not m or int(m[1]) >= len(ws.episodes):
            return self._error(HTTPStatus.NOT_FOUND, "not found")
        if not self._token_ok(query, header_only=True):
            return self._error(HTTPStatus.FORBIDDEN, "missing or wrong session token (open the URL the tagger printed)")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return self._error(HTTPStatus.BAD_REQUEST, f"expected a JSON body of at most {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return self._error(HTTPStatus.BAD_REQUEST, "expected a JSON object")
        index = int(m[1])
        try:
            state = ws.apply(index, str(body.get("action")), body.get("revision"), body.get("page"),
                             body.get("frame"), body.get("delta"))
        except EditRefused as e:
            return self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(e), state=ws.state(index))
        except Conflict as e:
            return self._error(HTTPStatus.CONFLICT, str(e), state=ws.state(index))
        except OSError as e:  # a full disk, a read-only folder: the file keeps the last tags saved
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"not saved ({e}); the file keeps the last saved "
                               f"tags", state=ws.state(index))
        return self._json(HTTPStatus.OK, state)
