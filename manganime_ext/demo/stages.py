"""The demo's stages: each one is the real command lines a user would type, in order.

A stage names its commands (run as subprocesses, so the demo exercises exactly what the README shows),
an optional ``finish`` step (e.g. keep the final snapshot under a stable name), and what the report
shows of it: pictures, videos and numbers read back from the files the commands wrote.
"""

import dataclasses
import glob
import json
import os
import shutil
import sys
from typing import Callable, Dict, List, Optional, Sequence, Union

from manganime_ext.io.json_files import write_json

from .settings import DemoSettings

Command = List[str]
# A stage's commands are built when the stage starts; an entry may also be a function that builds
# its command just before it runs, when it depends on what an earlier command of the stage wrote.
CommandOrLater = Union[Command, Callable[[], Command]]


@dataclasses.dataclass
class Stage:
    name: str
    title: str
    about: str  # one paragraph for the report: what the stage does and why
    commands: Callable[["Layout", DemoSettings], List[CommandOrLater]]
    finish: Optional[Callable[["Layout", DemoSettings], None]] = None
    pictures: Sequence[str] = ()  # paths relative to the output folder
    videos: Sequence[str] = ()
    numbers: Optional[Callable[["Layout"], Dict[str, object]]] = None


class Layout:
    """Where every stage reads and writes, under one output folder."""

    def __init__(self, out: str):
        self.out = os.path.abspath(out)

    def __call__(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    @property
    def val_episode(self) -> str:
        names = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(self("series/episodes/*.mp4")))
        return names[-1]


def _py(*module_args: object) -> Command:
    return [sys.executable, "-m", *[str(a) for a in module_args]]


def _tool(*args: object) -> Command:
    return _py("dataset_tool_anime", *args)


def _newest(pattern: str) -> str:
    found = sorted(glob.glob(pattern))
    if not found:
        raise FileNotFoundError(f"nothing matches {pattern}")
    return found[-1]


def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- data -------------------------------------------------------------------------------------------

def _series(p: Layout, s: DemoSettings) -> List[CommandOrLater]:
    return [_tool("synth", "--out", p("series"), "--episodes", s.episodes, "--seconds", s.seconds,
                  "--resolution", s.source_resolution, "--seed", s.seed, "--intro-seconds", s.intro_seconds,
                  "--outro-seconds", s.outro_seconds, "--cast", s.cast, "--force"),
            lambda: _tool("frames", "--out", p("stores"), "--stride", 2, "--resolution", s.resolution, "--force",
                          *sorted(glob.glob(p("series/episodes/*.mp4"))))]


def _exclusions(p: Layout, s: DemoSettings) -> List[Command]:
    stores = sorted(glob.glob(p("stores/*")))
    return [_tool("intro", *stores, "--out", p("exclusions.json"), "--force"),
            _tool("outro", *stores, "--out", p("exclusions.json"), "--merge")]


def _cuts_and_align(p: Layout, s: DemoSettings) -> List[Command]:
    truth = p("series/ground_truth.json")
    return [_tool("cuts", "--stores", p("stores"), "--out", p("cuts"), "--truth", truth, "--force"),
            _tool("align", "--stores", p("stores"), "--manga", p("series/manga"), "--out", p("align"),
                  "--truth", truth, "--force")]


def _exports(p: Layout, s: DemoSettings) -> List[Command]:
    return [_tool("truth", "--series", p("series"), "--stores", p("stores"), "--out", p("truth"), "--force"),
            _tool("check", "--series", p("truth/series.json")),
            _tool("export-conditional", "--series", p("truth/series.json"), "--out", p("data/paired.zip"),
                  "--val-episodes", p.val_episode, "--cuts", p("truth/cuts.json"), "--force")]


def _train_only_config(p: Layout, s: DemoSettings) -> None:
    """The unconditional network never sees the held-out episode either."""
    config = _read(p("truth/series.json"))
    config["episodes"] = [ep for ep in config["episodes"] if ep["name"] != p.val_episode]
    write_json(p("truth/train_series.json"), config)


def _unconditional_export(p: Layout, s: DemoSettings) -> List[Command]:
    _train_only_config(p, s)
    return [_tool("export-unconditional", "--series", p("truth/train_series.json"), "--out", p("data/frames.zip"),
                  "--force")]


def _data_numbers(p: Layout) -> Dict[str, object]:
    cuts, align = _read(p("cuts/report.json")), _read(p("align/report.json"))
    paired = _read_zip_index(p("data/paired.zip"))
    return {"cut detection vs truth": _short(cuts), "align proposal vs truth": _short(align),
            "paired export": dict(train_pairs=len(paired["train"]), val_pairs=len(paired["val"]),
                                  val_episodes=paired["val_episodes"], stride=paired["stride"])}


def _read_zip_index(path: str) -> dict:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("index.json"))


def _short(report: dict) -> dict:
    """The headline fields of a cuts/align report (whatever per-episode detail follows)."""
    return {k: v for k, v in report.items() if not isinstance(v, (list, dict))}


# --- networks ------------------------------------------------------------------------------------

def _stylegan2(p: Layout, s: DemoSettings) -> List[Command]:
    if os.path.isdir(p("stylegan2/runs")):
        shutil.rmtree(p("stylegan2/runs"))  # a half-finished run is started again, not continued
    return [_py("stylegan2_ada.train", f"--outdir={p('stylegan2/runs')}", f"--data={p('data/frames.zip')}", "--mirror",
                f"--kimg={s.gan_kimg}", f"--max-minutes={s.gan_minutes:g}", f"--tick={max(s.gan_kimg / 6, 0.004):g}",
                "--snap=1000", f"--glr={s.gan_glr:g}", f"--dlr={s.gan_dlr:g}",
                f"--cfg={s.gan_cfg}", f"--gamma={s.gan_gamma:g}", f"--batch={s.gan_batch}", f"--cbase={s.gan_cbase}",
                f"--cmax={s.gan_cmax}", "--map=2", f"--noise={int(s.gan_noise)}", "--aug=noaug", "--workers=1",
                f"--seed={s.seed}")]


def _keep_network(p: Layout, s: DemoSettings) -> None:
    run = _newest(p("stylegan2/runs/*"))
    shutil.copyfile(_newest(os.path.join(run, "network-snapshot-*.pkl")), p("stylegan2/network.pkl"))
    shutil.copyfile(_newest(os.path.join(run, "fakes0*.png")), p("stylegan2/fakes.png"))
    shutil.copyfile(os.path.join(run, "reals.png"), p("stylegan2/reals.png"))


def _gan_numbers(p: Layout) -> Dict[str, object]:
    """How far training got: the last tick line of the run's log, and whether the time budget ended it."""
    with open(os.path.join(_newest(p("stylegan2/runs/*")), "log.txt"), encoding="utf-8") as f:
        log = f.read().splitlines()
    ticks = [line.split() for line in log if line.startswith("tick ")]
    fields = dict(zip(ticks[-1][0::2], ticks[-1][1::2])) if ticks else {}
    return {"kimg trained": fields.get("kimg"), "sec/kimg (last tick)": fields.get("sec/kimg"),
            "stopped by": "the time budget" if any("Time budget" in line for line in log) else "--kimg"}


def _samples(p: Layout, s: DemoSettings) -> List[Command]:
    return [_py("stylegan2_ada.generate", f"--network={p('stylegan2/network.pkl')}", "--seeds=0-15",
                f"--outdir={p('stylegan2/samples')}")]


def _cond(cond: str, steps_of: Callable[[DemoSettings], int]):
    def commands(p: Layout, s: DemoSettings) -> List[Command]:
        if os.path.isdir(p(cond, "runs")):
            shutil.rmtree(p(cond, "runs"))
        return [_py("train_cond", f"--data={p('data/paired.zip')}", f"--network={p('stylegan2/network.pkl')}",
                    f"--cond={cond}", f"--outdir={p(cond, 'runs')}", f"--steps={steps_of(s)}", f"--batch={s.cond_batch}",
                    "--workers=1", f"--tick={max(steps_of(s) * s.cond_batch / 3000, 0.004):g}", "--snap=1000",
                    "--val-pairs=64", "--rollout-steps=8", f"--seed={s.seed}")]

    def finish(p: Layout, s: DemoSettings) -> None:
        run = _newest(p(cond, "runs/*"))
        shutil.copyfile(_newest(os.path.join(run, "network-snapshot-*.pkl")), p(cond, "network.pkl"))
        shutil.copyfile(_newest(os.path.join(run, "pairs0*.png")), p(cond, "pairs.png"))

    return commands, finish


def _evaluation(p: Layout, s: DemoSettings) -> List[Command]:
    return [_py("train_cond", "eval", f"--data={p('data/paired.zip')}", f"--network=paper={p('paper/network.pkl')}",
                f"--network=warpstyle={p('warpstyle/network.pkl')}", f"--out={p('evaluation')}", "--force")]


def _evaluation_numbers(p: Layout) -> Dict[str, object]:
    report = _read(p("evaluation/evaluation.json"))
    table = {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
             for name, row in report["one_step"].items()}
    return {"held-out pairs, one step": table,
            "page ablation (PSNR with the true / a wrong page)": {
                name: [round(ab["true_page"]["psnr"], 3), round(ab["wrong_page"]["psnr"], 3)]
                for name, ab in report.get("page_ablation", {}).items()}}


def _rollout(p: Layout, s: DemoSettings) -> List[Command]:
    val = p.val_episode
    start = _first_frame_after(p("truth/tags", f"{val}.json"))
    return [_py("train_cond", "rollout", f"--network={p('warpstyle/network.pkl')}",
                f"--video={p('series/episodes', val + '.mp4')}", "--stride=2", f"--start={start}",
                f"--frames={s.rollout_frames}", f"--page-function={p('truth/tags', val + '.json')}",
                f"--manga={p('series/manga')}", f"--out={p('rollout')}", "--force")]


def _first_frame_after(page_function_path: str) -> int:
    """A start a little after the intro: the first supported frame + 4."""
    pf = _read(page_function_path)
    excluded_until = max([b for a, b in pf.get("exclusions", []) if a == 0] or [0])
    return int(excluded_until) + 4


def _clip(p: Layout, s: DemoSettings):
    """The held-out episode's clip to project: from 1 s after its intro, ``projection_seconds`` long."""
    pf = _read(p("truth/tags", f"{p.val_episode}.json"))
    intro_stop = max([b for a, b in pf.get("exclusions", []) if a == 0] or [0])
    start = intro_stop * 2 / 24 + 1.0  # stored frames are 12 fps of a 24 fps video
    return p("series/episodes", f"{p.val_episode}.mp4"), round(start, 2), round(start + s.projection_seconds, 2)


def _projection(p: Layout, s: DemoSettings) -> List[Command]:
    video, start, end = _clip(p, s)
    network = p("stylegan2/network.pkl")
    offsets = ["--start-offset", f"{s.projection_seconds * 0.2:g}", "--end-offset", f"{s.projection_seconds * 0.2:g}"]
    return [_py("projector_video", "project", f"--network={network}", f"--video={video}", f"--start={start}",
                f"--end={end}", "--every=2", f"--steps={s.projection_steps}", "--distance=msssim",
                f"--out={p('projection/clip')}", "--force"),
            _py("projector_video", "interpolate", f"--network={network}", f"--projection={p('projection/clip')}",
                f"--frames-per-transition={s.interpolation_frames}", "--fps=12", "--distance=msssim", *offsets,
                f"--out={p('projection/interpolation')}", "--force"),
            _py("projector_video", "figure", f"--network={network}", f"--projection={p('projection/clip')}",
                *offsets, f"--out={p('projection/figure.png')}", "--force")]


def _projection_numbers(p: Layout) -> Dict[str, object]:
    metrics = _read(p("projection/clip/metrics.json"))
    smooth = _read(p("projection/interpolation/smoothness.json"))
    return {"projection": {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))},
            "interpolation smoothness": smooth if not isinstance(smooth, list) else smooth[0]}


STAGES: List[Stage] = [
    Stage("series", "The synthetic series",
          "synth writes cel-shaded episodes (H.264), their manga volume and the ground truth; frames decodes each "
          "episode once into a frame store at 12 fps (stride 2, as the study) and the demo's resolution.",
          _series, pictures=("pictures/frames.png", "pictures/pages.png")),
    Stage("exclusions", "Intro and outro",
          "intro and outro find the sequences every episode shares (no manga behind them) and mark them as exclusions.",
          _exclusions),
    Stage("cuts_align", "Cuts and the proposed page function",
          "cuts finds shot changes from rho; align proposes each episode's page function by matching frames to the "
          "manga's line art. Both are scored against the ground truth here; a person would confirm the proposal in the "
          "tagger. The rest of the demo uses the ground-truth page functions, so it measures training, not tagging.",
          _cuts_and_align, pictures=("pictures/align.png",), numbers=_data_numbers),
    Stage("exports", "Ground truth and the paired dataset",
          "truth writes the series config with the ground-truth page functions; export-conditional writes the "
          "(F_n, page, F_n+1) pairs with the last episode held out for evaluation.", _exports),
    Stage("frames_export", "Unconditional dataset",
          "export-unconditional writes the training episodes' frames as an official StyleGAN2-ADA dataset zip.",
          _unconditional_export),
    Stage("stylegan2", "StyleGAN2-ADA on the frames",
          "python -m stylegan2_ada.train on the frames of the training episodes; G_ema's samples at the end.",
          _stylegan2, finish=_keep_network, pictures=("stylegan2/reals.png", "stylegan2/fakes.png"),
          numbers=_gan_numbers),
    Stage("samples", "Samples", "python -m stylegan2_ada.generate, seeds 0-15.", _samples,
          pictures=("pictures/samples.png",)),
    Stage("paper", "The study's conditioning (paper)",
          "train_cond.py --cond=paper: pooled greyscale F_n and page replace z, pixel MSE, Adam 1e-3.",
          *_cond("paper", lambda s: s.paper_steps), pictures=("paper/pairs.png",)),
    Stage("warpstyle", "Our predictor (warpstyle)",
          "train_cond.py --cond=warpstyle: flow warp of F_n blended with the pretrained synthesis network, "
          "driven by a U-Net over F_n, the motion F_n - F_n-1 and the page.",
          *_cond("warpstyle", lambda s: s.ours_steps), pictures=("warpstyle/pairs.png",)),
    Stage("evaluation", "Held-out evaluation",
          "train_cond.py eval on the held-out episode: both predictors against copy-last-frame and linear "
          "extrapolation (same code, same pairs), the rollout curve and the page ablation.",
          _evaluation, pictures=("evaluation/evaluation.png",), numbers=_evaluation_numbers),
    Stage("rollout", "Rollout video",
          "train_cond.py rollout: warpstyle predicts each frame from its own previous predictions and the pages of "
          "the held-out episode's page function.",
          _rollout, pictures=("rollout/figure.png",), videos=("rollout/side_by_side.mp4", "rollout/rollout.mp4")),
    Stage("projection", "Projection and interpolation",
          "projector_video.py project puts every other frame of a held-out clip into W (batched, each frame warm-"
          "started from the previous one, cold again at cuts; MS-SSIM + L1 distance, no download needed); "
          "interpolate walks linearly in W between two projected frames (the study's Figure 6), and figure draws "
          "ground truth / projection / interpolation.",
          _projection, pictures=("projection/figure.png", "projection/clip/metrics.png"),
          videos=("projection/clip/side_by_side.mp4", "projection/interpolation/interpolation.mp4"),
          numbers=_projection_numbers),
]
