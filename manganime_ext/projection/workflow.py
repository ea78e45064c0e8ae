"""What ``projector_video.py project | interpolate | figure`` do, from files to files.

``project`` writes one folder, all at once (temp folder, renamed): ``ws.npz`` (``w`` ``[N, num_ws, w_dim]``
as ``generate.py --projected-w`` reads it, ``frames`` (source frame numbers), ``fps``, ``shot_starts``,
``every``, ``end_frame``, ``transform``), ``projected.mp4``, ``side_by_side.mp4`` (ground truth | projection, and
| after tuning with ``--tune``), ``metrics.json`` (per-frame PSNR, distance, steps, cold starts; the
distance named) and ``metrics.png``; with ``--tune`` also ``tuned.pkl``. Images are always drawn from
the latents with the network's constant noise, so ``ws.npz`` and the network reproduce them exactly.
"""

import json
import os
import time
from dataclasses import asdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from manganime_ext.io.json_files import write_json
from manganime_ext.io.outputs import atomic_output_dir, refuse_existing
from manganime_ext.io.pictures import save_png
from manganime_ext.io.video import write_mp4
from stylegan2_ada import dnnlib, legacy
from stylegan2_ada.projector import DistanceUnavailable, ImageDistance, load_distance

from . import figures, interpolation
from .errors import ProjectionError
from .frames import frames_at, read_clip, span_positions
from .tuning import pivotal_tuning, tuned_snapshot
from .video import VideoProjectionSettings, frame_scores, project_frames, render

Log = Callable[[str], None]


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_snapshot(path: str, device: torch.device) -> Dict:
    """A network file (our snapshot or an official pickle, path or URL); one-line ProjectionError if unusable."""
    try:
        with dnnlib.util.open_url(path) as f:
            snapshot = legacy.load_network_pkl(f)
    except (legacy.NetworkLoadError, OSError, ValueError) as err:
        raise ProjectionError(f"--network: {' '.join(str(err).split())}") from None
    snapshot["G_ema"] = snapshot["G_ema"].to(device)
    return snapshot


def open_distance(name: str, device: torch.device, detector_dir: Optional[str]) -> ImageDistance:
    try:
        return load_distance(name, device, detector_dir)
    except DistanceUnavailable as err:
        raise ProjectionError(f"--distance {name}: {' '.join(str(err).split())}") from None


def _side_by_side(*rows: np.ndarray) -> List[np.ndarray]:
    return [np.concatenate([r[i] for r in rows], axis=1) for i in range(len(rows[0]))]


def _rgb(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames, 3, axis=3) if frames.shape[3] == 1 else frames[..., :3]


def project_video(network: str, video: str, out: str, settings: VideoProjectionSettings, *, every: int = 1,
                  start: Optional[float] = None, end: Optional[float] = None, tune_steps: int = 0,
                  tune_learning_rate: float = 3e-3,
                  distance_name: str = "lpips", detector_dir: Optional[str] = None, transform: str = "squash",
                  force: bool = False, log: Log = print) -> dict:
    """Project every ``every``-th frame of ``[start, end)`` s of ``video`` and write the folder ``out``."""
    refuse_existing(out, force)
    device = pick_device()
    snapshot = load_snapshot(network, device)
    G = snapshot["G_ema"]
    distance = open_distance(distance_name, device, detector_dir)
    clip = read_clip(video, G.img_resolution, every, start, end, transform)
    side = G.img_resolution
    if clip.source_size and list(clip.source_size) != [side, side]:
        width, height = clip.source_size
        log(f"{video}: frames are {width}x{height}, the network makes {side}x{side}: resized ({transform})")
    targets = clip.frames if G.img_channels == 3 else _channels(clip.frames, G.img_channels)
    log(f"projecting {len(clip.frames)} frames ({int(clip.shot_starts.sum())} shot starts) in {settings.space}, "
        f"distance {distance.name}, on {device.type}")

    began = time.time()
    result = project_frames(G, targets, clip.shot_starts, distance, settings, device, frame_numbers=clip.indices)
    seconds = time.time() - began
    images = render(G, result.ws, device)
    scores = frame_scores(images, targets, distance, device)
    report = dict(video=os.path.abspath(video), network=network, distance=distance.name, space=settings.space,
                  settings=asdict(settings), every=every, transform=transform, frames=clip.indices.tolist(),
                  times=clip.times.round(4).tolist(), shot_starts=clip.shot_starts.tolist(),
                  cold=result.cold.tolist(), steps=result.steps.tolist(), psnr=scores["psnr"],
                  distance_values=scores["distance"], mean_psnr=float(np.mean(scores["psnr"])),
                  mean_distance=float(np.mean(scores["distance"])), total_steps=int(result.steps.sum()),
                  seconds=round(seconds, 2))
    tuned, tuned_images = None, None
    if tune_steps:
        tuned = pivotal_tuning(G, result.ws, targets, distance, tune_steps, device, batch=settings.batch,
                               learning_rate=tune_learning_rate, seed=settings.seed)
        tuned_images = render(tuned, result.ws, device)
        tuned_scores = frame_scores(tuned_images, targets, distance, device)
        report["tuned"] = dict(steps=tune_steps, learning_rate=tune_learning_rate, psnr=tuned_scores["psnr"],
                               distance_values=tuned_scores["distance"],
                               mean_psnr=float(np.mean(tuned_scores["psnr"])),
                               mean_distance=float(np.mean(tuned_scores["distance"])))
    log(f"mean PSNR {report['mean_psnr']:.2f} dB, mean distance {report['mean_distance']:.4f}"
        + (f"; after tuning {report['tuned']['mean_psnr']:.2f} dB" if tuned is not None else "")
        + f" ({report['total_steps']} steps, {seconds:.1f} s)")

    out_fps = clip.fps / every
    with atomic_output_dir(out, force) as folder:
        np.savez(os.path.join(folder, "ws.npz"), w=result.ws, frames=clip.indices, fps=np.float64(clip.fps),
                 shot_starts=clip.shot_starts, every=np.int64(every), end_frame=np.int64(clip.end_frame),
                 transform=np.str_(transform))
        final = tuned_images if tuned_images is not None else images
        write_mp4(os.path.join(folder, "projected.mp4"), _rgb(final), out_fps)
        rows = [_rgb(targets), _rgb(images)] + ([_rgb(tuned_images)] if tuned_images is not None else [])
        write_mp4(os.path.join(folder, "side_by_side.mp4"), _side_by_side(*rows), out_fps)
        write_json(os.path.join(folder, "metrics.json"), report)
        series = {"projection": scores["psnr"], "distance": scores["distance"]}
        if tuned is not None:
            series.update({"after tuning": report["tuned"]["psnr"],
                           "distance after tuning": report["tuned"]["distance_values"]})
        cut_times = clip.times[clip.shot_starts].tolist()
        figures.plot_frames(clip.times.tolist(), series, distance.name, cut_times, os.path.join(folder, "metrics.png"),
                            title=f"{os.path.basename(video)}: {len(clip.frames)} frames in {settings.space}")
        if tuned is not None:
            info = dict(video=os.path.abspath(video), frames=clip.indices.tolist(), steps=tune_steps,
                        distance=distance.name)
            legacy.save_network_pkl(os.path.join(folder, "tuned.pkl"), tuned_snapshot(snapshot, tuned, info))
    return report


def _channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """RGB frames for a network of another channel count: luma for grey, opaque alpha for RGBA."""
    if channels == 1:
        luma = frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
    return np.concatenate([frames, np.full(frames.shape[:3] + (1,), 255, np.uint8)], axis=3)


# --- reading a projection back ----------------------------------------------------------------------

def load_projection(path: str) -> Dict:
    """``ws.npz`` of a project run (the folder or the file): its arrays, and ``metrics.json`` when beside it."""
    folder, file = (path, os.path.join(path, "ws.npz")) if os.path.isdir(path) else (os.path.dirname(path), path)
    if not os.path.isfile(file):
        raise ProjectionError(f"--projection {path}: no ws.npz (the folder projector_video.py project wrote)")
    try:
        with np.load(file) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as err:  # numpy raises several kinds for a damaged file
        raise ProjectionError(f"--projection {file}: not a readable .npz ({type(err).__name__})") from None
    missing = [key for key in ("w", "frames", "fps") if key not in arrays]
    if missing:
        raise ProjectionError(f"--projection {file}: has no '{missing[0]}' array (not written by project)")
    metrics = os.path.join(folder, "metrics.json")
    if os.path.isfile(metrics):
        with open(metrics) as f:
            arrays["metrics"] = json.load(f)
    arrays["file"] = file
    return arrays


def _check_fits(ws: np.ndarray, G: torch.nn.Module, where: str) -> None:
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise ProjectionError(f"{where}: latents are {list(ws.shape)}, the network takes [N, {G.num_ws}, {G.w_dim}]")


def _positions(projection: Dict, keyframes: Optional[Sequence[int]], start_offset: float, end_offset: float) -> List[int]:
    """Positions in ws.npz of the requested source frame numbers, or of the study's two keyframes."""
    numbers = [int(n) for n in projection["frames"]]
    if keyframes:
        missing = [k for k in keyframes if k not in numbers]
        if missing:
            raise ProjectionError(f"--keyframes: frame {missing[0]} was not projected (projected: {numbers[0]}.."
                                  f"{numbers[-1]}, every {int(projection.get('every', 1))})")
        return [numbers.index(k) for k in keyframes]
    end_frame = int(projection["end_frame"]) if "end_frame" in projection else None
    return list(span_positions(np.asarray(numbers), float(projection["fps"]), start_offset, end_offset, end_frame,
                               where=f"the projected clip in {projection['file']}"))


def interpolate(network: str, out: str, *, projection: Optional[str] = None, keyframes: Optional[Sequence[int]] = None,
                seeds: Optional[Sequence[int]] = None, kind: str = "linear", frames_per_transition: int = 48,
                loop: bool = False, grid: Tuple[int, int] = (1, 1), fps: float = 24.0, truncation_psi: float = 1.0,
                start_offset: float = 2.0, end_offset: float = 1.0, distance_name: str = "lpips",
                detector_dir: Optional[str] = None, force: bool = False, log: Log = print) -> dict:
    """Render a latent walk to ``out``/interpolation.mp4 with its smoothness report (smoothness.json)."""
    if (projection is None) == (seeds is None):
        raise ProjectionError("give --projection (projected frames) or --seeds, one of them")
    if keyframes and projection is None:
        raise ProjectionError("--keyframes picks projected frames: it needs --projection")
    refuse_existing(out, force)
    device = pick_device()
    G = load_snapshot(network, device)["G_ema"]
    distance = open_distance(distance_name, device, detector_dir)
    cells = grid[0] * grid[1]

    if projection is not None:
        if kind == "slerp":
            raise ProjectionError("--kind slerp walks through z: it needs --seeds (projections live in W)")
        if cells != 1:
            raise ProjectionError("--grid shows several walks: it needs --seeds")
        data = load_projection(projection)
        _check_fits(data["w"], G, data["file"])
        positions = _positions(data, keyframes, start_offset, end_offset)
        walks = [data["w"][positions]]
        keys = dict(keyframes=[int(data["frames"][p]) for p in positions])
    else:
        if G.c_dim:
            raise ProjectionError("--seeds: the network is conditional; walks between seeds need an unconditional one")
        if len(seeds) < 2 * cells or len(seeds) % cells:
            raise ProjectionError(f"--seeds: a {grid[0]}x{grid[1]} grid needs at least two seeds per walk and a "
                                  f"multiple of {cells} seeds, got {len(seeds)}")
        z = interpolation.seed_latents(seeds, G.z_dim)
        per_walk = len(seeds) // cells
        walks = [z[k * per_walk:(k + 1) * per_walk] for k in range(cells)]
        if kind != "slerp":
            walks = [interpolation.z_to_ws(G, keys_z, device, truncation_psi) for keys_z in walks]
        keys = dict(seeds=list(seeds))
    paths = [interpolation.latent_path(walk, kind, frames_per_transition, loop) for walk in walks]
    if kind == "slerp":
        paths = [interpolation.z_to_ws(G, path, device, truncation_psi) for path in paths]
    videos = [interpolation.render_path(G, path, device) for path in paths]
    frames = interpolation.tile_grid(videos, grid)
    report = dict(network=network, kind=kind, frames=len(frames), frames_per_transition=frames_per_transition,
                  loop=loop, grid=list(grid), fps=fps, truncation_psi=truncation_psi, **keys)
    per_cell = [interpolation.smoothness(list(cell), distance, device, loop=loop) for cell in videos]
    report["smoothness"] = per_cell[0] if cells == 1 else per_cell
    with atomic_output_dir(out, force) as folder:
        write_mp4(os.path.join(folder, "interpolation.mp4"), frames, fps)
        write_json(os.path.join(folder, "smoothness.json"), report)
    log(f"{len(frames)} frames -> {out}/interpolation.mp4")
    return report


def figure(network: str, projection: str, out: str, *, video: Optional[str] = None, columns: int = 8,
           keyframes: Optional[Sequence[int]] = None, start_offset: float = 2.0, end_offset: float = 1.0,
           labels: bool = True, force: bool = False, log: Log = print) -> dict:
    """The study's figure from a projection: ground truth / projection / linear interpolation in W."""
    refuse_existing(out, force)
    device = pick_device()
    G = load_snapshot(network, device)["G_ema"]
    data = load_projection(projection)
    _check_fits(data["w"], G, data["file"])
    video = video or data.get("metrics", {}).get("video")
    if not video:
        raise ProjectionError("--video: the projection does not say which video it came from; name it")
    if keyframes is not None and len(keyframes) != 2:
        raise ProjectionError("--keyframes: the figure interpolates between exactly two projected frames")
    first, last = _positions(data, keyframes, start_offset, end_offset)
    picks = figures.evenly_spaced(first, last, columns)
    numbers = data["frames"].astype(np.int64)
    transform = str(data.get("transform", "squash"))
    truth = frames_at(video, G.img_resolution, [int(numbers[p]) for p in picks], transform)
    if G.img_channels != 3:
        truth = _channels(truth, G.img_channels)
    ws = data["w"]
    span = float(numbers[last] - numbers[first])
    t = np.array([(numbers[p] - numbers[first]) / span for p in picks])
    projected = render(G, ws[picks], device)
    between = render(G, interpolation.lerp(ws[first], ws[last], t), device)
    picture = figures.study_figure(list(truth), list(projected), list(between), labels=labels)
    save_png(picture, out)
    log(f"figure: frames {numbers[first]}..{numbers[last]} of {video} in {columns} columns -> {out}")
    return dict(frames=[int(numbers[p]) for p in picks], t=t.round(4).tolist())
