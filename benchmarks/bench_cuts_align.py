"""cuts and align benchmark on a synthetic series: cut precision/recall (both methods), boundary share, timings.

    python benchmarks/bench_cuts_align.py [--episodes 2 --seconds 30 --resolution 64 --stride 1]

Writes the series and its frame stores to a temp folder, then times the detectors on each store's rho
and the page-function proposal per episode, against the series' ground truth (cuts +-1 frame,
boundaries +-12 frames).
"""

import glob
import os
import tempfile
import time

import click
import numpy as np
import PIL.Image

from manganime_ext.analysis import align, cuts, decode
from manganime_ext.io.frame_store import FrameStore
from manganime_ext.synthetic import anime


@click.command()
@click.option("--episodes", default=2, show_default=True)
@click.option("--seconds", default=30.0, show_default=True)
@click.option("--resolution", default=64, show_default=True)
@click.option("--stride", default=1, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--step", default=4, show_default=True, help="align: score every k-th frame.")
def main(episodes, seconds, resolution, stride, seed, step) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        truth = anime.write_series(os.path.join(tmp, "series"), episodes=episodes, seconds=seconds,
                                   resolution=resolution, seed=seed)
        pages = [np.asarray(PIL.Image.open(p)) for p in sorted(glob.glob(os.path.join(tmp, "series", "manga", "*.png")))]
        pairs = {m: [] for m in cuts.METHODS}
        times = {m: 0.0 for m in cuts.METHODS}
        hits = total = frames = 0
        align_time = 0.0
        for e, ep in enumerate(truth["episodes"]):
            folder = os.path.join(tmp, f"store{e}")
            decode.write_episode(folder, os.path.join(tmp, "series", ep["file"]), resolution, stride=stride)
            store = FrameStore(folder)
            frames += len(store)
            true_cuts = cuts.truth_in_store_frames(ep["cuts"], stride)
            for m in cuts.METHODS:
                t = time.perf_counter()
                found = cuts.detect(store.rho, m)
                times[m] += time.perf_counter() - t
                pairs[m].append((found, true_cuts))
            bounds, excl = align.truth_in_store_frames(ep, len(store), stride)
            a, b = ep["page_range"]
            t = time.perf_counter()
            proposed = align.propose(store.frames, store.rho, pages[a:b], excl, step)
            align_time += time.perf_counter() - t
            hits, total = hits + align.boundary_hits(proposed, bounds), total + len(bounds)
    print(f"series: {episodes} episodes x {seconds:g} s at {resolution} px, stride {stride}: {frames} frames, "
          f"{total} pages")
    for m in cuts.METHODS:
        r = cuts.match_all(pairs[m])
        print(f"cuts {m:8s}: precision {r['precision']:.3f} recall {r['recall']:.3f} f1 {r['f1']:.3f} "
              f"({r['true_positives']}/{r['truth']} cuts, {r['predicted']} detected, +-1 frame); "
              f"{times[m] * 1e3:.1f} ms = {frames / max(times[m], 1e-9):,.0f} frames/s")
    print(f"align: {hits}/{total} = {hits / total:.1%} of boundaries within +-12 frames; "
          f"{align_time:.2f} s = {frames / align_time:,.0f} frames/s (step {step})")


if __name__ == "__main__":
    main()
