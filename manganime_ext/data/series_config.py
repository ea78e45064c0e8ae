"""The series config: one JSON file that describes a whole series, so every stage can run from it.

    {"volumes":  [{"name": "vol1", "pages": "manga/vol1"}],
     "episodes": [{"name": "ep01", "video": "episodes/ep01.mkv", "store": "stores/ep01",
                   "volume": "vol1", "page_range": [0, 45], "page_function": "tags/ep01.json",
                   "exclusions": [[0, 2160], [31000, 32400]]}]}

Paths are relative to the config file's folder. A volume's pages are the image files of its folder
in natural order (2 before 10), as the ``manga`` stage writes them. Every range is half-open, like a
Python slice: ``page_range`` [first, stop) holds pages first .. stop - 1 of the volume (the same
``page_range`` as in ground_truth.json, ``PageFunction.page_range`` and ``align --pages FIRST:STOP``),
and ``exclusions`` are ``[start, stop)`` frame ranges without manga support (intro, outro, recaps);
they are the series' word on support and replace those inside the page function file.
``page_function`` (our JSON, see ``data.page_function``) and ``exclusions`` are optional: a fresh series
has neither. Configs written before ``page_range`` existed give ``pages`` [first, last], both
included; they are still read, as exactly that.

``load`` checks what it can without the frame stores (fields, names, page ranges against the
volumes); ``open_episode`` checks the rest once a store exists (exclusions inside the episode, the
page function against the store and the page range). Every error is one line naming the field.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from manganime_ext.data import page_function
from manganime_ext.data.page_function import PageFunction, PageFunctionError
from manganime_ext.io.frame_store import FrameStore
from manganime_ext.io.json_files import read_json
from manganime_ext.io.manga import list_pages
from manganime_ext.io.video import VideoError

EPISODE_FIELDS = ("name", "video", "store", "volume")
EPISODE_OPTIONAL = ("page_range", "pages", "page_function", "exclusions")  # page_range, or the older pages
VOLUME_FIELDS = ("name", "pages")


class SeriesConfigError(ValueError):
    """A series config that breaks a rule; the message is one line naming the file and field."""


@dataclasses.dataclass
class Volume:
    """One preprocessed manga volume of the series (a folder the ``manga`` stage wrote).

    Episodes name a volume and a page range in it, so the pages are listed once, here, in the order
    every stage sees them (``io.manga.list_pages``), and a page is known by (volume, index).
    """

    name: str
    folder: str                   # absolute path of the preprocessed pages
    pages: List[str]              # absolute page file paths, natural order


@dataclasses.dataclass
class Episode:
    """One episode as the config describes it: its video, its frame store, the pages it adapts, its tags.

    Paths are made absolute at load time, so later stages never depend on the working directory.
    """

    index: int                    # position in the config (what --shard splits on)
    name: str
    video: str                    # absolute paths from here on
    store: str
    volume: str
    page_range: Tuple[int, int]   # [first, stop): the volume's pages first .. stop - 1
    page_function: Optional[str]
    exclusions: List[Tuple[int, int]]


@dataclasses.dataclass
class Series:
    """A whole series, loaded and checked from its config file: the input of ``check`` and the exports.

    One file describes everything, so every stage after tagging runs from it alone, and ``--shard``
    splits its episodes the same way in every job.
    """

    path: str
    volumes: Dict[str, Volume]
    episodes: List[Episode]


def _fields(where: str, d, required: Sequence[str], optional: Sequence[str] = ()) -> None:
    if not isinstance(d, dict):
        raise SeriesConfigError(f"{where}: expected a JSON object")
    unknown = sorted(set(d) - set(required) - set(optional))
    missing = [f for f in required if f not in d]
    if unknown:
        raise SeriesConfigError(f"{where}: unknown field(s) {unknown} (allowed: {list(required) + list(optional)})")
    if missing:
        raise SeriesConfigError(f"{where}: missing field(s) {missing}")


def _strings(where: str, d: dict, names: Sequence[str]) -> None:
    for name in names:
        if name in d and d[name] is not None and not (isinstance(d[name], str) and d[name]):
            raise SeriesConfigError(f"{where}.{name}: expected a non-empty string, got {json.dumps(d[name])}")


def _int_pair(where: str, value) -> Tuple[int, int]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise SeriesConfigError(f"{where}: expected a pair of whole numbers, got {json.dumps(value)}")
    return value[0], value[1]


def _volume(path: str, i: int, d, base: str) -> Volume:
    where = f"{path}: volumes[{i}]"
    _fields(where, d, VOLUME_FIELDS)
    _strings(where, d, VOLUME_FIELDS)
    folder = os.path.join(base, d["pages"])
    if not os.path.isdir(folder):
        raise SeriesConfigError(f"{where}.pages: {folder} is not a folder")
    pages = list_pages(folder)
    if not pages:
        raise SeriesConfigError(f"{where}.pages: {folder} holds no page images")
    return Volume(d["name"], folder, pages)


def _episode(path: str, i: int, d, base: str, volumes: Dict[str, Volume]) -> Episode:
    where = f"{path}: episodes[{i}]"
    _fields(where, d, EPISODE_FIELDS, EPISODE_OPTIONAL)
    _strings(where, d, ("name", "video", "store", "volume", "page_function"))
    if d["volume"] not in volumes:
        raise SeriesConfigError(f"{where}.volume: {d['volume']!r} is not one of the volumes {sorted(volumes)}")
    page_range = _page_range(where, d, d["volume"], len(volumes[d["volume"]].pages))
    exclusions = [_int_pair(f"{where}.exclusions[{k}]", r) for k, r in enumerate(d.get("exclusions") or [])]
    prev = 0
    for k, (start, stop) in enumerate(exclusions):
        if not prev <= start < stop:
            raise SeriesConfigError(f"{where}.exclusions[{k}]: [{start}, {stop}) is empty, negative or overlaps "
                                    f"the previous range (ranges are [start, stop), in order)")
        prev = stop
    pf = d.get("page_function")
    return Episode(i, d["name"], os.path.join(base, d["video"]), os.path.join(base, d["store"]), d["volume"],
                   page_range, os.path.join(base, pf) if pf else None, exclusions)


def _page_range(where: str, d: dict, volume: str, count: int) -> Tuple[int, int]:
    """The episode's half-open [first, stop) page range, from ``page_range`` or the older inclusive ``pages``."""
    if ("page_range" in d) == ("pages" in d):
        raise SeriesConfigError(f"{where}: give the episode's pages as page_range [first, stop) "
                                f"(or the older pages [first, last]), exactly one of them")
    if "page_range" in d:
        first, stop = _int_pair(f"{where}.page_range", d["page_range"])
        if not 0 <= first < stop <= count:
            raise SeriesConfigError(f"{where}.page_range: [{first}, {stop}) is not a page range of volume "
                                    f"{volume!r}, which has pages [0, {count})")
        return first, stop
    first, last = _int_pair(f"{where}.pages", d["pages"])
    if not 0 <= first <= last < count:
        raise SeriesConfigError(f"{where}.pages: [{first}, {last}] is not a page range of volume "
                                f"{volume!r}, which has pages 0..{count - 1} (pages gives first and last, "
                                f"both included)")
    return first, last + 1


def load(path: str) -> Series:
    """Read and validate a series config (everything that needs no frame store)."""
    d = read_json(path, SeriesConfigError)
    _fields(path, d, ("episodes", "volumes"))
    for name in ("episodes", "volumes"):
        if not isinstance(d[name], list):
            raise SeriesConfigError(f"{path}: {name}: expected a JSON list")
    base = os.path.dirname(os.path.abspath(path))
    volumes: Dict[str, Volume] = {}
    for i, v in enumerate(d["volumes"]):
        vol = _volume(path, i, v, base)
        if vol.name in volumes:
            raise SeriesConfigError(f"{path}: volumes[{i}].name: {vol.name!r} is used twice")
        volumes[vol.name] = vol
    episodes = [_episode(path, i, e, base, volumes) for i, e in enumerate(d["episodes"])]
    if not episodes:
        raise SeriesConfigError(f"{path}: episodes: the series has no episodes")
    names = [e.name for e in episodes]
    dup = next((i for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise SeriesConfigError(f"{path}: episodes[{dup}].name: {names[dup]!r} is used twice")
    return Series(os.path.abspath(path), volumes, episodes)


def open_episode(series: Series, ep: Episode) -> Tuple[FrameStore, PageFunction]:
    """The episode's frame store and page function, checked against each other and the config.

    Without a page function file, every page is untagged (boundaries = frame count). The config's
    exclusions replace those of the file.
    """
    where = f"{series.path}: episodes[{ep.index}]"
    if not os.path.isdir(ep.store):
        raise SeriesConfigError(f"{where}.store: {ep.store} does not exist (run the frames stage first)")
    try:
        store = FrameStore(ep.store)
    except VideoError as e:
        raise SeriesConfigError(f"{where}.store: {e}") from None
    n = len(store)
    for k, (start, stop) in enumerate(ep.exclusions):
        if stop > n:
            raise SeriesConfigError(f"{where}.exclusions[{k}]: [{start}, {stop}) reaches past the episode's "
                                    f"{n} frames")
    first, stop = ep.page_range
    if ep.page_function is None:
        untagged = [n] * (stop - first)
        return store, PageFunction(ep.name, n, first, untagged, [None] * len(untagged), list(ep.exclusions))
    try:
        pf = page_function.load(ep.page_function)
    except PageFunctionError as e:
        raise SeriesConfigError(f"{where}.page_function: {ep.page_function}: {e}") from None
    if pf.num_frames != n:
        raise SeriesConfigError(f"{where}.page_function: {ep.page_function} has num_frames {pf.num_frames} "
                                f"but the store has {n} frames")
    if pf.page_range != ep.page_range:
        raise SeriesConfigError(f"{where}.page_function: {ep.page_function} covers pages "
                                f"[{pf.page_range[0]}, {pf.page_range[1]}), the config says [{first}, {stop})")
    try:
        return store, page_function.validate(dataclasses.replace(pf, exclusions=list(ep.exclusions)))
    except PageFunctionError as e:
        raise SeriesConfigError(f"{where}.page_function: {ep.page_function} with the config's exclusions: "
                                f"{e}") from None


def summary(series: Series, episodes: Sequence[Episode]) -> Tuple[List[dict], dict]:
    """Per-episode and total figures for ``check``: frames, supported frames, pages, tagged pages and
    (mean, min, max) supported frames per page.

    Frames per page counts supported frames per page (untagged stretches by the linear guess).
    Opens every store, so it is also the whole-series validation.
    """
    rows, per_page = [], []
    for ep in episodes:
        store, pf = open_episode(series, ep)
        n = len(store)
        pages = page_function.pages_of_frames(pf, np.arange(n))
        counts = np.bincount(pages[pages >= 0] - pf.first_page, minlength=len(pf.boundaries))
        per_page.append(counts)
        rows.append(dict(name=ep.name, frames=n, supported=int((pages >= 0).sum()), pages=len(pf.boundaries),
                         tagged=int(pf.tagged().sum()), per_page=_stats(counts)))
    allc = np.concatenate(per_page) if per_page else np.zeros(0, np.int64)
    total = dict(episodes=len(rows), frames=sum(r["frames"] for r in rows),
                 supported=sum(r["supported"] for r in rows), pages=sum(r["pages"] for r in rows),
                 tagged=sum(r["tagged"] for r in rows),
                 per_page=_stats(allc))
    return rows, total


def _stats(counts: np.ndarray) -> Tuple[float, int, int]:
    return (float(counts.mean()), int(counts.min()), int(counts.max())) if counts.size else (0.0, 0, 0)
