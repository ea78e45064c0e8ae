"""Network throughput: images/s and achieved GFLOP/s, against the in-run conv peak and, optionally, the official code.

Workload (issue #2): G at 64x64, z_dim = w_dim = 512, 2 mapping layers, channel_base 16384,
channel_max 512, batch 8; G forward, G forward+backward and D forward+backward. Ours runs in each
``--precision`` (default fp32 and bf16: bf16 computes the blocks above 4x4 in bfloat16 with
conv_clamp 256, as train.py does without --fp32); the official code in fp32. FLOPs are counted with
``torch.utils.flop_counter``. Baselines, all measured in this run (the machine is shared and noisy,
so no figure is compared with a number from elsewhere):

- fp32 for bf16, and both for the official code: medians compared as ratios, per workload;
- the conv peak, a batch x channel_max x 32 x 32 3x3 convolution in the worker's precision timed
  in the same process just before each workload, so every workload is also a fraction of the peak
  of that moment;
- with ``--official PATH`` (a local clone of the official StyleGAN2-ADA PyTorch release), the
  same workloads built from its ``training.networks``, in rounds interleaved with ours.

Each figure is the fastest of ``--repeats`` calls; the median over rounds is printed, and the
last line is a JSON summary.

    python benchmarks/bench_networks.py [--rounds 5] [--batch 8] [--precision fp32,bf16] [--official PATH]
"""

import argparse
from typing import Any, Callable, Dict, List

import torch
import torch.nn.functional as F

import _harness as harness

WORKLOADS = ("G forward", "G forward+backward", "D forward+backward")


class NetworkWorkloads:
    """G and D of one implementation, with the three timed calls."""

    def __init__(self, impl: harness.Implementation, config: Dict[str, Any]):
        networks = impl.module("networks")
        self.impl, self.config = impl, config
        self.device = harness.pick_device()
        res, batch = config["resolution"], config["batch"]
        arch = dict(channel_base=config["channel_base"], channel_max=config["channel_max"],
                    **harness.architecture(config))
        torch.manual_seed(0)
        G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                               mapping_kwargs=dict(num_layers=2), synthesis_kwargs=arch).to(self.device)
        D = networks.Discriminator(c_dim=0, img_resolution=res, img_channels=3, **arch).to(self.device)
        z = torch.randn([batch, 512], device=self.device)
        c = torch.zeros([batch, 0], device=self.device)
        real = torch.randn([batch, 3, res, res], device=self.device)

        def g_forward() -> None:
            G.eval()
            with torch.no_grad():
                G(z, c, noise_mode="const")

        def g_forward_backward() -> None:
            G.train()
            G.zero_grad(set_to_none=True)
            G(z, c, noise_mode="random").square().mean().backward()

        def d_forward_backward() -> None:
            D.train()
            D.zero_grad(set_to_none=True)
            F.softplus(D(real, c)).mean().backward()

        self.calls: Dict[str, Callable[[], None]] = dict(zip(WORKLOADS, (g_forward, g_forward_backward,
                                                                         d_forward_backward)))
        self.flops = {name: harness.count_flops(call) for name, call in self.calls.items()}
        self.peak = harness.ConvPeak(batch, config["channel_max"], 32, self.device, config["precision"])

    def describe(self) -> Dict[str, Any]:
        return dict(harness.describe_process(self.impl, self.device), flops=self.flops, conv_peak=self.peak.shape,
                    precision=self.config["precision"])

    def measure_round(self) -> Dict[str, Any]:
        """Per workload: the conv peak just before it, then the workload itself."""
        repeats = self.config["repeats"]
        measured = {}
        for name, call in self.calls.items():
            peak = self.peak.gflops(repeats)
            measured[name] = dict(seconds=harness.best_seconds(call, repeats, self.device), peak_gflops=peak)
        return measured


def summarise(runs: harness.Runs, batch: int) -> Dict[str, Dict[str, Any]]:
    """Medians per implementation and workload: img/s, GFLOP/s, fraction of the conv peak."""
    summary: Dict[str, Dict[str, Any]] = {}
    for label, rounds in runs.rounds.items():
        flops = runs.info[label]["flops"]
        summary[label] = {}
        for name in WORKLOADS:
            seconds = [r[name]["seconds"] for r in rounds]
            summary[label][name] = dict(
                img_per_s=harness.median([batch / s for s in seconds]),
                gflop_per_img=flops[name] / batch / 1e9,
                gflop_per_s=harness.median([flops[name] / s / 1e9 for s in seconds]),
                of_conv_peak=harness.median([flops[name] / r[name]["seconds"] / 1e9 / r[name]["peak_gflops"]
                                             for r in rounds]),
                conv_peak_gflop_per_s=harness.median([r[name]["peak_gflops"] for r in rounds]))
    return summary


def report(args: argparse.Namespace, config: Dict[str, Any], entrants: List[harness.Contender]) -> None:
    official = next((e.official for e in entrants if e.official), None)

    def on_ready(info: Dict[str, Dict[str, Any]]) -> None:
        first = next(iter(info.values()))
        print(f"device {first['device']}, torch {first['torch']}, {first['threads']} threads; G/D at "
              f"{config['resolution']} px, channel_base {config['channel_base']}, channel_max {config['channel_max']}, "
              f"batch {config['batch']}")
        cpu = harness.cpu_description()
        print(f"CPU {cpu['model']} ({cpu['cores']} cores; AMX-BF16 {cpu['amx_bf16']}, AVX512-BF16 {cpu['avx512_bf16']})")
        print(f"workers, in turn each round: {', '.join(info)}; conv peak timed just before each workload")
        for label, about in info.items():
            print(f"{label}: {about['source']} (conv peak {about['conv_peak']})")
        if official is None:
            print("official: comparison skipped (no --official PATH given)")

    def on_round(index: int, measured: Dict[str, Dict[str, Any]]) -> None:
        parts = [f"{label} " + ", ".join(f"{config['batch'] / r[name]['seconds']:.2f}" for name in WORKLOADS)
                 for label, r in measured.items()]
        print(f"round {index + 1}/{args.rounds} img/s ({', '.join(WORKLOADS)}): {' | '.join(parts)}", flush=True)

    runs = harness.run_interleaved(__file__, config, entrants, args.rounds, on_ready, on_round)
    summary = summarise(runs, config["batch"])
    labels = list(summary)
    print(f"medians of {args.rounds} round(s):")
    print(f"{'workload':<20} {'run':<9} {'GFLOP/img':>9} {'img/s':>8} {'GFLOP/s':>8} {'conv peak':>9} {'of peak':>8}")
    for name in WORKLOADS:
        for label in labels:
            row = summary[label][name]
            print(f"{name:<20} {label:<9} {row['gflop_per_img']:9.2f} {row['img_per_s']:8.2f} {row['gflop_per_s']:8.1f} "
                  f"{row['conv_peak_gflop_per_s']:9.1f} {row['of_conv_peak']:8.0%}")
    per_workload = {name: harness.ratios({label: summary[label][name]["img_per_s"] for label in labels})
                    for name in WORKLOADS}
    for name, found in per_workload.items():
        if found:
            print(f"{name}: " + ", ".join(f"{k.replace('_over_', ' / ')} {v:.2f}x" for k, v in found.items()))
    img_s = {f"{label}_img_s": ({name: summary[label][name]["img_per_s"] for name in WORKLOADS}
                                if label in summary else None) for label in ("fp32", "bf16", "official")}
    ratio_keys = sorted({key for found in per_workload.values() for key in found})
    by_ratio = {key: {name: per_workload[name][key] for name in WORKLOADS} for key in ratio_keys}
    harness.emit_json(dict(
        benchmark="networks", cpu=harness.cpu_description(), **img_s, **by_ratio, config=config,
        rounds=args.rounds, runs=summary, official_skipped=None if official else "no --official PATH given"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_arguments(p, rounds=5)
    p.add_argument("--repeats", type=int, default=3, help="timed calls per measurement, fastest kept (default 3)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--cbase", type=int, default=16384, help="channel_base")
    p.add_argument("--cmax", type=int, default=512, help="channel_max")
    return p


if __name__ == "__main__":
    harness.main(parser(), NetworkWorkloads, report)
