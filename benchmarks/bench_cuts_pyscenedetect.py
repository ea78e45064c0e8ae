"""Shot cuts, ours against PySceneDetect's AdaptiveDetector: precision/recall/F1 and frames/s on the same videos.

    python benchmarks/bench_cuts_pyscenedetect.py [--episodes 2 --seconds 30 --resolution 128 --seed 1
                                                   --photos 5 --shot-seconds 3 --clip-size 384 --repeat 3]

Needs the benchmark-only packages in requirements-bench.txt (``make bench-cuts`` installs them and runs this).

AdaptiveDetector is the peer to beat on accuracy. On speed, the claim to check is that ours is cheaper
because rho is computed in the pass that decodes an episode into its frame store, which the pipeline
makes anyway: so both the end-to-end time and the marginal time of ``cuts.detect`` alone are printed.
Two data sets, written to a temp folder as H.264 mp4 with their true cuts known by construction:

- the synthetic series (``anime.write_series``; its resolution is the episodes' square frame size);
- a clip of camera pans and zooms over real photographs (those in scikit-image's wheel), hard cuts
  between photos: motion that fires a fixed threshold, which both adaptive detectors must ride out.

Both sides are timed end to end on each video. Ours: ``decode.write_episode`` (ffmpeg decode to
--resolution, store, rho in the same pass) + ``cuts.detect(rho, "adaptive")``. PySceneDetect:
``open_video`` + ``SceneManager`` with ``AdaptiveDetector()`` at its defaults (OpenCV backend), as
``scenedetect.detect`` runs it, at its automatic downscale and again at the downscale that matches our
--resolution where that differs. Each time is the fastest of --repeat runs. Cuts are scored with
``cuts.match_all``, +-1 frame.
"""

import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import click
import numpy as np
import PIL.Image

try:
    import cv2
    import scenedetect
    from scenedetect import AdaptiveDetector, SceneManager, open_video
    from scenedetect.scene_manager import compute_downscale_factor
except ImportError as e:  # also a cv2 that needs a missing libGL: the hint names the headless build
    sys.exit(f"bench_cuts_pyscenedetect: cannot import PySceneDetect/OpenCV ({e}); "
             f"install the benchmark-only packages: .venv/bin/python -m pip install -r requirements-bench.txt")

# Imported after the check above, so a missing benchmark package is reported first.
from manganime_ext.analysis import cuts, decode  # noqa: E402
from manganime_ext.io.frame_store import FrameStore  # noqa: E402
from manganime_ext.io.video import write_mp4  # noqa: E402
from manganime_ext.synthetic import anime, photo_clip  # noqa: E402

FPS = 24
# Colour and greyscale photographs bundled in scikit-image's wheel; the first five are tests/test_cuts.py's.
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png", "moon.png")


def write_photo_clip(path: str, photos: int, shot_frames: int, size: int) -> List[int]:
    """Write the photo clip (one shot per photo, pans and zooms alternating) as mp4; return its true cuts.

    Encoded like the synthetic series (H.264, CRF 18, yuv420p), so both data sets carry the same kind
    of codec noise into both detectors.
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        sys.exit("bench_cuts_pyscenedetect: the photo clip needs scikit-image's bundled photos; "
                 "install requirements-dev.txt")
    folder = os.path.join(os.path.dirname(spec.origin), "data")
    images = [np.asarray(PIL.Image.open(os.path.join(folder, name)).convert("RGB")) for name in PHOTOS[:photos]]
    write_mp4(path, photo_clip.clip_frames(images, shot_frames, size), FPS)
    return photo_clip.true_cuts(photos, shot_frames)


def ours(video: str, resolution: int, folder: str) -> Tuple[List[int], float, float, int]:
    """(cuts, seconds end to end, seconds of ``cuts.detect`` alone, frames) for our pipeline on ``video``.

    The store is written to ``folder`` (which must not exist) and removed afterwards, outside the timing.
    """
    t0 = time.perf_counter()
    decode.write_episode(folder, video, resolution, stride=1)
    store = FrameStore(folder)
    t1 = time.perf_counter()
    found = cuts.detect(store.rho, "adaptive")
    t2 = time.perf_counter()
    frames = len(store)
    del store
    shutil.rmtree(folder)
    return found, t2 - t0, t2 - t1, frames


def pyscenedetect(video: str, downscale: Optional[int]) -> Tuple[List[int], float]:
    """(cuts, seconds end to end) for AdaptiveDetector() on ``video``; ``downscale`` None = its automatic choice.

    A cut is the first frame of each scene after the first, the convention of ``cuts`` and the truth.
    """
    t = time.perf_counter()
    manager = SceneManager()
    if downscale is not None:
        manager.auto_downscale = False
        manager.downscale = downscale
    manager.add_detector(AdaptiveDetector())
    manager.detect_scenes(open_video(video))
    scenes = manager.get_scene_list()
    return [start.frame_num for start, _ in scenes if start.frame_num > 0], time.perf_counter() - t


def settings(width: int, resolution: int) -> Dict[str, Optional[int]]:
    """PySceneDetect runs for a ``width`` px video: label -> downscale (None = auto), auto first.

    Auto processes at least 256 px wide; the matched run brings frames to about our --resolution, and
    is left out where auto already does (e.g. the 128 px series, which auto leaves unscaled).
    """
    auto_px = round(width / compute_downscale_factor(width))
    factor = max(1, round(width / resolution))
    runs: Dict[str, Optional[int]] = {f"pyscenedetect auto ({auto_px} px)": None}
    if round(width / factor) != auto_px:
        runs[f"pyscenedetect matched ({round(width / factor)} px, downscale {factor})"] = factor
    return runs


def report(label: str, pairs: Sequence[Tuple[List[int], List[int]]], seconds: float, frames: int,
           extra: str = "") -> float:
    """Print one detector's line (scores pooled over videos, +-1 frame; speed); return its frames/s."""
    r = cuts.match_all(pairs, tolerance=1)
    fps = frames / max(seconds, 1e-9)
    print(f"  {label:44s}: precision {r['precision']:.3f} recall {r['recall']:.3f} f1 {r['f1']:.3f} "
          f"({r['true_positives']}/{r['truth']} cuts, {r['predicted']} detected); "
          f"{seconds:.2f} s = {fps:,.0f} frames/s{extra}")
    return fps


def compare(title: str, videos: Sequence[Tuple[str, List[int]]], width: int, resolution: int, repeat: int,
            tmp: str) -> None:
    """Run both detectors on every (video, true cuts) of a data set and print its lines.

    Each run is repeated ``repeat`` times and its fastest time kept: the machine may be shared, and the
    fastest run is the one least disturbed (the cuts found are the same every time).
    """
    runs = settings(width, resolution)
    ours_pairs, ours_s, detect_s, frames = [], 0.0, 0.0, 0
    theirs_pairs: Dict[str, list] = {label: [] for label in runs}
    theirs_s = dict.fromkeys(runs, 0.0)
    for v, (video, truth) in enumerate(videos):
        results = [ours(video, resolution, os.path.join(tmp, f"store{v}")) for _ in range(repeat)]
        ours_pairs.append((results[-1][0], truth))
        ours_s += min(r[1] for r in results)
        detect_s += min(r[2] for r in results)
        frames += results[-1][3]
        for label, downscale in runs.items():
            results = [pyscenedetect(video, downscale) for _ in range(repeat)]
            theirs_pairs[label].append((results[-1][0], truth))
            theirs_s[label] += min(r[1] for r in results)
    print(f"{title}: {len(videos)} video(s), {width} x {width} px H.264 at {FPS} fps, {frames} frames, "
          f"{sum(len(t) for _, t in videos)} true cuts")
    ours_fps = report(f"ours (store + rho at {resolution} px, adaptive)", ours_pairs, ours_s, frames,
                      f" (cuts.detect alone {detect_s * 1e3:.1f} ms = {frames / max(detect_s, 1e-9):,.0f} frames/s)")
    for label in runs:
        fps = report(label, theirs_pairs[label], theirs_s[label], frames)
        print(f"  {'':44s}  speed ours / this: {ours_fps / fps:.2f}x end to end, "
              f"{frames / max(detect_s, 1e-9) / fps:,.0f}x counting cuts.detect alone (the store being made anyway)")


@click.command()
@click.option("--episodes", default=2, show_default=True)
@click.option("--seconds", default=30.0, show_default=True, help="Length of each synthetic episode.")
@click.option("--resolution", default=128, show_default=True,
              help="Synthetic episodes' frame size and our store's, both square px.")
@click.option("--seed", default=1, show_default=True)
@click.option("--photos", type=click.IntRange(2, len(PHOTOS)), default=5, show_default=True,
              help="Shots in the photo clip, one per photo.")
@click.option("--shot-seconds", default=3.0, show_default=True, help="Length of each photo shot.")
@click.option("--clip-size", default=384, show_default=True, help="Photo clip frame size, square px.")
@click.option("--repeat", type=click.IntRange(1), default=3, show_default=True,
              help="Runs per video and detector; the fastest counts.")
def main(episodes, seconds, resolution, seed, photos, shot_seconds, clip_size, repeat) -> None:
    defaults = {p.name: p.default for p in inspect.signature(AdaptiveDetector.__init__).parameters.values()}
    print(f"PySceneDetect {scenedetect.__version__} (OpenCV {cv2.__version__}, backend opencv): AdaptiveDetector() "
          f"defaults adaptive_threshold {defaults['adaptive_threshold']}, window_width {defaults['window_width']}, "
          f"min_scene_len {defaults['min_scene_len']}, min_content_val {defaults['min_content_val']}; "
          f"ours: cuts.detect(rho, 'adaptive') defaults; scores +-1 frame; time per video end to end, best of {repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        truth = anime.write_series(os.path.join(tmp, "series"), episodes=episodes, seconds=seconds,
                                   resolution=resolution, fps=FPS, seed=seed)
        series = [(os.path.join(tmp, "series", ep["file"]), cuts.truth_in_store_frames(ep["cuts"]))
                  for ep in truth["episodes"]]
        compare(f"synthetic series ({episodes} x {seconds:g} s, seed {seed})", series, resolution, resolution, repeat,
                tmp)
        clip = os.path.join(tmp, "photos.mp4")
        clip_truth = write_photo_clip(clip, photos, int(round(shot_seconds * FPS)), clip_size)
        compare(f"photo clip ({photos} pan/zoom shots x {shot_seconds:g} s)", [(clip, clip_truth)], clip_size,
                resolution, repeat, tmp)


if __name__ == "__main__":
    main()
