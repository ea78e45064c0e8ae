"""Project every frame of a clip: batched (many frames per optimiser step) and warm-started.

Consecutive frames of a shot look alike, so their latents lie close together: a frame started from the
previous frame's latent (and noise maps, when they are optimised) -- a *warm* start -- needs far fewer
steps than one started from the mean w (a *cold* start, the study's procedure for every frame). Across a cut the previous latent
is no help, so the first frame of each shot starts cold.

Warm starts make a shot a chain: frame k+1 cannot begin before frame k is done. Batching needs many
independent problems at once. Both fit when the chains run side by side: ``plan_chains`` cuts the clip
into chains at the shot starts (and, when there are fewer shots than slots, splits the longest chains,
each piece paying one extra cold start), and the engine (``stylegan2_ada.projector.Projector``) keeps
every slot busy, giving a slot the next chain as soon as its own is finished (longest chains first).

Each frame's random stream is seeded by its frame number, so a frame's projection depends on its chain,
not on which slot or batch it ran in.
"""

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from manganime_ext.analysis.image_quality import psnr
from stylegan2_ada.projector import ImageDistance, Projector, ProjectionSchedule, synthesize, to_uint8

SPACES = ("w", "wplus")


@dataclass
class VideoProjectionSettings:
    """How the frames of a clip are projected.

    Noise maps: every output is drawn from the latents with the network's own constant noise (so that
    ``ws.npz`` alone reproduces it), so by default the search optimises exactly that image and leaves
    the maps alone; optimising them as well (the paper's procedure, which our single-image tool keeps)
    lets w leave detail to maps that the output then does not use, and costs about 10 % more per step.
    """

    steps: int = 100  # steps of a cold start (the study used 100 per frame)
    warm_steps: int = 15  # steps of a frame started from its predecessor
    batch: int = 8  # frames optimised together
    space: str = "w"  # 'w': one w per frame; 'wplus': one w per layer
    warm: bool = True  # False: every frame starts cold (the study's procedure)
    optimize_noise: bool = False  # also optimise per-frame noise maps (the paper's projector does; see below)
    warm_learning_rate: float = 0.05  # a warm start is already close: half the cold peak rate
    keep_moments: bool = False  # a warm start also inherits the previous frame's Adam moments
    seed: int = 0  # frame f uses the random stream seed + f

    def cold_schedule(self) -> ProjectionSchedule:
        return ProjectionSchedule(num_steps=self.steps)

    def warm_schedule(self) -> ProjectionSchedule:
        """No w noise (the start is not a guess to escape from) and no ramp-up: a short cosine descent."""
        return ProjectionSchedule(num_steps=self.warm_steps, initial_learning_rate=self.warm_learning_rate,
                                  initial_noise_factor=0.0, lr_rampup_length=0.0, lr_rampdown_length=1.0)


@dataclass
class FrameProjections:
    """The result for N frames."""

    ws: np.ndarray  # float32 [N, num_ws, w_dim]
    steps: np.ndarray  # int [N]: optimiser steps spent on each frame
    cold: np.ndarray  # bool [N]: started from the mean w
    trace: List[List[float]] = field(default_factory=list)  # per frame, the distance at every step


def plan_chains(shot_starts: Sequence[bool], slots: int, cold_cost: int, warm_cost: int,
                warm: bool = True) -> List[List[int]]:
    """Frame positions grouped into chains, each projected in order (first cold, the rest warm).

    Without warm starts every frame is its own chain. Otherwise chains are the shots; while there are
    fewer chains than slots, the longest chain is split in two (the second half starts cold) if that
    shortens it by more steps than the extra cold start costs, so that slots do not sit idle while one
    long shot runs on.
    Returned longest first, the order in which slots take them.
    """
    count = len(shot_starts)
    if not warm:
        return [[i] for i in range(count)]
    chains: List[List[int]] = []
    for i, starts in enumerate(shot_starts):
        if starts or not chains:
            chains.append([])
        chains[-1].append(i)

    def cost(chain: List[int]) -> int:
        return cold_cost + (len(chain) - 1) * warm_cost

    while len(chains) < slots:
        longest = max(chains, key=cost)
        half = len(longest) // 2
        if half == 0:
            break
        pieces = [longest[:half], longest[half:]]
        saved = cost(longest) - max(cost(p) for p in pieces)  # off the longest chain's time
        if saved <= cold_cost - warm_cost:  # not worth the extra cold start
            break
        chains.remove(longest)
        chains += pieces
    return sorted(sorted(chains), key=cost, reverse=True)


def project_frames(G: torch.nn.Module, frames: np.ndarray, shot_starts: Sequence[bool], distance: ImageDistance,
                   settings: VideoProjectionSettings, device: torch.device, frame_numbers: Optional[Sequence[int]] = None,
                   progress: bool = True, on_step: Optional[Callable[[int, float], None]] = None) -> FrameProjections:
    """Project ``frames`` (uint8 ``[N, H, W, C]`` at G's size); ``shot_starts[i]``: frame i must start cold.

    ``frame_numbers`` seed each frame's random stream (default: positions). ``on_step(frame, distance)``
    sees every step (for benchmarks that count steps to a given distance).
    """
    count = len(frames)
    numbers = list(frame_numbers) if frame_numbers is not None else list(range(count))
    chains = plan_chains(shot_starts, settings.batch, settings.steps, settings.warm_steps, settings.warm)
    slots = min(settings.batch, len(chains))
    engine = Projector(G, distance, slots=slots, space=settings.space, optimize_noise=settings.optimize_noise,
                       device=device)
    targets = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    cold_schedule, warm_schedule = settings.cold_schedule(), settings.warm_schedule()

    ws = np.zeros([count, G.num_ws, G.w_dim], np.float32)
    steps = np.zeros(count, np.int64)
    cold = np.zeros(count, bool)
    trace: List[List[float]] = [[] for _ in range(count)]
    queue = list(chains)
    running: List[Optional[List[int]]] = [None] * slots  # the rest of each slot's chain, current frame first

    def begin(slot: int, previous: Optional[int]) -> None:
        frame = running[slot][0]
        warm_start = previous is not None
        engine.start(slot, targets[frame], warm_schedule if warm_start else cold_schedule,
                     latent=engine.latent(slot) if warm_start else None,
                     noise=engine.noise(slot) if warm_start else None, seed=settings.seed + numbers[frame],
                     keep_moments=warm_start and settings.keep_moments)
        cold[frame] = not warm_start

    for slot in range(slots):
        running[slot] = queue.pop(0)
        begin(slot, None)
    bar = tqdm(total=count, desc="project", unit="frame", disable=not progress, leave=False)
    while engine.busy():
        for slot, value in engine.step().items():
            frame = running[slot][0]
            trace[frame].append(value)
            steps[frame] += 1
            if on_step is not None:
                on_step(frame, value)
        for slot in range(slots):
            if running[slot] is None or not engine.done(slot):
                continue
            finished = running[slot].pop(0)
            ws[finished] = engine.ws(slot).cpu().numpy()
            bar.update(1)
            if running[slot]:
                begin(slot, finished)
            elif queue:
                running[slot] = queue.pop(0)
                begin(slot, None)
            else:
                running[slot] = None
                engine.release(slot)
    bar.close()
    return FrameProjections(ws=ws, steps=steps, cold=cold, trace=trace)


@torch.no_grad()
def render(G: torch.nn.Module, ws: np.ndarray, device: torch.device, batch: int = 16) -> np.ndarray:
    """G's images of ``ws`` ``[N, num_ws, w_dim]`` with its constant noise, uint8 ``[N, H, W, C]``."""
    G = G.to(device).eval()
    chunks = [to_uint8(synthesize(G, torch.from_numpy(np.ascontiguousarray(part)).to(device)))
              for part in np.array_split(ws, max(1, -(-len(ws) // batch)))]
    return np.concatenate(chunks)


@torch.no_grad()
def frame_scores(images: np.ndarray, targets: np.ndarray, distance: ImageDistance, device: torch.device,
                 batch: int = 16) -> dict:
    """Per frame: PSNR (dB, 0-255) and the distance, between uint8 ``[N, H, W, C]`` images and targets."""
    def chw(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().to(device)

    psnrs, dists = [], []
    for start in range(0, len(images), batch):
        a, b = chw(images[start:start + batch]), chw(targets[start:start + batch])
        psnrs += psnr(a, b).tolist()
        dists += distance(a, b).tolist()
    return dict(psnr=psnrs, distance=dists)
