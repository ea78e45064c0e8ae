"""Does bf16 train as well as fp32? Short training runs on the same data, seeds and settings, compared.

For each seed, ``python -m stylegan2_ada.train`` trains the same small network twice on the frames of
the synthetic series (built here by the dataset tool: synth -> frames at 32 px, stride 2 -> truth ->
export-unconditional; ``--data`` takes any official-format 32x32 dataset instead): once with ``--precision fp32`` and once with
``--precision bf16``. Both builds have the same reduced-precision layers (train.py's default
``num_fp16_res=4``, ``conv_clamp=256``; they are float32 in the fp32 run), so precision is the only
difference; with one seed they also see the same images, latents and augmentations, in the same order.
Several seeds give the run-to-run spread of fp32 that bf16 is judged against:

- loss curves (G and D loss, R1 and path-length penalties, per tick from stats.jsonl): the mean
  distance between bf16 and fp32 of the same seed, next to the distance between fp32 runs of
  different seeds; and each run's mean over the last third of training against fp32's range;
- a FID stand-in: the Frechet distance between the real images and 1,000 samples of each run's
  G_ema (evaluated in fp32), on 192 features: each image average-pooled to 8x8 RGB, in 0..1 (the
  dataset's layout of shapes and colours; no detector weights needed);
- what bf16 inference does to the same weights: the final fp32 G_ema run in fp32 and in bf16 on the
  same latents: largest and mean difference in 8-bit levels, and PSNR.

The last line is a JSON summary. Runs go to a temporary folder unless ``--keep DIR`` is given.

    python benchmarks/bench_precision_quality.py [--seeds 0,1,2] [--kimg 6] [--threads 1] [--parallel 2] [--data ZIP]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Sequence

import numpy as np
import torch

from stylegan2_ada import legacy
from stylegan2_ada.metrics.frechet_inception_distance import frechet_distance
from stylegan2_ada.torch_utils.precision import reduced_precision
from stylegan2_ada.training.dataset import ImageFolderDataset

import _harness as harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRECISIONS = ("fp32", "bf16")
CURVES = ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty")
SAMPLES = 1000
POOL = 8


def synthetic_series_frames(root: str) -> str:
    """The synthetic series' frames as a 32x32 dataset zip, through the dataset tool's own commands."""
    def tool(*args: object) -> None:
        done = subprocess.run([sys.executable, "dataset_tool_anime.py", *map(str, args)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise harness.BenchError(f"dataset_tool_anime.py {args[0]} failed: {done.stderr.strip()[-300:]}")
    series, stores, truth = (os.path.join(root, n) for n in ("series", "stores", "truth"))
    tool("synth", "--out", series, "--episodes", 3, "--seconds", 30, "--resolution", 64, "--seed", 0, "--force")
    episodes = sorted(os.path.join(series, "episodes", f) for f in os.listdir(os.path.join(series, "episodes")))
    tool("frames", "--out", stores, "--stride", 2, "--resolution", 32, "--force", *episodes)
    tool("truth", "--series", series, "--stores", stores, "--out", truth, "--force")
    data = os.path.join(root, "frames32.zip")
    tool("export-unconditional", "--series", os.path.join(truth, "series.json"), "--out", data, "--force")
    return data


def train_command(data: str, outdir: str, precision: str, seed: int, args: argparse.Namespace) -> List[str]:
    return [sys.executable, "-m", "stylegan2_ada.train", f"--outdir={outdir}", f"--data={data}",
            f"--precision={precision}", f"--seed={seed}", f"--kimg={args.kimg}", f"--tick={args.tick}",
            f"--snap={10**6}", f"--batch={args.batch}", f"--cbase={args.cbase}", f"--cmax={args.cmax}", "--map=2",
            "--workers=0", "--mirror"]


def run_all(data: str, root: str, seeds: Sequence[int], args: argparse.Namespace) -> Dict[str, Dict[int, str]]:
    """Every (precision, seed) run, ``--parallel`` at a time; returns their run folders."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    jobs = [(p, s) for s in seeds for p in PRECISIONS]
    folders: Dict[str, Dict[int, str]] = {p: {} for p in PRECISIONS}
    running: List[Any] = []
    try:
        while jobs or running:
            while jobs and len(running) < args.parallel:
                precision, seed = jobs.pop(0)
                outdir = os.path.join(root, f"{precision}-seed{seed}")
                log = open(outdir + ".log", "w", encoding="utf-8")
                proc = subprocess.Popen(train_command(data, outdir, precision, seed, args), stdout=log,
                                        stderr=subprocess.STDOUT, env=env)
                running.append((proc, log, precision, seed, outdir))
            proc, log, precision, seed, outdir = running[0]
            code = proc.wait()
            running.pop(0)
            log.close()
            if code != 0:
                raise harness.BenchError(f"training {precision} seed {seed} failed; see {outdir}.log")
            (folders[precision][seed],) = [os.path.join(outdir, d) for d in os.listdir(outdir)]
            print(f"trained {precision} seed {seed}", flush=True)
    finally:  # a failed or interrupted benchmark leaves no training running behind it
        for proc, log, *_ in running:
            proc.kill()
            proc.wait()
            log.close()
    return folders


def curves(run_dir: str) -> Dict[str, np.ndarray]:
    """Per-tick means of the loss statistics (ticks that have them)."""
    lines = [json.loads(line) for line in open(os.path.join(run_dir, "stats.jsonl"), encoding="utf-8")]
    return {key: np.array([entry[key]["mean"] for entry in lines if key in entry]) for key in CURVES}


def pooled_features(images: np.ndarray) -> np.ndarray:
    """[N, 3, 32, 32] uint8 -> [N, 192]: averages over a POOL x POOL grid of windows, in 0..1."""
    x = torch.from_numpy(images).to(torch.float64) / 255
    return torch.nn.functional.adaptive_avg_pool2d(x, POOL).flatten(1).numpy()


def real_features(data: str) -> np.ndarray:
    dataset = ImageFolderDataset(path=data)
    return pooled_features(np.stack([dataset[i][0] for i in range(min(SAMPLES, len(dataset)))]))


@torch.no_grad()
def generated(G: torch.nn.Module, precision: str = "fp32", count: int = SAMPLES) -> torch.Tensor:
    """``count`` images in [-1, 1] from fixed latents (the same for every run)."""
    z = torch.randn([count, G.z_dim], generator=torch.Generator().manual_seed(123))
    with reduced_precision(precision):
        return torch.cat([G(batch, None, noise_mode="const") for batch in z.split(100)])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()


def fid_standin(G: torch.nn.Module, real: np.ndarray) -> float:
    fake = pooled_features(to_uint8(generated(G)))
    return frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))


def final_G(run_dir: str) -> torch.nn.Module:
    newest = sorted(f for f in os.listdir(run_dir) if f.startswith("network-snapshot-"))[-1]
    return legacy.load_network_pkl(os.path.join(run_dir, newest))["G_ema"].eval()


def curve_distance(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.mean(np.abs(a[:n] - b[:n])))


def late_mean(curve: np.ndarray) -> float:
    return float(np.mean(curve[len(curve) * 2 // 3:]))


def inference_difference(G: torch.nn.Module) -> Dict[str, float]:
    """The same weights in fp32 and in bf16: 8-bit level differences and PSNR."""
    a, b = to_uint8(generated(G, "fp32", 200)).astype(np.float64), to_uint8(generated(G, "bf16", 200)).astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    return dict(max_levels=float(np.abs(a - b).max()), mean_levels=float(np.abs(a - b).mean()),
                psnr_db=float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse)))


def summarise(folders: Dict[str, Dict[int, str]], data: str) -> Dict[str, Any]:
    real = real_features(data)
    seeds = sorted(folders["fp32"])
    runs: Dict[str, Dict[int, Dict[str, Any]]] = {p: {} for p in PRECISIONS}
    curve_of = {p: {s: curves(folders[p][s]) for s in seeds} for p in PRECISIONS}
    for p in PRECISIONS:
        for s in seeds:
            G = final_G(folders[p][s])
            if (p, s) == ("fp32", seeds[0]):
                inference = inference_difference(G)
            runs[p][s] = dict(fid_standin=fid_standin(G, real),
                              late_means={k: late_mean(v) for k, v in curve_of[p][s].items()})
    distances = {}
    for key in CURVES:
        same_seed = [curve_distance(curve_of["bf16"][s][key], curve_of["fp32"][s][key]) for s in seeds]
        across = [curve_distance(curve_of["fp32"][a][key], curve_of["fp32"][b][key])
                  for i, a in enumerate(seeds) for b in seeds[i + 1:]]
        distances[key] = dict(bf16_vs_fp32_same_seed=float(np.mean(same_seed)),
                              fp32_vs_fp32_other_seed=float(np.mean(across)) if across else None)
    spread = {}
    for name in ["fid_standin"] + [f"late_means/{k}" for k in CURVES]:
        def value(p: str, s: int) -> float:
            row = runs[p][s]
            return row["fid_standin"] if name == "fid_standin" else row["late_means"][name.split("/", 1)[1]]
        fp32 = [value("fp32", s) for s in seeds]
        bf16 = [value("bf16", s) for s in seeds]
        spread[name] = dict(fp32_min=min(fp32), fp32_max=max(fp32), fp32_mean=float(np.mean(fp32)),
                            bf16_min=min(bf16), bf16_max=max(bf16), bf16_mean=float(np.mean(bf16)))
    return dict(runs=runs, curve_distance=distances, spread=spread,
                bf16_inference_on_fp32_weights=inference)


def report(summary: Dict[str, Any], args: argparse.Namespace) -> None:
    print(f"FID stand-in and last-third loss means, fp32 | bf16 over seeds {args.seeds}:")
    for name, row in summary["spread"].items():
        print(f"  {name:<28} fp32 {row['fp32_mean']:9.4f} [{row['fp32_min']:.4f}, {row['fp32_max']:.4f}]   "
              f"bf16 {row['bf16_mean']:9.4f} [{row['bf16_min']:.4f}, {row['bf16_max']:.4f}]")
    print("mean |curve difference| per tick: bf16 vs fp32 of the same seed | fp32 vs fp32 of another seed")
    for key, row in summary["curve_distance"].items():
        other = row["fp32_vs_fp32_other_seed"]
        print(f"  {key:<20} {row['bf16_vs_fp32_same_seed']:.4f} | " + ("n/a" if other is None else f"{other:.4f}"))
    diff = summary["bf16_inference_on_fp32_weights"]
    print(f"bf16 inference of the fp32 G_ema (200 images): max {diff['max_levels']:.0f} levels, "
          f"mean {diff['mean_levels']:.3f} levels, PSNR {diff['psnr_db']:.1f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    parser.add_argument("--kimg", type=float, default=6, help="training length (default 6 = 375 steps of 16)")
    parser.add_argument("--tick", type=float, default=0.25, help="kimg per tick, i.e. per curve point (default 0.25)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cbase", type=int, default=2048)
    parser.add_argument("--cmax", type=int, default=64)
    parser.add_argument("--data", help="an official-format 32x32 dataset zip (default: the synthetic series' frames)")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per training process (default 1)")
    parser.add_argument("--parallel", type=int, default=2, help="training processes at a time (default 2)")
    parser.add_argument("--keep", metavar="DIR", help="keep the dataset and runs in DIR (default: a temp folder)")
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        if not seeds or min(args.threads, args.parallel, args.batch) < 1 or args.kimg <= 0:
            raise ValueError
        if args.data and not os.path.isfile(args.data):
            print(f"{parser.prog}: error: --data {args.data}: no such file (give an official-format dataset zip, "
                  "or leave --data out to build the synthetic series' frames)", file=sys.stderr)
            sys.exit(1)
    except ValueError:
        print(f"{parser.prog}: error: --seeds needs integers; --kimg, --threads, --parallel and --batch "
              "must be positive", file=sys.stderr)
        sys.exit(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or tmp
        os.makedirs(root, exist_ok=True)
        cpu = harness.cpu_description()
        print(f"CPU {cpu['model']} (AMX-BF16 {cpu['amx_bf16']}, AVX512-BF16 {cpu['avx512_bf16']}); torch {torch.__version__}; "
              f"{len(seeds)} seed(s) x fp32/bf16, {args.kimg} kimg each at batch {args.batch}, cbase {args.cbase}, "
              f"cmax {args.cmax}, {args.threads} thread(s) per run, {args.parallel} at a time", flush=True)
        try:
            data = args.data or synthetic_series_frames(root)
            folders = run_all(data, root, seeds, args)
        except harness.BenchError as err:
            print(f"{parser.prog}: error: {err}", file=sys.stderr)
            sys.exit(1)
        summary = summarise(folders, data)
    report(summary, args)
    harness.emit_json(dict(benchmark="precision_quality", cpu=cpu, seeds=seeds, kimg=args.kimg, batch=args.batch,
                           cbase=args.cbase, cmax=args.cmax, **summary))


if __name__ == "__main__":
    main()
