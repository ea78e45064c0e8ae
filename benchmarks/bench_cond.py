"""Quality benchmark of next-frame prediction on held-out episodes of the synthetic series.

    python benchmarks/bench_cond.py --seed 0        # one seed, everything from scratch (or the cache)

For seed S: synth (64 px) -> frames (stride 2, as the study) -> ground-truth page functions and cuts
-> export-conditional (the last episode held out) and export-unconditional (the training episodes) ->
a small unconditional StyleGAN2-ADA (cached per seed and settings) -> ``paper`` and ``warpstyle``
trained for fixed budgets through train_cond.py -> ``train_cond.py eval`` on the held-out episode:
1-step PSNR/SSIM of both models and of copy-last-frame and linear extrapolation (same code, same
pairs), the rollout curve and the page ablation. Every stage runs the real command line in a
subprocess, so the benchmark measures what a user runs. The last line is JSON.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(args, log, env=None):
    """Run one pipeline command; its output goes to the log, a failure stops the benchmark loudly."""
    started = time.time()
    with open(log, "a") as f:
        f.write(f"$ {' '.join(map(str, args))}\n")
        f.flush()
        done = subprocess.run([str(a) for a in args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(map(str, args))}; see {log}")
    return time.time() - started


def newest(pattern_dir: Path, pattern: str) -> Path:
    found = sorted(pattern_dir.glob(pattern))
    if not found:
        sys.exit(f"nothing matches {pattern_dir / pattern}")
    return found[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--episodes", type=int, default=5, help="episodes in the series; the last one is held out")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--uncond-kimg", type=float, default=6.0, help="unconditional StyleGAN2 training length")
    ap.add_argument("--paper-steps", type=int, default=300)
    ap.add_argument("--ours-steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = torch's default)")
    ap.add_argument("--work", default=None, help="working folder [default: $TMPDIR/bench_cond/seed<S>]")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/manganime/bench_cond"),
                    help="where the unconditional snapshot is kept between runs")
    args = ap.parse_args()

    py = sys.executable
    work = Path(args.work or Path(os.environ.get("TMPDIR", "/tmp")) / "bench_cond" / f"seed{args.seed}")
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    timings = {}
    tool = [py, "dataset_tool_anime.py"]

    series, stores, truth = work / "series", work / "stores", work / "truth"
    val = f"ep{args.episodes - 1:03d}"
    if not (work / "paired.zip").exists():
        timings["data"] = sum([
            run(tool + ["synth", "--out", series, "--episodes", args.episodes, "--seconds", args.seconds,
                        "--resolution", args.resolution, "--seed", args.seed, "--force"], log),
            run(tool + ["frames", "--out", stores, "--stride", 2, "--resolution", args.resolution, "--force",
                        *sorted(series.glob("episodes/*.mp4"))], log),
            run(tool + ["truth", "--series", series, "--stores", stores, "--out", truth, "--force"], log),
            run(tool + ["export-conditional", "--series", truth / "series.json", "--out", work / "paired.zip",
                        "--val-episodes", val, "--cuts", truth / "cuts.json", "--force"], log),
        ])
    train_series = truth / "train_series.json"  # beside series.json: its paths are relative to it
    config = json.loads((truth / "series.json").read_text())
    config["episodes"] = [ep for ep in config["episodes"] if ep["name"] != val]
    train_series.write_text(json.dumps(config))
    if not (work / "frames.zip").exists():
        timings["data"] = timings.get("data", 0) + run(
            tool + ["export-unconditional", "--series", train_series, "--out", work / "frames.zip", "--force"], log)

    key = hashlib.sha256(json.dumps([args.seed, args.resolution, args.episodes, args.seconds, args.uncond_kimg]).encode())
    cached = Path(args.cache) / f"uncond-{key.hexdigest()[:12]}.pkl"
    if cached.exists():
        timings["uncond_cached"] = True
    else:
        runs = work / "uncond-runs"
        timings["uncond"] = run([py, "-m", "stylegan2_ada.train", f"--outdir={runs}", f"--data={work / 'frames.zip'}",
                                 "--mirror", f"--kimg={args.uncond_kimg}", "--tick=2", "--snap=100", "--batch=16",
                                 "--cbase=2048", "--cmax=64", "--map=2", "--fp32", "--workers=1",
                                 f"--seed={args.seed}"], log, env)
        cached.parent.mkdir(parents=True, exist_ok=True)
        os.replace(newest(newest(runs, "*"), "network-snapshot-*.pkl"), cached)

    snapshots = {}
    for cond, steps in (("paper", args.paper_steps), ("warpstyle", args.ours_steps)):
        outdir = work / f"runs-{cond}"
        timings[cond] = run([py, "train_cond.py", f"--data={work / 'paired.zip'}", f"--network={cached}",
                             f"--cond={cond}", f"--outdir={outdir}", f"--steps={steps}", f"--batch={args.batch}",
                             "--workers=1", "--tick=100", "--snap=1000", "--val-pairs=64", "--rollout-steps=4",
                             f"--seed={args.seed}"], log, env)
        snapshots[cond] = newest(newest(outdir, "*"), "network-snapshot-*.pkl")

    out = work / "eval"
    timings["eval"] = run([py, "train_cond.py", "eval", f"--data={work / 'paired.zip'}",
                           f"--network=paper={snapshots['paper']}", f"--network=warpstyle={snapshots['warpstyle']}",
                           f"--out={out}", "--force"], log, env)
    report = json.loads((out / "evaluation.json").read_text())
    one = report["one_step"]
    for name, row in one.items():
        print(f"{name:<22} PSNR {row['psnr']:6.2f} dB (of mean MSE {row['psnr_of_mean_mse']:6.2f})  SSIM {row['ssim']:.4f}")
    for name, row in report.get("one_step_within_shot", {}).items():
        print(f"  within shot  {name:<22} PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.4f}")
    rollout = report["rollout"]
    for name in one:
        if name in rollout:
            print(f"rollout PSNR {name:<22} " + " ".join(f"{v:5.1f}" for v in rollout[name]["psnr"]))
    for name, ab in report.get("page_ablation", {}).items():
        print(f"page ablation {name:<12} true page PSNR {ab['true_page']['psnr']:.3f}, wrong page {ab['wrong_page']['psnr']:.3f}")
    beats = one["warpstyle"]["psnr"] > one["copy_last"]["psnr"] and one["warpstyle"]["ssim"] > one["copy_last"]["ssim"]
    print(f"warpstyle beats copy-last in PSNR and SSIM on held-out {val}: {beats}")
    summary = dict(seed=args.seed, resolution=args.resolution, val_episode=val, pairs=report["pairs"],
                   one_step={k: dict(psnr=v["psnr"], psnr_of_mean_mse=v["psnr_of_mean_mse"], ssim=v["ssim"])
                             for k, v in one.items()},
                   rollout_psnr={k: rollout[k]["psnr"] for k in one if k in rollout},
                   page_ablation={k: dict(true=v["true_page"]["psnr"], wrong=v["wrong_page"]["psnr"])
                                  for k, v in report.get("page_ablation", {}).items()},
                   warpstyle_beats_copy_last=beats, seconds={k: round(v, 1) if isinstance(v, float) else v
                                                             for k, v in timings.items()},
                   steps=dict(paper=args.paper_steps, warpstyle=args.ours_steps), uncond_kimg=args.uncond_kimg)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
