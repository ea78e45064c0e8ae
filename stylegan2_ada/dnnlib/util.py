"""Small generic helpers: an attribute-access dict and a caching URL opener.

``open_url`` lets every tool take a network as a local path, a ``file://`` URL
or an http(s) URL.  Downloads land in a cache so a second run (or a machine
without network) reuses the file instead of fetching hundreds of megabytes again.
"""

import contextlib
import hashlib
import importlib
import io
import os
import re
import tempfile
import urllib.parse
import urllib.request
from typing import Any, BinaryIO, Iterator, Optional, Union

import requests
from tqdm import tqdm

CACHE_ENV_VARS = ("MANGANIME_CACHE_DIR", "DNNLIB_CACHE_DIR")


class EasyDict(dict):
    """A ``dict`` whose items can also be read and written as attributes (``d.key``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            # AttributeError (not KeyError) keeps getattr(), hasattr() and pickle working.
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class DownloadError(OSError):
    """An http(s) download failed after every attempt; the message names the URL."""


@contextlib.contextmanager
def atomic_write(path: Union[str, "os.PathLike[str]"]) -> Iterator[BinaryIO]:
    """Binary file that appears at ``path`` only when the ``with`` block succeeds (temp file, fsync, rename).

    Readers never see a half-written file, and a crash leaves the old file, if any, untouched.
    """
    path = os.fspath(path)
    fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-", suffix=".part")
    try:
        os.chmod(tmp_path, 0o644)  # mkstemp's 0600 would make snapshots unreadable to other users
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def make_cache_dir_path(*paths: str) -> str:
    """Path inside the cache dir: ``$MANGANIME_CACHE_DIR``, else ``$DNNLIB_CACHE_DIR``, else ``~/.cache/dnnlib``."""
    for var in CACHE_ENV_VARS:
        if os.environ.get(var):
            return os.path.join(os.environ[var], *paths)
    return os.path.join(os.path.expanduser("~"), ".cache", "dnnlib", *paths)


def _cache_file_name(url: str) -> str:
    """``<md5 of the URL>_<file name made filesystem-safe>``: unique per URL, still readable."""
    url_md5 = hashlib.md5(url.encode("utf-8")).hexdigest()
    base = os.path.basename(urllib.parse.urlparse(url).path)
    safe = re.sub(r"[^0-9A-Za-z._-]", "_", base)[:128] or "download"
    return f"{url_md5}_{safe}"


def _open_local(path: str, return_filename: bool) -> Union[BinaryIO, str]:
    """Open a local file, with a one-line error naming it when it is missing."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path}")
    return path if return_filename else open(path, "rb")


def _download(url: str, num_attempts: int, verbose: bool, sink: BinaryIO) -> None:
    """Stream ``url`` into ``sink``, retrying transient failures ``num_attempts`` times."""
    last_error: Optional[BaseException] = None
    for _attempt in range(max(1, num_attempts)):
        sink.seek(0)
        sink.truncate()
        try:
            with requests.get(url, stream=True, timeout=60) as res:
                res.raise_for_status()
                total = int(res.headers.get("content-length", 0)) or None
                name = os.path.basename(urllib.parse.urlparse(url).path) or url
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not verbose, leave=False) as bar:
                    for chunk in res.iter_content(chunk_size=1 << 20):
                        sink.write(chunk)
                        bar.update(len(chunk))
            return
        except requests.RequestException as err:
            last_error = err
    raise DownloadError(f"Could not download {url}: {last_error}")


def _open_http(url: str, cache_dir: Optional[str], num_attempts: int, verbose: bool,
               return_filename: bool, cache: bool) -> Union[BinaryIO, str]:
    """Serve an http(s) URL from the cache, downloading (atomically) into it on a miss."""
    if not cache:
        if return_filename:
            raise ValueError("open_url: return_filename=True needs cache=True")
        buf = io.BytesIO()
        _download(url, num_attempts, verbose, buf)
        buf.seek(0)
        return buf

    cache_dir = cache_dir if cache_dir is not None else make_cache_dir_path("downloads")
    cached = os.path.join(cache_dir, _cache_file_name(url))
    if not os.path.isfile(cached):
        os.makedirs(cache_dir, exist_ok=True)
        with atomic_write(cached) as tmp:  # an interrupted download never looks cached
            _download(url, num_attempts, verbose, tmp)
    return cached if return_filename else open(cached, "rb")


def open_url(url: str, cache_dir: Optional[str] = None, num_attempts: int = 10, verbose: bool = True,
             return_filename: bool = False, cache: bool = True) -> Any:
    """Open a local path, ``file://`` URL or http(s) URL as a binary file object.

    http(s) downloads are cached under ``cache_dir`` (default ``make_cache_dir_path('downloads')``);
    a cached URL is served without touching the network.  With ``return_filename``
    the local path is returned instead of an open file.
    """
    url = os.fspath(url)
    if "://" not in url:
        return _open_local(url, return_filename)
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file:// URL with a remote host is not supported: {url}")
        return _open_local(urllib.request.url2pathname(parsed.path), return_filename)
    if parsed.scheme in ("http", "https"):
        return _open_http(url, cache_dir, num_attempts, verbose, return_filename, cache)
    raise ValueError(f"Unsupported URL scheme '{parsed.scheme}': {url}")


def format_time(seconds: float) -> str:
    """Human-readable duration for logs and metric reports: ``'42s'``, ``'3m 05s'``, ``'2h 03m 05s'``, ``'1d 02h 03m'``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {s // 3600 % 24:02d}h {s // 60 % 60:02d}m"


def get_obj_by_name(name: str) -> Any:
    """The object a dotted name such as ``'stylegan2_ada.training.dataset.ImageFolderDataset'`` refers to."""
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        raise ValueError(f"'{name}' is not a dotted name like 'package.module.Class'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot find '{name}': {err}") from err


def construct_class_by_name(*args: Any, class_name: str, **kwargs: Any) -> Any:
    """Instantiate a class named by a string, so options stay plain data (``dict(class_name=..., **kwargs)``)."""
    return get_obj_by_name(class_name)(*args, **kwargs)
