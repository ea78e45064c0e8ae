"""Manga volume preprocessing: scans (a folder of images or a CBZ/zip) to square greyscale pages.

The study's pipeline, made one step: sort the pages naturally (``page2`` before ``page10``), skip the
first ``start`` and last ``end`` pages (covers, credits), drop the ``exclude`` pages (adverts, colour
inserts), ``crop`` [top, bottom, left, right] pixels of scan margin, greyscale, squash to a square.

``exclude`` holds indices into the **original** naturally sorted list (before ``start``/``end``), as the
study did, so one can read them off a file browser; an index already skipped by ``start``/``end`` is
harmless. The study's JSON config, with exactly its field names, is accepted::

    {"start": 2, "end": 1, "exclude": [40, 41], "crop": [30, 30, 20, 20]}

Output: ``page0000.png ...`` (kept pages, numbered in order) and ``manga.json`` (source, settings and,
per page, the source name and its original index), written all at once.

``list_pages`` is the one listing of a folder's page images (which files count as pages, in which
order) that every stage uses: ``manga`` on its input, ``align --manga`` and the series config on
preprocessed volumes, so no two stages can see different pages in one folder.
"""

import dataclasses
import io
import os
import re
import zipfile
from typing import Callable, List, Optional, Sequence

import numpy as np
import PIL.Image

from manganime_ext.io.json_files import read_json, write_json
from manganime_ext.io.outputs import atomic_output_dir

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CONFIG_FIELDS = ("start", "end", "exclude", "crop")
MANIFEST = "manga.json"


class MangaError(ValueError):
    """A volume or config that cannot be processed; the message is one line naming the file or field."""


@dataclasses.dataclass
class MangaSettings:
    start: int = 0                                   # pages skipped at the beginning
    end: int = 0                                     # pages skipped at the end
    exclude: List[int] = dataclasses.field(default_factory=list)  # original (sorted) indices dropped
    crop: List[int] = dataclasses.field(default_factory=lambda: [0, 0, 0, 0])  # top, bottom, left, right pixels


def natural_key(name: str) -> list:
    """Sort key in which digit runs compare as numbers (``page2`` < ``page10``), case-insensitively."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)]


def is_page_image(name: str) -> bool:
    """Whether a file (or zip member) name is a page: an image extension, not hidden, not macOS metadata."""
    base = os.path.basename(name)
    return name.lower().endswith(IMAGE_EXTENSIONS) and not base.startswith(".") and "__MACOSX" not in name


def list_pages(folder: str) -> List[str]:
    """The page images of ``folder`` (absolute paths) in natural order: the one listing every stage uses."""
    folder = os.path.abspath(folder)
    names = [n for n in os.listdir(folder) if is_page_image(n) and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def _is_whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_settings(s: MangaSettings, where: str = "settings") -> MangaSettings:
    """Validate field types and signs; ``where`` (a config path or 'flags') prefixes the one-line error."""
    for name in ("start", "end"):
        v = getattr(s, name)
        if not _is_whole(v) or v < 0:
            raise MangaError(f"{where}: {name} must be a whole number >= 0, got {v!r}")
    if not isinstance(s.exclude, list) or not all(_is_whole(v) and v >= 0 for v in s.exclude):
        raise MangaError(f"{where}: exclude must be a list of page indices >= 0, got {s.exclude!r}")
    if not isinstance(s.crop, list) or len(s.crop) != 4 or not all(_is_whole(v) and v >= 0 for v in s.crop):
        raise MangaError(f"{where}: crop must be [top, bottom, left, right] pixels >= 0, got {s.crop!r}")
    return s


def settings_from_config(config: dict, where: str = "config") -> MangaSettings:
    """The study's config dict to settings: exactly its field names (any may be left out)."""
    if not isinstance(config, dict):
        raise MangaError(f"{where}: expected a JSON object with fields {list(CONFIG_FIELDS)}")
    unknown = sorted(set(config) - set(CONFIG_FIELDS))
    if unknown:
        raise MangaError(f"{where}: unknown fields {unknown} (expected {list(CONFIG_FIELDS)})")
    return check_settings(MangaSettings(**config), where)


def load_config(path: str) -> MangaSettings:
    return settings_from_config(read_json(path, MangaError, "JSON config"), path)


def select_pages(count: int, s: MangaSettings) -> List[int]:
    """Original indices of the pages kept out of ``count`` sorted pages (pure: the rules in one place)."""
    bad = [i for i in s.exclude if i >= count]
    if bad:
        raise MangaError(f"exclude: indices {bad} are out of range for a volume of {count} pages (0..{count - 1})")
    drop = set(s.exclude)
    kept = [i for i in range(s.start, count - s.end) if i not in drop]
    if not kept:
        raise MangaError(f"start={s.start}, end={s.end}, exclude={s.exclude} leave none of the {count} pages")
    return kept


def process_page(img: PIL.Image.Image, crop: Sequence[int], resolution: int, name: str = "page") -> np.ndarray:
    """Crop [top, bottom, left, right], greyscale, squash to ``resolution`` square (Lanczos): HW uint8."""
    top, bottom, left, right = crop
    w, h = img.size
    if top + bottom >= h or left + right >= w:
        raise MangaError(f"{name}: crop {list(crop)} leaves nothing of a {w}x{h} page")
    grey = img.crop((left, top, w - right, h - bottom)).convert("L")
    return np.asarray(grey.resize((resolution, resolution), PIL.Image.LANCZOS))


class ScanVolume:
    """The scanned pages of one volume, a folder or a CBZ/zip, naturally sorted by (member) name; ``open(i)``
    decodes one. The input of the ``manga`` stage."""

    def __init__(self, source: str):
        self.source = source
        self._zip: Optional[zipfile.ZipFile] = None
        if os.path.isdir(source):
            names = [os.path.basename(p) for p in list_pages(source)]
        elif os.path.isfile(source):
            try:
                self._zip = zipfile.ZipFile(source)
            except (OSError, zipfile.BadZipFile) as e:
                raise MangaError(f"{source}: neither a folder nor a readable CBZ/zip ({e})") from None
            names = [n for n in self._zip.namelist() if is_page_image(n) and not n.endswith("/")]
        else:
            raise MangaError(f"{source}: no such folder or CBZ/zip file")
        if not names:
            raise MangaError(f"{source}: no page images ({', '.join(IMAGE_EXTENSIONS)})")
        self.names = sorted(names, key=natural_key)

    def __len__(self) -> int:
        return len(self.names)

    def open(self, index: int) -> PIL.Image.Image:
        name = self.names[index]
        where = f"{self.source}:{name}" if self._zip else os.path.join(self.source, name)
        try:
            if self._zip:
                data = self._zip.read(name)
            else:
                with open(where, "rb") as f:
                    data = f.read()
            img = PIL.Image.open(io.BytesIO(data))
            img.load()
        except (OSError, ValueError, zipfile.BadZipFile, PIL.Image.DecompressionBombError) as e:
            raise MangaError(f"{where}: not a readable image ({e})") from None
        img.filename = where
        return img

    def close(self) -> None:
        if self._zip:
            self._zip.close()


def write_volume(source: str, out: str, resolution: int, settings: MangaSettings, force: bool = False,
                 progress: Optional[Callable[[int], None]] = None) -> dict:
    """Preprocess the volume at ``source`` into folder ``out`` (appears only when complete); return the manifest."""
    check_settings(settings)
    volume = ScanVolume(source)
    try:
        kept = select_pages(len(volume), settings)
        manifest = {"source": os.path.abspath(source), "resolution": resolution,
                    "settings": dataclasses.asdict(settings), "pages": []}
        with atomic_output_dir(out, force) as tmp:
            for k, index in enumerate(kept):
                img = volume.open(index)
                page = process_page(img, settings.crop, resolution, img.filename)
                file = f"page{k:04d}.png"
                PIL.Image.fromarray(page).save(os.path.join(tmp, file))
                manifest["pages"].append({"file": file, "source": volume.names[index], "index": index})
                if progress is not None:
                    progress(1)
            write_json(os.path.join(tmp, MANIFEST), manifest)
    finally:
        volume.close()
    return manifest

