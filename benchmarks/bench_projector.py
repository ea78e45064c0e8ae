"""Video projection benchmark on a held-out clip of the synthetic series, with a network trained here.

    python benchmarks/bench_projector.py [--threads 1] [--detector-dir DIR]

Set-up (cached): synth (4 episodes x 30 s, 64 px) -> frames (stride 2) -> truth -> export-unconditional
of episodes 0-2 -> ``python -m stylegan2_ada.train`` (small network; the snapshot is kept in
~/.cache/manganime/bench_projector). The clip is episode 3 from --clip-start to --clip-end, every 2nd
frame (the study's frame rate), so it is unseen by the network.

Measured, all in this run, on the same frames, with the same distance (VGG16-LPIPS when vgg16.pt is
found, else our MS-SSIM + L1 fallback; stated in the output):

(a) speed: frame-steps per second of the projector, one frame per step vs --batch frames per step
    (interleaved rounds, medians), and the whole clip projected by the study's procedure (frame by
    frame, cold, 100 steps) and by ours (batched, warm-started, cold at cuts); wall and CPU time.
(b) warm vs cold starts: for every frame that follows another of its shot, the steps a cold start
    (100 steps, our settings otherwise) and a warm start from the previous frame's cold projection need
    to reach the distance the cold start ends with.
(c) mean PSNR of the study's procedure, ours in W, in W+, and in W+ followed by pivotal tuning, beside
    two simple baselines computed by the same code: the mean-w image and the clip's average frame.

Targets (issue #11): (a) the clip >= 5x faster than the study's procedure at equal or better mean
PSNR; (c) W+ with tuning >= 3 dB above the study's procedure. The last line is JSON.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from manganime_ext.projection.video import VideoProjectionSettings, frame_scores, project_frames, render

ROOT = Path(__file__).resolve().parents[1]


def run(args, log):
    """One pipeline command, its output to the log; a failure stops the benchmark loudly."""
    with open(log, "a") as f:
        f.write(f"$ {' '.join(map(str, args))}\n")
        f.flush()
        done = subprocess.run([str(a) for a in args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(map(str, args))}; see {log}")


def prepare(args, work: Path, log: Path) -> Path:
    """The series and the trained network (from the cache when there)."""
    py, tool = sys.executable, [sys.executable, "dataset_tool_anime.py"]
    series, stores, truth = work / "series", work / "stores", work / "truth"
    if not (series / "ground_truth.json").exists():
        run(tool + ["synth", "--out", series, "--episodes", 4, "--seconds", args.seconds, "--resolution",
                    args.resolution, "--seed", args.seed, "--force"], log)
    key = hashlib.sha256(json.dumps([args.seed, args.resolution, args.seconds, args.kimg, args.cbase, args.cmax])
                         .encode()).hexdigest()[:12]
    cached = Path(args.cache) / f"net-{key}.pkl"
    if cached.exists():
        return cached
    started = time.time()
    run(tool + ["frames", "--out", stores, "--stride", 2, "--resolution", args.resolution, "--force",
                *sorted(series.glob("episodes/*.mp4"))], log)
    run(tool + ["truth", "--series", series, "--stores", stores, "--out", truth, "--force"], log)
    config = json.loads((truth / "series.json").read_text())
    config["episodes"] = [ep for ep in config["episodes"] if ep["name"] != "ep003"]
    (truth / "train_series.json").write_text(json.dumps(config))
    run(tool + ["export-unconditional", "--series", truth / "train_series.json", "--out", work / "frames.zip",
                "--force"], log)
    runs = work / "runs"
    run([py, "-m", "stylegan2_ada.train", f"--outdir={runs}", f"--data={work / 'frames.zip'}", "--mirror",
         f"--kimg={args.kimg}", "--tick=1", "--snap=100", "--batch=16", f"--cbase={args.cbase}", f"--cmax={args.cmax}",
         "--map=2", "--fp32", "--workers=1", f"--seed={args.seed}"], log)
    snapshot = sorted(sorted(runs.glob("*"))[-1].glob("network-snapshot-*.pkl"))[-1]
    cached.parent.mkdir(parents=True, exist_ok=True)
    os.replace(snapshot, cached)
    print(f"trained the benchmark network in {time.time() - started:.0f} s -> {cached}")
    return cached


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def steps_per_second(G, frames, distance, batch, steps, device):
    """Frame-steps per second of the engine with ``batch`` frames per step (cold schedules, so no slot idles)."""
    from stylegan2_ada.projector import Projector, ProjectionSchedule

    engine = Projector(G, distance, slots=batch, device=device, w_avg_samples=2000)
    targets = torch.from_numpy(frames[:batch]).permute(0, 3, 1, 2).float()
    for slot in range(batch):
        engine.start(slot, targets[slot % len(targets)], ProjectionSchedule(num_steps=steps + 2), seed=slot)
    engine.step()  # the first step pays for allocations
    began = time.perf_counter()
    for _ in range(steps):
        engine.step()
    return batch * steps / (time.perf_counter() - began)


def first_step_at_or_below(trace, level):
    hits = np.flatnonzero(np.asarray(trace) <= level)
    return int(hits[0]) + 1 if len(hits) else None


def warm_vs_cold(G, clip, distance, settings, max_steps, device):
    """Steps to the distance a cold start ends with: cold starts (100 steps, our settings otherwise) vs
    warm starts from the previous frame's cold projection, for every frame that follows another of its
    shot. Both are batched; every frame is independent here."""
    from stylegan2_ada.projector import Projector

    cold_settings = VideoProjectionSettings(**{**settings.__dict__, "warm": False})
    cold = project_frames(G, clip.frames, clip.shot_starts, distance, cold_settings, device,
                          frame_numbers=clip.indices, progress=False)
    followers = [i for i in range(1, len(clip.frames)) if not clip.shot_starts[i]]
    schedule = settings.warm_schedule()
    schedule.num_steps = max_steps
    engine = Projector(G, distance, slots=len(followers), space=settings.space,
                       optimize_noise=settings.optimize_noise, device=device)
    targets = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float()
    for slot, i in enumerate(followers):
        engine.start(slot, targets[i], schedule, latent=torch.from_numpy(cold.ws[i - 1][:1]), seed=i)
    traces = [[] for _ in followers]
    while engine.busy():
        for slot, value in engine.step().items():
            traces[slot].append(value)
    cold_steps, warm_steps, reached = [], [], 0
    for slot, i in enumerate(followers):
        level = cold.trace[i][-1]
        cold_steps.append(first_step_at_or_below(cold.trace[i], level))
        warm = first_step_at_or_below(traces[slot], level)
        reached += warm is not None
        warm_steps.append(warm if warm is not None else max_steps)
    return dict(frames=len(followers), cold_mean=float(np.mean(cold_steps)), cold_median=float(np.median(cold_steps)),
                warm_mean=float(np.mean(warm_steps)), warm_median=float(np.median(warm_steps)),
                warm_reached=reached, warm_max_steps=max_steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--kimg", type=float, default=10.0, help="training length of the benchmark network")
    ap.add_argument("--cbase", type=int, default=2048)
    ap.add_argument("--cmax", type=int, default=64)
    ap.add_argument("--clip-start", type=float, default=6.0, help="seconds into the held-out episode")
    ap.add_argument("--clip-end", type=float, default=10.0)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--warm-steps", type=int, default=None, help="[default: the project command's]")
    ap.add_argument("--warm-max-steps", type=int, default=50, help="(b): longest warm start tried")
    ap.add_argument("--tune", type=int, default=300, help="pivotal tuning steps for (c)")
    ap.add_argument("--rate-steps", type=int, default=10, help="(a): steps per speed round")
    ap.add_argument("--rounds", type=int, default=3, help="(a): interleaved speed rounds")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--detector-dir", default=None, help="folder with vgg16.pt (else the cache; else MS-SSIM + L1)")
    ap.add_argument("--work", default=None, help="working folder [default: $TMPDIR/bench_projector]")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/manganime/bench_projector"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from manganime_ext.analysis.image_quality import psnr
    from manganime_ext.projection.frames import read_clip
    from manganime_ext.projection.tuning import pivotal_tuning
    from stylegan2_ada import legacy
    from stylegan2_ada.projector import DistanceUnavailable, load_distance, synthesize, to_uint8, w_statistics

    work = Path(args.work or Path(os.environ.get("TMPDIR", "/tmp")) / "bench_projector")
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    began = time.time()
    network = prepare(args, work, log)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    G = legacy.load_network_pkl(network)["G_ema"].to(device)
    try:
        distance = load_distance("lpips", device, args.detector_dir)
    except DistanceUnavailable:
        distance = load_distance("msssim", device)
    clip = read_clip(str(work / "series" / "episodes" / "ep003.mp4"), G.img_resolution, args.every,
                     args.clip_start, args.clip_end)
    frames = clip.frames
    cpu = os.popen("lscpu | grep 'Model name' | cut -d: -f2").read().strip() or "unknown CPU"
    print(f"network {network.name} ({G.img_resolution} px, {sum(p.numel() for p in G.parameters()) / 1e6:.2f} M "
          f"parameters), clip ep003 {args.clip_start:g}-{args.clip_end:g} s every {args.every}: {len(frames)} frames, "
          f"{int(clip.shot_starts.sum())} shots; distance {distance.name}; {device.type} ({cpu}), "
          f"{torch.get_num_threads()} threads")

    # (a) the engine's rate, one frame per step vs a batch, interleaved
    rates = {1: [], args.batch: []}
    for _ in range(args.rounds):
        for batch in rates:
            rates[batch].append(steps_per_second(G, frames, distance, batch, args.rate_steps, device))
    rate = {b: float(np.median(r)) for b, r in rates.items()}
    print(f"(a) frame-steps/s: one at a time {rate[1]:.1f}, {args.batch} per step {rate[args.batch]:.1f} "
          f"({rate[args.batch] / rate[1]:.2f}x)")

    # the whole clip: the study's procedure and ours
    study_settings = VideoProjectionSettings(steps=100, batch=1, warm=False, optimize_noise=True)  # the paper's
    ours = VideoProjectionSettings(steps=100, batch=args.batch)
    if args.warm_steps:
        ours.warm_steps = args.warm_steps
    runs = {}
    for name, settings in (("study", study_settings), ("ours_w", ours)):
        result, wall, cpu_s = timed(lambda: project_frames(G, frames, clip.shot_starts, distance, settings, device,
                                                           frame_numbers=clip.indices, progress=False))
        scores = frame_scores(render(G, result.ws, device), frames, distance, device)
        runs[name] = dict(result=result, wall=wall, cpu=cpu_s, psnr=float(np.mean(scores["psnr"])),
                          distance=float(np.mean(scores["distance"])), steps=int(result.steps.sum()))
        print(f"    {name:8s} {runs[name]['steps']:6d} steps  {wall:7.1f} s wall  {cpu_s:7.1f} s CPU  "
              f"PSNR {runs[name]['psnr']:.2f} dB  distance {runs[name]['distance']:.4f}")
    speedup = runs["study"]["wall"] / runs["ours_w"]["wall"]
    speedup_cpu = runs["study"]["cpu"] / runs["ours_w"]["cpu"]
    target_a = speedup >= 5 and runs["ours_w"]["psnr"] >= runs["study"]["psnr"]
    print(f"(a) clip: ours {speedup:.2f}x faster (CPU time {speedup_cpu:.2f}x), PSNR {runs['ours_w']['psnr']:.2f} vs "
          f"{runs['study']['psnr']:.2f} dB -> target (>= 5x, PSNR >=) {'met' if target_a else 'NOT met'}")

    # (b) warm vs cold
    wc = warm_vs_cold(G, clip, distance, ours, args.warm_max_steps, device)
    print(f"(b) steps to the cold start's final distance, {wc['frames']} frames: cold mean {wc['cold_mean']:.1f} "
          f"(median {wc['cold_median']:.0f}), warm mean {wc['warm_mean']:.1f} (median {wc['warm_median']:.0f}; "
          f"{wc['warm_reached']}/{wc['frames']} within {wc['warm_max_steps']})")

    # (c) quality: W+, W+ with pivotal tuning, and simple baselines
    plus = VideoProjectionSettings(**{**ours.__dict__, "space": "wplus"})
    result, wall, cpu_s = timed(lambda: project_frames(G, frames, clip.shot_starts, distance, plus, device,
                                                       frame_numbers=clip.indices, progress=False))
    scores = frame_scores(render(G, result.ws, device), frames, distance, device)
    runs["ours_wplus"] = dict(result=result, wall=wall, cpu=cpu_s, psnr=float(np.mean(scores["psnr"])),
                              distance=float(np.mean(scores["distance"])), steps=int(result.steps.sum()))
    tuned, tune_wall, tune_cpu = timed(lambda: pivotal_tuning(G, result.ws, frames, distance, args.tune, device,
                                                              batch=args.batch, progress=False))
    scores = frame_scores(render(tuned, result.ws, device), frames, distance, device)
    runs["ours_wplus_tuned"] = dict(wall=wall + tune_wall, cpu=cpu_s + tune_cpu, psnr=float(np.mean(scores["psnr"])),
                                    distance=float(np.mean(scores["distance"])))
    w_avg, _ = w_statistics(G, device=device)
    with torch.no_grad():
        mean_image = to_uint8(synthesize(G, w_avg.expand(1, G.num_ws, -1).to(device)))
    baselines = {"mean_w_image": mean_image.repeat(len(frames), axis=0),
                 "clip_average_frame": np.repeat(frames.mean(axis=0, keepdims=True).round().astype(np.uint8),
                                                 len(frames), axis=0)}
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float()
    baseline_psnr = {k: float(psnr(chw(v), chw(frames)).mean()) for k, v in baselines.items()}
    gain = runs["ours_wplus_tuned"]["psnr"] - runs["study"]["psnr"]
    target_c = gain >= 3
    print("(c) mean PSNR (dB): " + ", ".join(f"{k} {v['psnr']:.2f}" for k, v in runs.items())
          + "; baselines: " + ", ".join(f"{k} {v:.2f}" for k, v in baseline_psnr.items()))
    print(f"(c) W+ with {args.tune} tuning steps: {gain:+.2f} dB over the study's procedure -> target (>= 3 dB) "
          f"{'met' if target_c else 'NOT met'} (W+ {runs['ours_wplus']['wall']:.0f} s + tuning {tune_wall:.0f} s wall)")
    print(f"total {time.time() - began:.0f} s")

    summary = dict(network=network.name, resolution=G.img_resolution, frames=len(frames),
                   shots=int(clip.shot_starts.sum()), distance=distance.name, device=device.type, cpu=cpu,
                   threads=torch.get_num_threads(), batch=args.batch, warm_steps=ours.warm_steps,
                   steps_per_second={"one_at_a_time": rate[1], "batched": rate[args.batch]},
                   clip={k: dict(steps=v.get("steps"), wall_s=round(v["wall"], 2), cpu_s=round(v["cpu"], 2),
                                 psnr=v["psnr"], distance=v["distance"]) for k, v in runs.items()},
                   speedup_wall=speedup, speedup_cpu=speedup_cpu, warm_vs_cold=wc, baselines_psnr=baseline_psnr,
                   tune_steps=args.tune, tuned_gain_db=gain, target_a_met=target_a, target_c_met=target_c,
                   total_s=round(time.time() - began, 1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
