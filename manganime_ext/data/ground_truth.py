"""The synthetic series' ground truth as a series config: page functions, exclusions and cuts per store.

``synth`` writes ``ground_truth.json`` in the video's own frame numbers; frame stores keep every
``stride``-th frame. This converts the truth to store frame numbers with the same functions the
``cuts``/``align`` reports use (a boundary, the last frame on a page, becomes the last stored frame at
or before it; a range ``[start, stop)`` keeps the stored frames inside it; a cut, the first frame of a
new shot, becomes the first stored frame at or after it) and
writes what the rest of the pipeline reads: ``series.json``, one page-function JSON per episode
(provenance ``hand``: the truth stands for a person's tags) and ``cuts.json`` (``{episode: [stored frames]}``, what ``--cuts`` takes).
The demo and the benchmarks use it so that they measure training, not tagging.
"""

import os
from typing import Dict, List, Tuple

from manganime_ext.analysis import align, cuts
from manganime_ext.data import page_function
from manganime_ext.data.page_function import PageFunction
from manganime_ext.io.frame_store import FrameStore
from manganime_ext.io.json_files import read_json, write_json
from manganime_ext.io.outputs import atomic_output_dir


class GroundTruthError(ValueError):
    """A series folder or store that does not match the ground truth; one line naming it."""


def episode_truth(ep: dict, store: FrameStore, name: str) -> Tuple[PageFunction, List[int]]:
    """(page function, cuts) of one ground-truth episode, in the frame numbers of its ``store``."""
    stored = len(store)
    boundaries, exclusions = align.truth_in_store_frames(ep, stored, store.stride, store.source_start)
    pf = page_function.from_study_tags(boundaries, name, stored, ep["page_range"][0], exclusions)
    stored_cuts = cuts.truth_in_store_frames(ep["cuts"], store.stride, store.source_start)
    return pf, [c for c in stored_cuts if c < stored]


def write_truth_config(series_dir: str, stores_dir: str, out: str, force: bool = False) -> Dict[str, int]:
    """Write folder ``out`` with ``series.json``, ``tags/<episode>.json`` and ``cuts.json`` for the stores in
    ``stores_dir`` (named after the episode files, as ``frames`` names them); returns frames per episode."""
    truth_path = os.path.join(series_dir, "ground_truth.json")
    truth = read_json(truth_path, GroundTruthError)
    episodes: List[dict] = []
    cuts_of: Dict[str, List[int]] = {}
    counts: Dict[str, int] = {}
    pfs: List[Tuple[str, PageFunction]] = []
    for ep in truth["episodes"]:
        name = os.path.splitext(os.path.basename(ep["file"]))[0]
        store_path = os.path.join(stores_dir, name)
        if not os.path.isdir(store_path):
            raise GroundTruthError(f"{store_path}: no frame store for episode {name} (run frames on {series_dir}/episodes)")
        store = FrameStore(store_path)
        pf, cuts_of[name] = episode_truth(ep, store, name)
        pfs.append((name, pf))
        counts[name] = len(store)
        episodes.append(dict(name=name, video=os.path.abspath(os.path.join(series_dir, ep["file"])),
                             store=os.path.abspath(store_path), volume="manga", page_range=list(ep["page_range"]),
                             page_function=f"tags/{name}.json", exclusions=[list(r) for r in pf.exclusions]))
    config = dict(volumes=[dict(name="manga", pages=os.path.abspath(os.path.join(series_dir, "manga")))],
                  episodes=episodes)
    with atomic_output_dir(out, force) as tmp:
        os.makedirs(os.path.join(tmp, "tags"))
        for name, pf in pfs:
            page_function.save(os.path.join(tmp, "tags", f"{name}.json"), pf)
        write_json(os.path.join(tmp, "cuts.json"), cuts_of)
        write_json(os.path.join(tmp, "series.json"), config)
    return counts

