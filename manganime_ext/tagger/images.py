"""Frames and manga pages as bytes the browser can show and cache.

Frames come from the frame store (a memory-mapped read, microseconds), never from decoding video,
and are encoded as JPEG (quality 90: about a millisecond for a 256 px frame, a few kilobytes; cel
shading survives it well). Pages are the volume's files, sent as they are (PNG or JPEG) or, for
other formats, converted once. Both are addressed by numbers only (episode index, frame or page
index), so no request can name a path. Recently served bytes are kept in a small LRU cache so that
going back and forth costs nothing even where the browser's own cache was bypassed.
"""

import collections
import io
import os
import threading
from typing import Callable, Hashable, Tuple

import numpy as np
import PIL.Image

JPEG_QUALITY = 90
NATIVE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


class ByteCache:
    """A thread-safe LRU cache of encoded images, bounded in bytes."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes, self.size = max_bytes, 0
        self._items: "collections.OrderedDict[Hashable, Tuple[bytes, str]]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Tuple[bytes, str]]) -> Tuple[bytes, str]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: two threads may encode the same image once each, harmlessly
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self.size += len(value[0])
            while self.size > self.max_bytes and len(self._items) > 1:
                _, (data, _) = self._items.popitem(last=False)
                self.size -= len(data)
        return value


def encode_frame(frame: np.ndarray) -> Tuple[bytes, str]:
    """One HWC uint8 frame as (JPEG bytes, content type)."""
    buf = io.BytesIO()
    PIL.Image.fromarray(np.ascontiguousarray(frame)).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), "image/jpeg"


def page_bytes(path: str) -> Tuple[bytes, str]:
    """A page file as (bytes, content type): PNG/JPEG as they are, anything else converted to PNG."""
    kind = NATIVE_TYPES.get(os.path.splitext(path)[1].lower())
    if kind:
        with open(path, "rb") as f:
            return f.read(), kind
    buf = io.BytesIO()
    with PIL.Image.open(path) as img:
        img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(buf, "PNG")
    return buf.getvalue(), "image/png"
