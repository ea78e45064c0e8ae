"""Network throughput on this machine: images/s and achieved GFLOP/s against the conv peak.

Workload (issue #2): G at 64x64, z_dim = w_dim = 512, 2 mapping layers,
channel_base 16384, channel_max 512, fp32, batch 8; G forward, G forward+backward
and D forward+backward.  FLOPs are counted with ``torch.utils.flop_counter``.
The machine's conv peak is a large 3x3 convolution measured in the same run,
interleaved with the workloads, so each figure is reported as a ratio to a peak
measured moments before it (this machine is shared and noisy); the median over
rounds is printed.

    python benchmarks/bench_networks.py [--rounds 5] [--batch 8]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stylegan2_ada.training import networks  # noqa: E402

OFFICIAL_REFERENCE_FRACTION = 0.35  # official non-CUDA path: ~49 GFLOP/s on G forward, 35 % of this machine's peak


def count_flops(fn: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def best_seconds(fn: Callable[[], None], repeats: int) -> float:
    """Fastest of ``repeats`` timed calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def build_workloads(batch: int, device: torch.device) -> Dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3,
                           mapping_kwargs=dict(num_layers=2),
                           synthesis_kwargs=dict(channel_base=16384, channel_max=512)).to(device)
    D = networks.Discriminator(c_dim=0, img_resolution=64, img_channels=3,
                               channel_base=16384, channel_max=512).to(device)
    z = torch.randn(batch, 512, device=device)
    real = torch.randn(batch, 3, 64, 64, device=device)

    def g_forward() -> None:
        G.eval()
        with torch.no_grad():
            G(z, None, noise_mode="const")

    def g_forward_backward() -> None:
        G.train()
        G.zero_grad(set_to_none=True)
        G(z, None, noise_mode="random").square().mean().backward()

    def d_forward_backward() -> None:
        D.train()
        D.zero_grad(set_to_none=True)
        F.softplus(D(real, None)).mean().backward()

    return {"G forward": g_forward, "G forward+backward": g_forward_backward, "D forward+backward": d_forward_backward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurement rounds (median reported)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (fastest kept)")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")

    x = torch.randn(8, 512, 32, 32, device=device)
    w = torch.randn(512, 512, 3, 3, device=device)

    def peak_conv() -> None:
        F.conv2d(x, w, padding=1)
        sync()

    workloads = build_workloads(args.batch, device)
    flops = {name: count_flops(fn) for name, fn in workloads.items()}
    peak_flops = count_flops(peak_conv)

    peaks: List[float] = []
    rates: Dict[str, List[float]] = {name: [] for name in workloads}
    fractions: Dict[str, List[float]] = {name: [] for name in workloads}
    for _ in range(args.rounds):
        for name, fn in workloads.items():
            peak = peak_flops / best_seconds(peak_conv, args.repeats) / 1e9
            seconds = best_seconds(lambda: (fn(), sync()), args.repeats)
            peaks.append(peak)
            rates[name].append(seconds)
            fractions[name].append(flops[name] / seconds / 1e9 / peak)

    peak = statistics.median(peaks)
    print(f"conv2d peak (8x512x32x32, 3x3): {peak:.1f} GFLOP/s (median of {len(peaks)})")
    print(f"{'workload':<20} {'GFLOP/img':>9} {'img/s':>8} {'GFLOP/s':>8} {'of peak':>8} {'vs official ref path':>21}")
    for name in workloads:
        seconds = statistics.median(rates[name])
        fraction = statistics.median(fractions[name])
        print(f"{name:<20} {flops[name] / args.batch / 1e9:9.2f} {args.batch / seconds:8.2f} "
              f"{flops[name] / seconds / 1e9:8.1f} {fraction:8.0%} {fraction / OFFICIAL_REFERENCE_FRACTION:20.2f}x")


if __name__ == "__main__":
    main()
