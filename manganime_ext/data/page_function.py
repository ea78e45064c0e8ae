"""The page function f(frame) -> manga page of one episode, stored as its boundaries.

The anime follows the manga in order, so f is monotonic and is fully described by one number per
page: the largest frame index mapped to it (the study's tag format, a JSON list indexed by page in
the episode's page range). A value equal to the episode's frame count means "not tagged yet".
Page ``first_page + i`` covers frames ``(boundaries[i-1], boundaries[i]]`` (page ``first_page``
starts at frame 0). Frames inside ``exclusions`` (half-open ``[start, stop)`` ranges: intro, outro,
recaps) have no page.

Our own JSON adds the episode, the page range, the exclusions and who set each boundary
('hand' or 'proposed'; ``None`` while untagged). Everything here is a pure function except the
load/save helpers, which write atomically.
"""

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from manganime_ext.analysis.exclusions import supported_mask
from manganime_ext.io.json_files import read_json, write_json

PROVENANCE = ("hand", "proposed")
FIELDS = ("episode", "num_frames", "first_page", "boundaries", "provenance", "exclusions")


class PageFunctionError(ValueError):
    """A page function that breaks a rule; the message is one line naming the field."""


@dataclasses.dataclass
class PageFunction:
    """Which manga page each frame of one episode illustrates: the tag that conditions next-frame training.

    Stored as one boundary per page (not one page per frame) because the anime follows the manga in
    order: a monotonic map is fully described by where each page ends, which is also the study's tag
    format, what a person confirms in the tagger and what ``analysis.align`` proposes. Provenance
    records who set each boundary, so a proposal never passes for a hand tag.
    """

    episode: str                                  # episode name (e.g. its file stem)
    num_frames: int                               # frames in the episode (as stored, after stride)
    first_page: int                               # the episode's first page in the volume
    boundaries: List[int]                         # per page: largest frame on it; num_frames = untagged
    provenance: List[Optional[str]]               # per boundary: 'hand' | 'proposed' | None (untagged)
    exclusions: List[Tuple[int, int]] = dataclasses.field(default_factory=list)  # [start, stop) without a page

    @property
    def page_range(self) -> Tuple[int, int]:
        """Half-open range of the volume's pages this episode covers."""
        return self.first_page, self.first_page + len(self.boundaries)

    def tagged(self) -> np.ndarray:
        return np.asarray(self.boundaries) < self.num_frames


def from_study_tags(tags: Sequence[int], episode: str, num_frames: int, first_page: int,
                    exclusions: Sequence[Tuple[int, int]] = (), provenance: str = "hand") -> PageFunction:
    """Import the study's list; tagged values get ``provenance``, untagged ones (== num_frames) None."""
    bounds = list(tags)
    ints("boundaries", bounds)
    return validate(PageFunction(episode, num_frames, first_page, bounds,
                                 [provenance if b < num_frames else None for b in bounds],
                                 [(int(a), int(b)) for a, b in exclusions]))


def proposed(episode: str, num_frames: int, first_page: int, boundaries: Sequence[int],
             exclusions: Sequence[Tuple[int, int]] = ()) -> PageFunction:
    """A validated page function whose every boundary was proposed automatically (``analysis.align``)."""
    bounds = [int(b) for b in boundaries]
    return validate(PageFunction(episode, num_frames, first_page, bounds, ["proposed"] * len(bounds),
                                 [(int(a), int(b)) for a, b in exclusions]))


def to_study_tags(pf: PageFunction) -> List[int]:
    return [int(b) for b in pf.boundaries]


def to_json(pf: PageFunction) -> dict:
    d = dataclasses.asdict(pf)
    d["exclusions"] = [list(r) for r in pf.exclusions]
    return d


def from_json(d: dict) -> PageFunction:
    """Our richer JSON back to a (validated) PageFunction; unknown or missing fields are named."""
    if not isinstance(d, dict):
        raise PageFunctionError("page function: expected a JSON object")
    unknown, missing = sorted(set(d) - set(FIELDS)), [f for f in FIELDS if f not in d]
    if unknown or missing:
        raise PageFunctionError(f"page function: unknown fields {unknown}, missing fields {missing}")
    try:
        exclusions = [(int(a), int(b)) for a, b in d["exclusions"]]
    except (TypeError, ValueError):
        raise PageFunctionError("exclusions: expected a list of [start, stop] frame pairs") from None
    return validate(PageFunction(d["episode"], d["num_frames"], d["first_page"], list(d["boundaries"]),
                                 list(d["provenance"]), exclusions))


def ints(name: str, values: Sequence) -> None:
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise PageFunctionError(f"{name}: expected whole numbers, got {list(values)}")


def validate(pf: PageFunction) -> PageFunction:
    """Check every rule, raising PageFunctionError with a one-line message naming the field; return pf."""
    ints("num_frames", [pf.num_frames])
    ints("first_page", [pf.first_page])
    ints("boundaries", pf.boundaries)
    if pf.num_frames < 1:
        raise PageFunctionError(f"num_frames: must be positive, got {pf.num_frames}")
    if pf.first_page < 0:
        raise PageFunctionError(f"first_page: must be >= 0, got {pf.first_page}")
    if not pf.boundaries:
        raise PageFunctionError("boundaries: an episode covers at least one page")
    b = np.asarray(pf.boundaries, np.int64)
    bad = np.flatnonzero((b < 0) | (b > pf.num_frames))
    if bad.size:
        i = int(bad[0])
        raise PageFunctionError(f"boundaries[{i}]: {b[i]} is outside frames 0..{pf.num_frames - 1} "
                                f"({pf.num_frames} = not tagged)")
    tagged = b[b < pf.num_frames]
    drop = np.flatnonzero(np.diff(tagged) < 0)
    if drop.size:
        where = np.flatnonzero(b < pf.num_frames)[drop[0] + 1]
        raise PageFunctionError(f"boundaries[{where}]: {b[where]} is before an earlier page's boundary "
                                f"{tagged[drop[0]]} (must be monotonic)")
    if len(pf.provenance) != len(b):
        raise PageFunctionError(f"provenance: {len(pf.provenance)} entries for {len(b)} boundaries")
    for i, (v, p) in enumerate(zip(b, pf.provenance)):
        if (p is None) != (v == pf.num_frames) or (p is not None and p not in PROVENANCE):
            raise PageFunctionError(f"provenance[{i}]: {p!r} must be one of {PROVENANCE} for a tagged "
                                    f"boundary and null for an untagged one")
    prev_stop = 0
    for i, (start, stop) in enumerate(pf.exclusions):
        if not 0 <= start < stop <= pf.num_frames:
            raise PageFunctionError(f"exclusions[{i}]: [{start}, {stop}) is not a range inside the episode's "
                                    f"frames [0, {pf.num_frames})")
        if start < prev_stop:
            raise PageFunctionError(f"exclusions[{i}]: [{start}, {stop}) overlaps or precedes the previous range")
        prev_stop = stop
    supported = np.flatnonzero(supported_mask(pf.num_frames, pf.exclusions))
    if supported.size and b[-1] < supported[-1]:
        raise PageFunctionError(f"boundaries[{len(b) - 1}]: the last page ends at frame {b[-1]} but frames up to "
                                f"{supported[-1]} are supported (exclude them or extend the last page)")
    return pf


def interpolate_untagged(boundaries: Sequence[int], num_frames: int,
                         exclusions: Sequence[Tuple[int, int]] = ()) -> np.ndarray:
    """The study's guess for untagged stretches: boundaries spaced linearly between the tagged ones,
    counting supported frames only.

    Excluded frames (intro, outro, recaps) have no page, so they take no share either: the pages
    between two anchors split the supported frames between them evenly. Anchors are the tagged
    boundaries, "before the first supported frame" and, when the last page is untagged, the last
    supported frame. Rounded, then made monotonic, so pages keep their order.
    """
    b = np.asarray(boundaries, np.int64)
    idx = np.arange(len(b))
    known = b < num_frames
    supported = np.flatnonzero(supported_mask(num_frames, exclusions))
    if supported.size == 0:  # nothing has a page anyway: spread over all frames
        supported = np.arange(num_frames)
    rank = np.searchsorted(supported, b[known], side="right") - 1  # each tagged boundary's supported index
    xs, ys = [-1] + list(idx[known]), [-1] + list(rank)
    if not known[-1]:
        xs, ys = xs + [len(b) - 1], ys + [len(supported) - 1]
    guess_rank = np.rint(np.interp(idx, xs, ys)).astype(np.int64)
    guess = np.where(guess_rank >= 0, supported[np.maximum(guess_rank, 0)], supported[0] - 1)
    return np.maximum.accumulate(np.where(known, b, guess))


def pages_of_frames(pf: PageFunction, frames: Sequence[int]) -> np.ndarray:
    """Page index of each frame (vectorised); -1 for excluded frames and frames after the last page.

    Untagged stretches use the linear-interpolation guess over the supported frames.
    """
    f = np.asarray(frames, np.int64)
    b = interpolate_untagged(pf.boundaries, pf.num_frames, pf.exclusions)
    pages = pf.first_page + np.searchsorted(b, f, side="left")
    mask = supported_mask(pf.num_frames, pf.exclusions)
    inside = (f >= 0) & (f < pf.num_frames)
    ok = inside & (f <= b[-1]) & mask[np.clip(f, 0, pf.num_frames - 1)]
    return np.where(ok, pages, -1)


def save(path: str, pf: PageFunction) -> None:
    write_json(path, to_json(validate(pf)))


def load(path: str) -> PageFunction:
    return from_json(read_json(path, PageFunctionError))


def save_study_tags(path: str, pf: PageFunction) -> None:
    write_json(path, to_study_tags(validate(pf)))


def load_study_tags(path: str, episode: str, num_frames: int, first_page: int,
                    exclusions: Sequence[Tuple[int, int]] = ()) -> PageFunction:
    tags = read_json(path, PageFunctionError)
    if not isinstance(tags, list):
        raise PageFunctionError(f"{path}: expected the study's JSON list of boundaries")
    return from_study_tags(tags, episode, num_frames, first_page, exclusions)
