"""The two datasets a series ends in: unconditional frames, and (frame, page, next frame) pairs.

(a) **Unconditional**: every supported frame (exclusions dropped) as ``00000/img00000000.png ...``
plus ``dataset.json`` (``{"labels": null}``, or the episode index or manga page per image), the official
StyleGAN2-ADA zip that ``training.dataset.ImageFolderDataset`` and the official loader read.

(b) **Conditional** (next-frame training): a self-contained zip with

- ``pages/page0000.png ...``: each manga page the exported episodes cover, once, greyscale and square
  (``page_resolution``, by default the frames' size): a page the ``manga`` stage already made square
  at that size is copied as it is, any other (e.g. the synthetic series' scans) is squashed the way
  ``manga`` does, so training never depends on a step someone may have skipped;
- ``frames/<episode>/00000123.png``: every frame some pair needs (RGB);
- ``index.json``: the episode names, the validation episodes, the stride, the page resolution, what
  each page file is (``[volume, page]``), the pairs per split as rows ``[episode, n, m, page]`` (episode index into
  the names, m = n + stride, page = page file index) and, when ``--cuts`` was given, the cuts per episode.

The zip is self-contained, not a list of references into the frame stores, because training runs
on cluster nodes: one file to copy to local scratch, no dependence on store paths or on the stores
outliving the export, and PNG shrinks cel-shaded frames several times compared with the raw stores.
Members are stored uncompressed (PNG already is), so any member is read without inflating others.

A pair (n, n + stride) is kept when every frame from n to n + stride is supported (both ends
supported and no excluded gap between them; episodes never mix) and frame n has a page M(n). Pages
of untagged stretches come from the study's linear-interpolation guess over the supported frames
(``pages_of_frames``), or the pair is dropped with ``skip_untagged``. ``no_cross_cuts`` drops pairs
with a cut c in (n, n + stride], i.e. a new shot starting after n and by n + stride.
"""

import io
import json
import os
import re
import zipfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import PIL.Image

from manganime_ext.analysis.exclusions import supported_mask
from manganime_ext.data import page_function
from manganime_ext.data.page_function import PageFunction
from manganime_ext.data.series_config import Episode, Series, open_episode
from manganime_ext.io.json_files import JSONFileError, read_json
from manganime_ext.io.manga import MangaError, process_page
from manganime_ext.io.outputs import atomic_file, refuse_existing

INDEX = "index.json"
FORMAT = "manganime-paired-v1"
COLUMNS = ("episode", "n", "m", "page")
# Called with the number of frames to write once every input is validated; returns the per-frame callback.
ProgressFactory = Callable[[int], Callable[[int], None]]


class ExportError(ValueError):
    """Export options that cannot make a dataset; the message is one line naming the flag or file."""


def pair_starts(pf: PageFunction, stride: int = 1, cuts: Sequence[int] = (), no_cross_cuts: bool = False,
                skip_untagged: bool = False) -> np.ndarray:
    """Frames n of the episode whose pair (n, n + stride) is kept (see the module docstring)."""
    total = pf.num_frames
    n = np.arange(max(total - stride, 0))
    unsupported = np.concatenate([[0], np.cumsum(~supported_mask(total, pf.exclusions))])
    pages = page_function.pages_of_frames(pf, n)
    keep = (unsupported[n + stride + 1] - unsupported[n] == 0) & (pages >= 0)
    if skip_untagged:
        keep &= pf.tagged()[np.clip(pages - pf.first_page, 0, len(pf.boundaries) - 1)]
    if no_cross_cuts:
        is_cut = np.zeros(total + 1, np.int64)
        is_cut[[c for c in cuts if 0 < c < total]] = 1
        cum = np.cumsum(is_cut)                       # cum[k] = cuts in [0, k]
        keep &= cum[n + stride] - cum[n] == 0         # no cut in (n, n + stride]
    return n[keep]


def load_cuts(path: str) -> Dict[str, List[int]]:
    """Cuts per episode (first frames of new shots), from any of:

    - the ``cuts`` stage's output folder (``<episode>.json`` each, sharded or not; reports are skipped);
    - one file ``{episode: [frame, ...]}``;
    - the synthetic series' ground_truth.json (episodes named by file stem).
    """
    if os.path.isdir(path):
        return _cuts_folder(path)
    d = _read_cuts_file(path)
    if isinstance(d, dict) and isinstance(d.get("episodes"), list):
        try:
            d = {os.path.splitext(os.path.basename(ep["file"]))[0]: ep["cuts"] for ep in d["episodes"]}
        except (KeyError, TypeError):
            raise ExportError(f"--cuts: {path}: ground truth without 'file' and 'cuts' per episode") from None
    if not isinstance(d, dict) or not all(isinstance(v, list) and all(isinstance(c, int) for c in v)
                                          for v in d.values()):
        raise ExportError(f"--cuts: {path}: expected {{episode: [frame, ...]}}")
    return d


REPORT = re.compile(r"report(-\d+of\d+)?\.json")


def _read_cuts_file(path: str):
    try:
        return read_json(path)
    except JSONFileError as e:
        raise ExportError(f"--cuts: {e}") from None


def _cuts_folder(folder: str) -> Dict[str, List[int]]:
    """{episode: cuts} from the ``cuts`` stage's folder: one ``{"episode", "cuts", ...}`` file per episode."""
    out: Dict[str, List[int]] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not name.endswith(".json") or REPORT.fullmatch(name):
            continue
        path = os.path.join(folder, name)
        d = _read_cuts_file(path)
        if not (isinstance(d, dict) and isinstance(d.get("episode"), str) and isinstance(d.get("cuts"), list)
                and all(isinstance(c, int) for c in d["cuts"])):
            raise ExportError(f"--cuts: {path}: not a file of the cuts stage (expected episode and cuts)")
        if d["episode"] in out:
            raise ExportError(f"--cuts: {path}: a second file for episode {d['episode']!r}")
        out[d["episode"]] = d["cuts"]
    if not out:
        raise ExportError(f"--cuts: {folder}: no cuts files in it (write them with the cuts command)")
    return out


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buf, format="png", compress_level=1)
    return buf.getvalue()


LABELS = ("episode", "page")


def export_unconditional(series: Series, episodes: Sequence[Episode], out: str, labels: Optional[str] = None,
                         force: bool = False, progress_factory: Optional[ProgressFactory] = None) -> int:
    """Write the official-format zip of the episodes' supported frames to ``out``; return the image count.

    ``labels`` makes a class-conditional set (train with ``--cond=1``): ``"episode"`` labels each image
    with its episode's index in the config; ``"page"`` with the manga page it was drawn from (the page
    number in the series, untagged stretches by the linear guess), so that a network can be asked for
    frames of a given page. With page labels, frames after an episode's last page have no class and
    are left out.
    """
    if labels not in (None,) + LABELS:
        raise ExportError(f"--labels: expected one of {', '.join(LABELS)}, got {labels!r}")
    refuse_existing(out, force)
    opened = [(ep, *open_episode(series, ep)) for ep in episodes]    # every error before any writing
    frames = [_labelled_frames(ep, len(store), pf, labels) for ep, store, pf in opened]
    progress = progress_factory(sum(len(f) for f in frames)) if progress_factory else None
    count, label_list = 0, []
    with atomic_file(out) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for (_, store, _), chosen in zip(opened, frames):
            for n, label in chosen:
                name = f"{count // 1000:05d}/img{count:08d}.png"
                zf.writestr(name, _png(np.asarray(store[n])))
                label_list.append([name, label])
                count += 1
                if progress is not None:
                    progress(1)
        if count == 0:
            raise ExportError(f"{out}: the episodes have no supported frames (all excluded?)")
        zf.writestr("dataset.json", json.dumps({"labels": label_list if labels else None}))
    return count


def _labelled_frames(ep: Episode, num_frames: int, pf: PageFunction, labels: Optional[str]) -> List[Tuple[int, int]]:
    """(frame, class) of each frame to export: every supported frame, or with page labels those on a page."""
    frames = np.flatnonzero(supported_mask(num_frames, pf.exclusions))
    if labels != "page":
        return [(int(n), ep.index) for n in frames]
    pages = page_function.pages_of_frames(pf, frames)
    return [(int(n), int(page)) for n, page in zip(frames, pages) if page >= 0]


def _page_files(episodes: Sequence[Episode]) -> List[Tuple[str, int]]:
    """(volume, page) of every page an episode covers, each once, in config order."""
    seen: Dict[Tuple[str, int], None] = {}
    for ep in episodes:
        for p in range(*ep.page_range):
            seen.setdefault((ep.volume, p), None)
    return list(seen)


def export_conditional(series: Series, episodes: Sequence[Episode], out: str, val_episodes: Sequence[str] = (),
                       stride: int = 1, cuts: Optional[Dict[str, List[int]]] = None, no_cross_cuts: bool = False,
                       skip_untagged: bool = False, force: bool = False,
                       progress_factory: Optional[ProgressFactory] = None,
                       page_resolution: Optional[int] = None) -> Dict[str, int]:
    """Write the paired dataset zip to ``out``; return pair counts per split and the frame/page counts.

    Pages are written ``page_resolution`` square (None: the size of the first episode's frames).
    """
    refuse_existing(out, force)
    names = [ep.name for ep in episodes]
    unknown = [v for v in val_episodes if v not in names]
    if unknown:
        raise ExportError(f"--val-episodes: {unknown} are not episodes of the series ({names})")
    if stride < 1:
        raise ExportError(f"--stride: must be >= 1, got {stride}")
    if no_cross_cuts:
        missing = [n for n in names if n not in (cuts or {})]
        if missing:
            raise ExportError(f"--cuts: no cuts for episodes {missing} (needed by --no-cross-cuts)")
    opened = [(ep, *open_episode(series, ep)) for ep in episodes]
    page_resolution = page_resolution or int(opened[0][1].frames.shape[1])
    page_files = _page_files(episodes)
    page_id = {key: i for i, key in enumerate(page_files)}
    splits: Dict[str, List[List[int]]] = {"train": [], "val": []}
    needed: List[Tuple[int, np.ndarray]] = []
    for e, (ep, store, pf) in enumerate(opened):
        n = pair_starts(pf, stride, (cuts or {}).get(ep.name, ()), no_cross_cuts, skip_untagged)
        pages = page_function.pages_of_frames(pf, n)
        rows = splits["val" if ep.name in val_episodes else "train"]
        rows.extend([e, int(a), int(a) + stride, page_id[(ep.volume, int(p))]] for a, p in zip(n, pages))
        needed.append((e, np.union1d(n, n + stride)))
    if not splits["train"] and not splits["val"]:
        raise ExportError(f"{out}: no pairs: every candidate pair is excluded, untagged or crosses a cut")
    index = dict(format=FORMAT, stride=stride, episodes=names, val_episodes=list(val_episodes),
                 no_cross_cuts=no_cross_cuts, skip_untagged=skip_untagged, page_resolution=page_resolution,
                 pages=[[v, p] for v, p in page_files], columns=list(COLUMNS), **splits)
    if cuts is not None:  # kept so that evaluation can report pairs across a cut apart
        index["cuts"] = {name: sorted(int(c) for c in cuts[name]) for name in names if name in cuts}
    progress = progress_factory(sum(len(f) for _, f in needed)) if progress_factory else None
    with atomic_file(out) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for i, (vol, p) in enumerate(page_files):
            zf.writestr(page_member(i), _png(square_page(series.volumes[vol].pages[p], page_resolution)))
        for e, frames in needed:
            store = opened[e][1]
            for n in frames:
                zf.writestr(frame_member(names[e], int(n)), _png(np.asarray(store[n])))
                if progress is not None:
                    progress(1)
        zf.writestr(INDEX, json.dumps(index))
    return dict(train=len(splits["train"]), val=len(splits["val"]), frames=sum(len(f) for _, f in needed),
                pages=len(page_files))


def square_page(path: str, resolution: int) -> np.ndarray:
    """A page image as training reads it: greyscale, ``resolution`` square (the ``manga`` stage's squash,
    which leaves a page it already made at that size unchanged)."""
    try:
        with PIL.Image.open(path) as img:
            img.load()
            return process_page(img, (0, 0, 0, 0), resolution, path)
    except (OSError, MangaError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise ExportError(f"{path}: not a readable page image ({e})") from None


def frame_member(episode: str, n: int) -> str:
    return f"frames/{episode}/{n:08d}.png"


def page_member(page: int) -> str:
    return f"pages/page{page:04d}.png"
