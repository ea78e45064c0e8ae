"""The ``cuts`` and ``align`` commands: argument parsing and file I/O only.

    python dataset_tool_anime.py cuts --stores stores --out cuts [--truth series/ground_truth.json]
    python dataset_tool_anime.py align --stores stores --manga series/manga --out proposals --truth series/ground_truth.json
    python dataset_tool_anime.py align --stores stores --manga pages --out proposals --pages ep01=0:45 --exclude ep01=0:1800

The maths lives in manganime_ext.analysis.cuts and manganime_ext.analysis.align. Without --shard, outputs
appear all at once (temp folder, renamed at the end) and an existing output is refused unless --force;
with --shard I/N (stores in name order, every N-th from the I-th) episodes appear one by one in a shared
folder, done ones are skipped unless --force, and the report is report-<I>of<N>.json over the shard's
episodes.
"""

import os
import re
from typing import Dict, List, Tuple

import click
import numpy as np
import PIL.Image

from manganime_ext.analysis import align as align_lib
from manganime_ext.analysis import cuts as cuts_lib
from manganime_ext.cli.errors import UserError, user_errors
from manganime_ext.cli.shard import SHARD_HELP, shard_option
from manganime_ext.data import page_function
from manganime_ext.io.frame_store import HEADER, FrameStore
from manganime_ext.io.json_files import JSONFileError, read_json, write_json
from manganime_ext.io.manga import list_pages
from manganime_ext.io.outputs import episode_outputs, select_shard


def _stores(folder: str) -> Dict[str, FrameStore]:
    """Stores by episode name: ``folder`` itself if it is a store, else each store inside it."""
    if os.path.isfile(os.path.join(folder, HEADER)):
        names = {os.path.basename(os.path.abspath(folder)): folder}
    elif os.path.isdir(folder):
        names = {n: os.path.join(folder, n) for n in sorted(os.listdir(folder))
                 if os.path.isfile(os.path.join(folder, n, HEADER))}
    else:
        raise UserError(f"--stores {folder}: no such folder")
    if not names:
        raise UserError(f"--stores {folder}: no frame stores in it (write them with the frames command)")
    return {n: FrameStore(p) for n, p in names.items()}  # an unreadable store: VideoError, one line


def _in_shard(stores: Dict[str, FrameStore], shard) -> Dict[str, FrameStore]:
    """The stores that fall to this shard (all of them without one), in name order."""
    return {n: stores[n] for n in select_shard(sorted(stores), shard)}


def _done_cuts(path: str) -> List[int]:
    """The cuts of an episode a sharded rerun skips, read back for the report."""
    cuts = _read_json(path, "--out")
    if not isinstance(cuts, dict) or not isinstance(cuts.get("cuts"), list):
        raise UserError(f"--out {path}: not a cuts file (remove it or use --force)")
    return cuts["cuts"]


def _read_json(path: str, flag: str):
    try:
        return read_json(path)
    except JSONFileError as e:
        raise UserError(f"{flag} {e}") from None


def _synthetic_truth(path: str) -> Dict[str, dict]:
    """The synthetic series' ground truth, per episode by file stem (source-frame indices)."""
    truth = _read_json(path, "--truth")
    try:
        return {os.path.splitext(os.path.basename(ep["file"]))[0]: ep for ep in truth["episodes"]}
    except (TypeError, KeyError) as e:
        raise UserError(f"--truth {path}: expected the synthetic series' ground_truth.json (missing {e})") from None


def _cut_truth(path: str, stores: Dict[str, FrameStore]) -> Dict[str, List[int]]:
    """True cuts in stored frames: from a synthetic ground_truth.json, or a user's {episode: [cut frames]}."""
    data = _read_json(path, "--truth")
    if isinstance(data, dict) and "episodes" in data:
        eps = _synthetic_truth(path)
        return {n: cuts_lib.truth_in_store_frames(eps[n].get("cuts", []), s.stride, s.source_start)
                for n, s in stores.items() if n in eps}
    if isinstance(data, dict) and all(isinstance(v, list) and all(isinstance(c, int) for c in v)
                                      for v in data.values()):
        return {n: sorted(v) for n, v in data.items() if n in stores}
    raise UserError(f"--truth {path}: expected ground_truth.json or an object {{episode: [cut frames]}}")


@click.command(name="cuts")
@click.option("--stores", required=True, type=click.Path(), help="A frame store, or a folder of them (frames --out).")
@click.option("--out", required=True, type=click.Path(), help="Output folder: <episode>.json per store (+ report.json).")
@click.option("--method", default="adaptive", show_default=True, type=click.Choice(cuts_lib.METHODS),
              help="adaptive: rho against its neighbourhood; cosine: the study's fixed rho < cutoff.")
@click.option("--cutoff", default=0.8, show_default=True, type=click.FloatRange(0, 1), help="cosine: the cutoff.")
@click.option("--window", default=8, show_default=True, type=click.IntRange(min=2), help="adaptive: +-pairs judged.")
@click.option("--ratio", default=cuts_lib.RATIO, show_default=True, type=click.FloatRange(min=1),
              help="adaptive: how far 1 - rho must stand above the local level.")
@click.option("--min-drop", default=cuts_lib.MIN_DROP, show_default=True, type=click.FloatRange(0, 1),
              help="adaptive: smallest 1 - rho that can be a cut.")
@click.option("--min-gap", default=4, show_default=True, type=click.IntRange(min=1),
              help="adaptive: fewest frames between two cuts.")
@click.option("--rho-only", is_flag=True,
              help="adaptive: judge rho alone (--ratio, --min-drop); by default a looser rho rule proposes pairs "
                   "and the stored frames confirm them (camera motion matched away).")
@click.option("--truth", default=None, type=click.Path(),
              help="ground_truth.json of the synthetic series, or {episode: [cut frames]}: writes a precision/recall report.")
@click.option("--tolerance", default=1, show_default=True, type=click.IntRange(min=0), help="Report: +-frames a hit may be off.")
@click.option("--force", is_flag=True, help="Replace an existing output folder (with --shard: redo its episodes).")
@shard_option
@user_errors
def cuts_cmd(stores, out, method, cutoff, window, ratio, min_drop, min_gap, rho_only, truth, tolerance, force,
             shard) -> None:
    """Detect shot cuts (candidate page boundaries) from each store's rho."""
    every = _stores(stores)
    found = _in_shard(every, shard)
    truth_cuts = _cut_truth(truth, every) if truth else None
    if truth_cuts is not None and not truth_cuts:
        raise UserError(f"--truth {truth}: none of the episodes {sorted(every)} is in it")
    truth_cuts = {n: t for n, t in (truth_cuts or {}).items() if n in found}
    verify = method == "adaptive" and not rho_only
    if method == "cosine":
        params = dict(cutoff=cutoff)
    elif verify:
        params = dict(window=window, min_gap=min_gap, verified=True, propose=cuts_lib.PROPOSE,
                      min_change=cuts_lib.MIN_CHANGE)
    else:
        params = dict(window=window, ratio=ratio, min_drop=min_drop, min_gap=min_gap)
    detected = {}
    with episode_outputs(out, shard, force) as dest:
        for n, s in found.items():
            if dest.done(n, f"{n}.json"):
                detected[n] = _done_cuts(os.path.join(dest.out, f"{n}.json"))
                continue
            detected[n] = cuts_lib.detect(s.rho, method, cutoff=cutoff, window=window, ratio=ratio, min_drop=min_drop,
                                          min_gap=min_gap, frames=s.frames if verify else None)
            with dest.episode(n) as folder:
                write_json(os.path.join(folder, f"{n}.json"), dict(episode=n, frames=len(s), method=method,
                                                                   params=params, cuts=detected[n]))
            click.echo(f"{n}: {len(detected[n])} cuts")
        if truth_cuts:
            report = {n: cuts_lib.match(detected[n], t, tolerance) for n, t in truth_cuts.items()}
            report["all"] = cuts_lib.match_all([(detected[n], t) for n, t in truth_cuts.items()], tolerance)
            write_json(dest.report, dict(method=method, params=params, tolerance=tolerance, episodes=report))
    if truth_cuts:
        r = report["all"]
        click.echo(f"precision {r['precision']:.3f} recall {r['recall']:.3f} f1 {r['f1']:.3f} "
                   f"({r['true_positives']}/{r['truth']} true cuts, {r['predicted']} detected, +-{tolerance} frames)")


def _manga_pages(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        raise UserError(f"--manga {folder}: no such folder")
    pages = list_pages(folder)
    if not pages:
        raise UserError(f"--manga {folder}: no page images in it")
    return pages


def _load_page(path: str) -> np.ndarray:
    try:
        with PIL.Image.open(path) as img:
            return np.asarray(img.convert("L"))
    except (OSError, ValueError) as e:
        raise UserError(f"--manga {path}: not a readable image ({e})") from None


def _ranges(values: Tuple[str, ...], flag: str) -> Dict[str, List[Tuple[int, int]]]:
    """``EPISODE=A:B`` options as {episode: [(A, B), ...]} (half-open)."""
    out: Dict[str, List[Tuple[int, int]]] = {}
    for v in values:
        m = re.fullmatch(r"(.+)=(\d+):(\d+)", v)
        if not m or int(m[2]) >= int(m[3]):
            raise UserError(f"{flag} {v}: expected EPISODE=START:STOP with START < STOP")
        out.setdefault(m[1], []).append((int(m[2]), int(m[3])))
    return out


@click.command(name="align")
@click.option("--stores", required=True, type=click.Path(), help="A frame store, or a folder of them (frames --out).")
@click.option("--manga", required=True, type=click.Path(), help="Folder of the volume's page images (natural order).")
@click.option("--out", required=True, type=click.Path(),
              help="Output folder: <episode>.json (page function) and <episode>.tags.json (study's format).")
@click.option("--pages", "page_opts", multiple=True,
              help="EPISODE=FIRST:STOP, the episode's page range [FIRST, STOP) (half-open, like a slice).")
@click.option("--exclude", multiple=True,
              help="EPISODE=START:STOP, stored frames [START, STOP) without a page (repeatable).")
@click.option("--truth", default=None, type=click.Path(),
              help="Synthetic ground_truth.json: page ranges and intro/outro from it, plus a +-tolerance report.")
@click.option("--step", default=4, show_default=True, type=click.IntRange(min=1), help="Score every k-th frame.")
@click.option("--tolerance", default=12, show_default=True, type=click.IntRange(min=0), help="Report: +-frames.")
@click.option("--force", is_flag=True, help="Replace an existing output folder (with --shard: redo its episodes).")
@shard_option
@user_errors
def align_cmd(stores, manga, out, page_opts, exclude, truth, step, tolerance, force, shard) -> None:
    """Propose each episode's page function (provenance 'proposed') for a person to confirm."""
    found, pages = _in_shard(_stores(stores), shard), _manga_pages(manga)
    ranges = {n: r[-1] for n, r in _ranges(page_opts, "--pages").items()}
    exclusions = _ranges(exclude, "--exclude")
    eps = _synthetic_truth(truth) if truth else {}
    plans = {}
    for n, s in found.items():
        stride, start = s.stride, s.source_start
        true_bounds = None
        if n in eps and n not in ranges:
            ranges[n] = tuple(eps[n]["page_range"])
            true_bounds, excl = align_lib.truth_in_store_frames(eps[n], len(s), stride, start)
            exclusions.setdefault(n, excl)
        if n not in ranges:
            raise UserError(f"--pages: no page range for episode {n} (give --pages {n}=FIRST:STOP or --truth)")
        first, stop = ranges[n]
        if stop > len(pages):
            raise UserError(f"--pages {n}={first}:{stop}: the volume in {manga} has {len(pages)} pages")
        plans[n] = (first, stop, exclusions.get(n, []), true_bounds)
    hits, total = 0, 0
    with episode_outputs(out, shard, force) as dest:
        for n, (first, stop, excl, true_bounds) in plans.items():
            if dest.done(n, f"{n}.json", f"{n}.tags.json"):
                boundaries = _done_boundaries(os.path.join(dest.out, f"{n}.json"))
            else:
                pf = _propose(found[n], n, [_load_page(p) for p in pages[first:stop]], first, excl, step)
                with dest.episode(n) as folder:
                    page_function.save(os.path.join(folder, f"{n}.json"), pf)
                    page_function.save_study_tags(os.path.join(folder, f"{n}.tags.json"), pf)
                boundaries = pf.boundaries
            if true_bounds is not None:
                h = align_lib.boundary_hits(boundaries, true_bounds, tolerance)
                hits, total = hits + h, total + len(true_bounds)
                click.echo(f"{n}: {h}/{len(true_bounds)} boundaries within +-{tolerance} frames of the truth")
        if total:
            write_json(dest.report, dict(tolerance=tolerance, hits=hits, boundaries=total, share=hits / total))
    if total:
        click.echo(f"all: {hits}/{total} = {hits / total:.1%} of boundaries within +-{tolerance} frames")


def _propose(store: FrameStore, name: str, pages: List[np.ndarray], first: int, exclusions, step: int):
    try:
        boundaries = align_lib.propose(store.frames, store.rho, pages, exclusions, step)
        return page_function.proposed(name, len(store), first, boundaries, exclusions)
    except (ValueError, page_function.PageFunctionError) as e:
        raise UserError(f"--stores {name}: {e}") from None


def _done_boundaries(path: str) -> List[int]:
    """The boundaries of an episode a sharded rerun skips, read back for the report."""
    try:
        return page_function.load(path).boundaries
    except page_function.PageFunctionError as e:
        raise UserError(f"--out {path}: {e} (remove it or use --force)") from None


cuts_cmd.help += SHARD_HELP
align_cmd.help += SHARD_HELP
