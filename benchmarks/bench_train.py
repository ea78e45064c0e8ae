"""Training throughput: full StyleGAN2-ADA iterations in images/s, by phase, against in-run baselines.

Fixed configuration (issue #3): 32x32 RGB, z = w = 512, 2 mapping layers, channel_base 8192,
channel_max 256, batch 16, AugmentPipe with the bgc transforms at p = 0.5, R1 gamma 0.05 every 16 D
steps, path length every 4 G steps. Ours runs in each ``--precision`` (default fp32 and bf16; bf16
computes the blocks above 4x4 in bfloat16 with conv_clamp 256, as train.py does without --fp32;
fp32 has no reduced-precision layers and no clamp); the official code runs in fp32. One iteration runs the phases due at that step (Gmain, Greg
every 4th, Dmain, Dreg every 16th) through the public API both implementations share:
``StyleGAN2Loss.accumulate_gradients`` with the gain of the lazy interval, then an Adam step (learning
rate and betas scaled for lazy regularisation). Real images are random tensors kept in memory: data
loading, the EMA copy and statistics belong to a training loop, not to the implementation measured.

Steps are timed in whole 16-step cycles, so every phase counts in its real proportion; a round is
one cycle per worker. Baselines, all measured in this run (the machine is shared and noisy):

- fp32 for bf16, and both for the official code: their medians are compared as ratios;
- the conv peak, a batch x channel_max x 32 x 32 3x3 convolution in the worker's precision timed in
  the same process just before each cycle; FLOPs of each phase are counted once with ``torch.utils.flop_counter``, so the
  cycle's GFLOP/s is also a fraction of the peak of that moment;
- with ``--official PATH`` (a local clone of the official StyleGAN2-ADA PyTorch release), the same
  iteration built from its ``training.networks``, ``training.loss`` and ``training.augment``, in
  rounds interleaved with ours.

Medians over rounds are printed, with each worker process's peak RSS; the last line is a JSON summary
with at least ``cpu``, ``fp32_img_s``, ``bf16_img_s`` and ``official_img_s`` (null when not measured).

    python benchmarks/bench_train.py [--rounds 3] [--precision fp32,bf16] [--threads 1] [--official PATH]
"""

import argparse
import time
from typing import Any, Dict, List, Tuple

import torch

import _harness as harness

REG_INTERVAL = {"G": 4, "D": 16}  # lazy regularisation: path length every 4 G steps, R1 every 16 D steps
CYCLE = 16  # steps: a multiple of both intervals
# (phase, network, interval in steps), in the order both implementations' training loops run them.
PHASES: Tuple[Tuple[str, str, int], ...] = (("Gmain", "G", 1), ("Greg", "G", REG_INTERVAL["G"]),
                                            ("Dmain", "D", 1), ("Dreg", "D", REG_INTERVAL["D"]))
# The official 'bgc' preset: pixel blitting, general geometric and colour transforms.
BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
           brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)


class TrainingIterations:
    """One implementation's G, D, AugmentPipe, StyleGAN2Loss and Adam optimisers, stepped phase by phase."""

    def __init__(self, impl: harness.Implementation, config: Dict[str, Any]):
        networks, loss, augment = impl.module("networks"), impl.module("loss"), impl.module("augment")
        self.impl, self.config = impl, config
        self.device = device = harness.pick_device()
        res, batch = config["resolution"], config["batch"]
        arch = dict(channel_base=config["channel_base"], channel_max=config["channel_max"],
                    **harness.architecture(config))
        torch.manual_seed(0)
        G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                               mapping_kwargs=dict(num_layers=2), synthesis_kwargs=arch)
        D = networks.Discriminator(c_dim=0, img_resolution=res, img_channels=3,
                                   epilogue_kwargs=dict(mbstd_group_size=4), **arch)
        pipe = augment.AugmentPipe(**BGC)
        pipe.p.fill_(0.5)  # fixed p, as with --aug=fixed --p=0.5
        self.nets = {name: net.train().requires_grad_(False).to(device) for name, net in (("G", G), ("D", D))}
        pipe.train().requires_grad_(False).to(device)
        self.loss = loss.StyleGAN2Loss(device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D, augment_pipe=pipe,
                                       style_mixing_prob=0.9, r1_gamma=0.05, pl_batch_shrink=2, pl_decay=0.01,
                                       pl_weight=2)
        self.opts = {name: self._adam(net, REG_INTERVAL[name]) for name, net in self.nets.items()}
        self.reals = torch.rand([batch, 3, res, res], device=device) * 2 - 1
        self.labels = torch.zeros([batch, 0], device=device)
        self.step_index = 0
        self.peak = harness.ConvPeak(batch, config["channel_max"], 32, device, config["precision"])
        # Step 0 runs every phase: it warms up, and each phase's FLOPs are counted there.
        self.phase_flops: Dict[str, int] = {}
        for phase, name, interval in PHASES:
            self.phase_flops[phase] = harness.count_flops(lambda: self._run_phase(phase, name, interval))
        self.step_index = 1

    @staticmethod
    def _adam(net: torch.nn.Module, reg_interval: int) -> torch.optim.Adam:
        """Adam at lr 0.0025, betas (0, 0.99), raised to interval / (interval + 1) for lazy regularisation."""
        ratio = reg_interval / (reg_interval + 1)
        return torch.optim.Adam(net.parameters(), lr=0.0025 * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)

    def _run_phase(self, phase: str, name: str, interval: int) -> None:
        net, opt = self.nets[name], self.opts[name]
        net.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        z = torch.randn([self.config["batch"], 512], device=self.device)
        self.loss.accumulate_gradients(phase=phase, real_img=self.reals, real_c=self.labels, gen_z=z,
                                       gen_c=self.labels, sync=True, gain=interval)
        net.requires_grad_(False)
        opt.step()

    def cycle_flops(self) -> int:
        return sum(self.phase_flops[phase] * CYCLE // interval for phase, _, interval in PHASES)

    def describe(self) -> Dict[str, Any]:
        return dict(harness.describe_process(self.impl, self.device), phase_flops=self.phase_flops,
                    cycle_flops=self.cycle_flops(), conv_peak=self.peak.shape, precision=self.config["precision"])

    def measure_round(self) -> Dict[str, Any]:
        """The conv peak, then one cycle of CYCLE steps, timed as a whole and by phase."""
        peak = self.peak.gflops(self.config["repeats"])
        phase_seconds = {phase: 0.0 for phase, _, _ in PHASES}
        start = time.perf_counter()
        for _ in range(CYCLE):
            for phase, name, interval in PHASES:
                if self.step_index % interval == 0:
                    began = time.perf_counter()
                    self._run_phase(phase, name, interval)
                    harness.synchronize(self.device)
                    phase_seconds[phase] += time.perf_counter() - began
            self.step_index += 1
        seconds = time.perf_counter() - start
        return dict(seconds=seconds, phase_seconds=phase_seconds, peak_gflops=peak, peak_rss_mib=harness.peak_rss_mib())


def summarise(runs: harness.Runs, batch: int) -> Dict[str, Dict[str, Any]]:
    """Medians per implementation: img/s, sec/kimg, phase seconds per cycle, GFLOP/s and fraction of the conv peak."""
    images = CYCLE * batch
    summary = {}
    for label, rounds in runs.rounds.items():
        flops = runs.info[label]["cycle_flops"]
        phase_flops = {phase: runs.info[label]["phase_flops"][phase] * CYCLE // interval
                       for phase, _, interval in PHASES}
        seconds: List[float] = [r["seconds"] for r in rounds]
        summary[label] = dict(
            img_per_s=harness.median([images / s for s in seconds]),
            sec_per_kimg=harness.median([s / images * 1000 for s in seconds]),
            phase_seconds_per_cycle={phase: harness.median([r["phase_seconds"][phase] for r in rounds])
                                     for phase, _, _ in PHASES},
            phase_gflop_per_s={phase: harness.median([phase_flops[phase] / r["phase_seconds"][phase] / 1e9
                                                      for r in rounds]) for phase, _, _ in PHASES},
            gflop_per_img=flops / images / 1e9,
            gflop_per_s=harness.median([flops / s / 1e9 for s in seconds]),
            conv_peak_gflop_per_s=harness.median([r["peak_gflops"] for r in rounds]),
            of_conv_peak=harness.median([flops / r["seconds"] / 1e9 / r["peak_gflops"] for r in rounds]),
            peak_rss_mib=max(r["peak_rss_mib"] for r in rounds))
    return summary


def report(args: argparse.Namespace, config: Dict[str, Any], entrants: List[harness.Contender]) -> None:
    images = CYCLE * config["batch"]
    official = next((e.official for e in entrants if e.official), None)

    def on_ready(info: Dict[str, Dict[str, Any]]) -> None:
        first = next(iter(info.values()))
        print(f"device {first['device']}, torch {first['torch']}, {first['threads']} threads; {config['resolution']} px, "
              f"channel_base {config['channel_base']}, channel_max {config['channel_max']}, batch {config['batch']}, "
              "bgc p=0.5, R1 gamma 0.05 every 16, PL every 4")
        cpu = harness.cpu_description()
        print(f"CPU {cpu['model']} ({cpu['cores']} cores; AMX-BF16 {cpu['amx_bf16']}, AVX512-BF16 {cpu['avx512_bf16']})")
        print(f"round = one {CYCLE}-step cycle ({images} images) per worker, in turn: {', '.join(info)}; "
              "conv peak timed just before each cycle")
        for label, about in info.items():
            print(f"{label}: {about['source']} (conv peak {about['conv_peak']})")
        if official is None:
            print("official: comparison skipped (no --official PATH given)")

    def on_round(index: int, measured: Dict[str, Dict[str, Any]]) -> None:
        parts = [f"{label} {images / r['seconds']:.2f} img/s (conv peak {r['peak_gflops']:.0f} GFLOP/s)"
                 for label, r in measured.items()]
        print(f"round {index + 1}/{args.rounds}: {' | '.join(parts)}", flush=True)

    runs = harness.run_interleaved(__file__, config, entrants, args.rounds, on_ready, on_round)
    summary = summarise(runs, config["batch"])
    print(f"medians of {args.rounds} round(s):")
    names = [phase for phase, _, _ in PHASES]
    print(f"{'':<9} {'img/s':>7} {'sec/kimg':>8} {'GFLOP/img':>9} {'GFLOP/s':>8} {'conv peak':>9} {'of peak':>7} "
          + " ".join(f"{n:>6}" for n in names) + f" {'peak RSS':>9}")
    for label, row in summary.items():
        cycle = sum(row["phase_seconds_per_cycle"].values())
        shares = " ".join(f"{row['phase_seconds_per_cycle'][n] / cycle:6.0%}" for n in names)
        print(f"{label:<9} {row['img_per_s']:7.2f} {row['sec_per_kimg']:8.0f} {row['gflop_per_img']:9.2f} "
              f"{row['gflop_per_s']:8.1f} {row['conv_peak_gflop_per_s']:9.1f} {row['of_conv_peak']:7.0%} {shares} "
              f"{row['peak_rss_mib'] / 1024:5.2f} GiB")
    print("(phase columns: share of the phase time in a cycle; seconds per cycle are in the JSON line)")
    for label, row in summary.items():
        rates = ", ".join(f"{n} {row['phase_gflop_per_s'][n]:.0f}" for n in names)
        print(f"{label} GFLOP/s by phase: {rates}")
    ratios = harness.ratios({label: row["img_per_s"] for label, row in summary.items()})
    for name, value in ratios.items():
        print(f"{name.replace('_over_', ' / ')}: {value:.2f}x img/s (medians of {args.rounds} interleaved round(s))")
    img_s = {f"{label}_img_s": summary[label]["img_per_s"] if label in summary else None
             for label in ("fp32", "bf16", "official")}
    harness.emit_json(dict(
        benchmark="train", cpu=harness.cpu_description(), **img_s, **ratios, config=config, rounds=args.rounds,
        runs=summary, official_skipped=None if official else "no --official PATH given"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_arguments(p, rounds=3)
    p.add_argument("--repeats", type=int, default=3, help="timed conv-peak calls per round, fastest kept (default 3)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--cbase", type=int, default=8192, help="channel_base")
    p.add_argument("--cmax", type=int, default=256, help="channel_max")
    return p


if __name__ == "__main__":
    harness.main(parser(), TrainingIterations, report)
