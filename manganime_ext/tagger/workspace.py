"""A series as the tagger holds it: per episode its frame store, page function, cuts, proposal and history.

Never lose work: every change (tag, nudge, accept, undo, redo) is written at once, atomically, in the
page-function format (``data.page_function.save``: temp file, fsync, rename), so a reload or a crash
loses nothing and a reader never sees half a file. An episode the config gives no ``page_function``
gets ``tags/<episode>.json`` beside the config on its first change, and the config is rewritten
(atomically, every other field kept) to name it, so ``check`` and the exports find the tags.

Two writers: each episode carries a revision, bumped by every change. A client sends the revision
its view was based on; a stale one (another tab changed the episode meanwhile) is refused with a
conflict, and the client reloads the current state. A file changed on disk behind our back (a
second tagger process, a hand edit) is noticed by its size and mtime before each write: it is read
back, the history is dropped, and the change is refused as a conflict too. Either way the file
always holds one consistent, valid page function.
"""

import dataclasses
import os
import re
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from manganime_ext.analysis import cuts as cuts_lib
from manganime_ext.data import page_function
from manganime_ext.data.page_function import PageFunction, PageFunctionError
from manganime_ext.data.series_config import Series, SeriesConfigError, open_episode
from manganime_ext.io.frame_store import FrameStore
from manganime_ext.io.json_files import read_json, write_json
from manganime_ext.tagger import edits
from manganime_ext.tagger.edits import EditRefused

ACTIONS = ("tag", "untag", "nudge", "accept", "accept_all", "undo", "redo")
HISTORY = 1000  # undo steps kept per episode


class Conflict(RuntimeError):
    """The episode changed elsewhere (another tab or process) since the client's view; reload and retry."""


class TaggerError(ValueError):
    """A series the tagger cannot open (missing cuts or proposal files, mismatched ones); one line."""


def _file_stamp(path: Optional[str]) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except (OSError, TypeError):
        return None


@dataclasses.dataclass
class EpisodeState:
    """One episode open in the tagger (everything the page shows, and the undo history)."""

    index: int
    name: str
    store: FrameStore
    pf: PageFunction
    path: str                                  # where the page function is saved
    cuts: Optional[List[int]]                  # first frames of shots (None: detected when first shown)
    proposal: Optional[List[int]]              # align's boundaries, one per page (None: no proposal)
    revision: int = 0
    undo: List[PageFunction] = dataclasses.field(default_factory=list)
    redo: List[PageFunction] = dataclasses.field(default_factory=list)
    stamp: Optional[Tuple[int, int]] = None    # (size, mtime_ns) of the file as we last read or wrote it


class Workspace:
    """The series being tagged. Thread-safe: the HTTP server calls it from one thread per request."""

    def __init__(self, series: Series, cuts: Optional[Dict[str, List[int]]] = None,
                 proposals: Optional[str] = None, tags_dir: Optional[str] = None):
        self.series = series
        self.tags_dir = tags_dir or os.path.join(os.path.dirname(series.path), "tags")
        self._lock = threading.Lock()
        self.episodes: List[EpisodeState] = []
        for ep in series.episodes:
            store, pf = open_episode(series, ep)
            path = ep.page_function or os.path.join(self.tags_dir, tags_file(ep.name, ep.index))
            if ep.page_function is None and os.path.exists(path):  # never overwrite tags the config forgot
                raise TaggerError(f"{path} exists but {series.path} names no page_function for episode {ep.name}: "
                                  f"add \"page_function\" to it, or move the file away")
            ep_cuts = cuts.get(ep.name) if cuts else None
            proposal = self._proposal(proposals, ep.name, pf) if proposals else None
            self.episodes.append(EpisodeState(ep.index, ep.name, store, pf, path,
                                              None if ep_cuts is None else _in_range(ep_cuts, len(store)), proposal,
                                              stamp=_file_stamp(ep.page_function)))

    @staticmethod
    def _proposal(folder: str, name: str, pf: PageFunction) -> Optional[List[int]]:
        """The ``align`` stage's proposal for one episode, checked against the episode (None if absent)."""
        if not os.path.isdir(folder):
            raise TaggerError(f"--proposals {folder}: no such folder (the align command's --out)")
        path = os.path.join(folder, f"{name}.json")
        if not os.path.exists(path):
            return None
        try:
            prop = page_function.load(path)
        except PageFunctionError as e:
            raise TaggerError(f"--proposals {path}: {e}") from None
        if prop.num_frames != pf.num_frames or prop.page_range != pf.page_range:
            raise TaggerError(f"--proposals {path}: covers {prop.num_frames} frames and pages "
                              f"[{prop.page_range[0]}, {prop.page_range[1]}), the episode {pf.num_frames} frames "
                              f"and pages [{pf.page_range[0]}, {pf.page_range[1]})")
        return [b if b < pf.num_frames else pf.num_frames for b in prop.boundaries]

    def episode(self, index: int) -> EpisodeState:
        return self.episodes[index]

    # --- reading -------------------------------------------------------------------------------------

    def state(self, index: int) -> dict:
        """Everything the page needs to draw an episode (JSON-ready)."""
        with self._lock:
            return self._state(self.episodes[index])

    @staticmethod
    def _state(ep: EpisodeState) -> dict:
        if ep.cuts is None:  # no cut list given: the cuts command's default detector, on the store itself
            ep.cuts = _in_range(cuts_lib.detect(ep.store.rho, frames=ep.store.frames), len(ep.store))
        pf = ep.pf
        guess = page_function.interpolate_untagged(pf.boundaries, pf.num_frames, pf.exclusions)
        frame = ep.store.frames.shape
        return dict(index=ep.index, name=ep.name, frames=pf.num_frames, width=int(frame[2]), height=int(frame[1]),
                    fps=ep.store.header.get("fps"), first_page=pf.first_page, boundaries=list(pf.boundaries),
                    provenance=list(pf.provenance), guess=[int(g) for g in guess],
                    exclusions=[list(r) for r in pf.exclusions], cuts=ep.cuts, proposal=ep.proposal,
                    stops=[int(s) for s in shot_ends(ep.cuts, pf.num_frames, pf.exclusions)],
                    revision=ep.revision, can_undo=bool(ep.undo), can_redo=bool(ep.redo), file=ep.path)

    def progress(self) -> List[dict]:
        """Per episode: pages, pages tagged by hand, pages taken from a proposal unreviewed."""
        with self._lock:
            return [dict(index=ep.index, name=ep.name, pages=len(ep.pf.boundaries),
                         hand=sum(p == "hand" for p in ep.pf.provenance),
                         proposed=sum(p == "proposed" for p in ep.pf.provenance)) for ep in self.episodes]

    # --- writing -------------------------------------------------------------------------------------

    def apply(self, index: int, action: str, revision: int, page: Optional[int] = None,
              frame: Optional[int] = None, delta: Optional[int] = None) -> dict:
        """Apply one action based on the client's ``revision``; save; return the new state.

        Raises ``EditRefused`` (the rule it breaks) or ``Conflict`` (stale view; nothing is written).
        """
        with self._lock:
            ep = self.episodes[index]
            self._check_disk(ep)
            if revision != ep.revision:
                raise Conflict(f"{ep.name} was changed in another tab or window (revision {ep.revision}, this "
                               f"view had {revision}); showing the current tags")
            if action == "undo":
                if not ep.undo:
                    raise EditRefused("nothing to undo")
                new, undo, redo = ep.undo[-1], ep.undo[:-1], ep.redo + [ep.pf]
            elif action == "redo":
                if not ep.redo:
                    raise EditRefused("nothing to redo")
                new, undo, redo = ep.redo[-1], ep.undo + [ep.pf], ep.redo[:-1]
            else:
                new, undo, redo = self._edit(ep, action, page, frame, delta), (ep.undo + [ep.pf])[-HISTORY:], []
            self._save(ep, new)  # first the file; the history changes only once it holds the new tags
            ep.undo, ep.redo = undo, redo
            return self._state(ep)

    @staticmethod
    def _edit(ep: EpisodeState, action: str, page, frame, delta) -> PageFunction:
        if action == "accept_all":
            if ep.proposal is None:
                raise EditRefused(f"{ep.name} has no proposal (start the tagger with --proposals)")
            return edits.accept_all(ep.pf, ep.proposal)
        if not isinstance(page, int) or isinstance(page, bool):
            raise EditRefused(f"{action}: expected the page as a whole number, got {page!r}")
        if action == "tag":
            return edits.tag(ep.pf, page, frame)
        if action == "untag":
            return edits.untag(ep.pf, page)
        if action == "nudge":
            if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
                raise EditRefused(f"nudge: expected a non-zero whole number of frames, got {delta!r}")
            return edits.nudge(ep.pf, page, delta)
        if action == "accept":
            if ep.proposal is None:
                raise EditRefused(f"{ep.name} has no proposal (start the tagger with --proposals)")
            return edits.accept(ep.pf, ep.proposal, page)
        raise EditRefused(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")

    def _check_disk(self, ep: EpisodeState) -> None:
        """Reload an episode whose file changed behind our back, and refuse the change as a conflict."""
        stamp = _file_stamp(ep.path)
        if stamp == ep.stamp:
            return
        if stamp is None:  # our file vanished: keep our state, the next save writes it again
            ep.stamp = None
            return
        try:
            disk = page_function.load(ep.path)
            page_function.validate(dataclasses.replace(disk, exclusions=list(ep.pf.exclusions)))
        except PageFunctionError:
            return  # not ours to repair: the next save replaces it with a valid file, atomically
        if disk.num_frames != ep.pf.num_frames or disk.page_range != ep.pf.page_range:
            return
        ep.pf = dataclasses.replace(disk, exclusions=list(ep.pf.exclusions))
        ep.undo, ep.redo, ep.stamp = [], [], stamp
        ep.revision += 1
        raise Conflict(f"{ep.path} was changed by another program (another tagger?); reloaded it, showing its tags")

    def _save(self, ep: EpisodeState, pf: PageFunction) -> None:
        os.makedirs(os.path.dirname(ep.path), exist_ok=True)
        page_function.save(ep.path, pf)
        if self.series.episodes[ep.index].page_function is None:
            self._name_in_config(ep)
        ep.pf, ep.stamp = pf, _file_stamp(ep.path)
        ep.revision += 1

    def _name_in_config(self, ep: EpisodeState) -> None:
        """Point the config's episode at its new tags file (the config rewritten atomically, all else kept)."""
        config = read_json(self.series.path, SeriesConfigError)
        entry = config["episodes"][ep.index]
        entry["page_function"] = os.path.relpath(ep.path, os.path.dirname(self.series.path))
        write_json(self.series.path, config)
        self.series.episodes[ep.index] = dataclasses.replace(self.series.episodes[ep.index], page_function=ep.path)


def _in_range(cuts: Sequence[int], num_frames: int) -> List[int]:
    return sorted(int(c) for c in cuts if 0 < c < num_frames)


def tags_file(name: str, index: int) -> str:
    """The file name for an episode's new tags: its name where that is a plain file name, else a safe
    version of it plus the episode's index (a name with '/' or '..' must not reach outside tags/)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return f"{name}.json" if safe == name else f"{safe or 'episode'}-{index}.json"


def shot_ends(cuts: Sequence[int], num_frames: int, exclusions: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """Frames where a page can end: the last frame of every shot and of every stretch before an exclusion.

    The page shows the same list, so the keys that jump between cuts stop where tags go.
    """
    ends = {c - 1 for c in cuts if 0 < c <= num_frames}
    ends |= {start - 1 for start, _ in exclusions if start > 0}
    ends.add(num_frames - 1)
    return np.array(sorted(ends), np.int64)
