"""How big the demo is: one set of numbers for the 20-minute CPU run, one for the tests."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes and budgets of every stage; ``full()`` fits 20 minutes on 2 CPU cores."""

    resolution: int = 32  # frames, pages and networks (the synthetic cartoon reads well at 32 px on a CPU budget)
    source_resolution: int = 64  # the synthetic episodes' own size, before frames --resolution
    episodes: int = 4  # the last one is held out: no network ever trains on it
    seconds: float = 30.0  # per episode, at 24 fps (stride 2 keeps 12 fps, as the study)
    intro_seconds: float = 2.0
    outro_seconds: float = 1.5
    # A recurring cast of 4, as a real series has: with new characters in every shot (synth's default)
    # the same StyleGAN2-ADA run drew many-coloured clumps at 38 kimg; with the cast, clearer figures.
    cast: int = 4
    seed: int = 0
    # StyleGAN2-ADA: on a CPU budget the number of optimiser steps is what counts, so batch 8 with the
    # official cifar config (no path length, no style mixing) and 3.2x the official learning rate for G
    # (0.008 drew clearer figures than 0.005 or 0.0025). D learns at half that rate with R1 gamma 3: at ~40
    # kimg this drew smooth skies and standing figures, where D at 0.008 with gamma 1 drew speckled skies and
    # clumps, gamma 3 alone bigger blurred figures, and D at 0.002 blobs (the cifar gamma 0.01 oscillated,
    # 0.25 and 0.5 collapsed). Feature maps: 64 from 4 to 16 px, where the characters' shapes form, 32 at
    # 32 px (cheaper than 64 everywhere, clearly better than 32 everywhere). Training stops at gan_kimg or
    # after gan_minutes, whichever comes first, so the demo keeps its 20 minutes on slower CPUs.
    gan_kimg: float = 60.0
    gan_minutes: float = 15.0
    gan_cfg: str = "cifar"
    gan_gamma: float = 3.0
    gan_glr: float = 0.008
    gan_dlr: float = 0.004
    gan_cbase: int = 1024
    gan_cmax: int = 64
    gan_batch: int = 8
    # No per-pixel noise inputs in G (train.py --noise=0): with them, the 50-kimg samples drew their
    # outlines as a checkerboard of noise and went blurry with the noise turned off at sampling time; without,
    # 56 kimg in the same 14 minutes drew outlined heads and bodies and no checkerboard (60 kimg in 14.6 min).
    gan_noise: bool = False
    paper_steps: int = 300  # the study's recipe (it used 4000 batches at 256 px)
    ours_steps: int = 600  # warpstyle
    cond_batch: int = 16
    rollout_frames: int = 36
    projection_seconds: float = 2.0  # length of the projected clip
    projection_steps: int = 60  # steps for the first frame of each shot (warm-started frames take fewer)
    interpolation_frames: int = 48
    threads: int = 0  # torch threads per process; 0 = torch's default

    @classmethod
    def full(cls) -> "DemoSettings":
        return cls()

    @classmethod
    def quick(cls) -> "DemoSettings":
        """Tiny sizes for the tests: every stage runs, nothing is meant to look good."""
        return cls(resolution=32, source_resolution=32, episodes=2, seconds=6.0, intro_seconds=1.5, outro_seconds=1.5,
                   gan_kimg=0.032, gan_cbase=256, gan_cmax=16, gan_batch=4, paper_steps=2, ours_steps=2,
                   cond_batch=4, rollout_frames=4, projection_seconds=0.5, projection_steps=2, interpolation_frames=4,
                   threads=1)
