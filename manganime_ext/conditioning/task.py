"""Next-frame training as a plug-in task of stylegan2_ada's shared training loop.

The loop brings everything that is not about next frames (sharded data, optimisers, EMA, ticks,
stats.jsonl, atomic snapshots, resume, several processes); this task says what is trained: ``G`` is
the predictor built on the unconditional snapshot (``G_ema`` its moving average), ``D`` the snapshot's
discriminator when the adversarial term is on. At each snapshot it draws a grid of
(F_n, page, predicted, true F_{n+1}) and evaluates on the held-out episodes against the baselines.
"""

import copy
import json
import os
from typing import Any, Dict, Optional

import torch

from manganime_ext.io.json_files import write_json
from manganime_ext.io.pictures import save_png
from stylegan2_ada import dnnlib, legacy
from stylegan2_ada.training.task import TrainingError, TrainingTask

from . import evaluation, figures, paper, warpstyle  # noqa: F401  (paper, warpstyle: register the built-in predictors)
from .data import NextFrameDataset, to_model
from .loss import NextFrameLoss
from .predictor import NextFramePredictor, PredictorError, build_predictor

GRID_PAIRS = 8


def load_generator_snapshot(path: str, need_discriminator: bool = False) -> Dict[str, Any]:
    """The unconditional snapshot (ours or an official pickle, path or URL); problems as one-line errors."""
    try:
        with dnnlib.util.open_url(path) as f:
            return legacy.load_network_pkl(f, require=("G_ema", "D") if need_discriminator else ("G_ema",))
    except (legacy.NetworkLoadError, OSError) as err:
        raise TrainingError(f"--network: {' '.join(str(err).split())}") from None


def load_predictor(path: str, device: torch.device) -> NextFramePredictor:
    """A trained predictor (``G_ema`` of a train_cond snapshot) for evaluation and rollout."""
    try:
        with dnnlib.util.open_url(path) as f:
            model = legacy.load_network_pkl(f)["G_ema"]
    except (legacy.NetworkLoadError, OSError) as err:
        raise TrainingError(" ".join(str(err).split())) from None
    if not isinstance(model, NextFramePredictor):
        raise TrainingError(f"{path}: holds a {type(model).__name__}, not a next-frame predictor "
                            "(give a snapshot written by train_cond.py)")
    return model.to(device).eval()


class NextFrameTask(TrainingTask):
    """Train a registered :class:`NextFramePredictor` (``--cond``) from a pretrained generator."""

    ema = {"G_ema": "G"}

    def __init__(
        self,
        options: Dict[str, Any],
        cond: str = "warpstyle",  # registered predictor name
        network_pkl: str = "",  # the unconditional snapshot the predictor starts from
        predictor_kwargs: Optional[Dict[str, Any]] = None,  # extra constructor arguments of the predictor
        train: str = "all",  # parameter group to update: all, synthesis or encoder
        eval_pairs: int = 512,  # held-out pairs scored at each snapshot (spread over the split)
        rollout_steps: int = 16,  # longest rollout of the k-step curve
        compare: Optional[Dict[str, str]] = None,  # name -> trained predictor snapshot evaluated alongside
        detector_dir: Optional[str] = None,  # where vgg16.pt is (perceptual loss)
    ):
        super().__init__(options)
        self.cond, self.network_pkl, self.train = cond, network_pkl, train
        self.predictor_kwargs = dict(predictor_kwargs or {})
        self.eval_pairs, self.rollout_steps = eval_pairs, rollout_steps
        self.compare = dict(compare or {})
        self.detector_dir = detector_dir
        adversarial = bool(options.get("loss_kwargs", {}).get("adv_weight"))
        self.trained = ("G", "D") if adversarial else ("G",)
        self._val: Optional[NextFrameDataset] = None
        self._grid: Optional[Dict[str, torch.Tensor]] = None

    # Set-up -------------------------------------------------------------------------------------

    def build_networks(self, session, resumed):
        adversarial = "D" in self.trained
        if resumed is not None:
            G, G_ema, D = resumed["G"], resumed["G_ema"], resumed.get("D")
            if not isinstance(G, NextFramePredictor):
                raise TrainingError("--resume: the file is not a train_cond.py snapshot (no predictor in it)")
        else:
            source = load_generator_snapshot(self.network_pkl, need_discriminator=adversarial)
            try:
                G = build_predictor(self.cond, source["G_ema"].init_kwargs, **self.predictor_kwargs)
            except (PredictorError, TypeError) as err:
                raise TrainingError(" ".join(str(err).split())) from None
            G.init_from_generator(source["G_ema"])
            G_ema = copy.deepcopy(G)
            D = source["D"] if adversarial else None
        resolution = session.training_set.resolution
        if G.img_resolution != resolution:
            raise TrainingError(f"--network makes {G.img_resolution}x{G.img_resolution} images but --data holds "
                                f"{resolution}x{resolution} frames: export the pairs at the network's resolution")
        nets = dict(G=G.train(), G_ema=G_ema.eval(), D=None if D is None else D.train())
        return {k: None if v is None else v.requires_grad_(False).to(session.device) for k, v in nets.items()}

    def build_loss(self, session):
        kwargs = dict(self.options.get("loss_kwargs") or {})
        lpips = None
        if kwargs.get("lpips_weight"):
            from manganime_ext.analysis.image_quality import load_lpips
            from stylegan2_ada.metrics import MetricError

            try:
                lpips = load_lpips(session.device, self.detector_dir)
            except MetricError as err:
                raise TrainingError(f"--lpips: {err}") from None
        return NextFrameLoss(G=session.networks["G"], D=session.networks.get("D"), lpips=lpips, **kwargs)

    def trainable_parameters(self, session, name):
        if name != "G":
            return list(session.networks[name].parameters())
        try:
            return session.networks["G"].trainable(self.train)
        except PredictorError as err:
            raise TrainingError(str(err)) from None

    # The step -----------------------------------------------------------------------------------

    def next_batch(self, session, rounds):
        batches = []
        for _ in range(rounds):
            items = next(session.data_iter)
            batches.append({key: to_model(items[key], session.device) for key in ("frames", "pages", "target")})
        return batches

    # Maintenance --------------------------------------------------------------------------------

    def _validation(self) -> NextFrameDataset:
        if self._val is None:
            path = self.options["training_set_kwargs"]["path"]
            self._val = NextFrameDataset(path, split="val", max_size=self.eval_pairs)
        return self._val

    def begin(self, session, run_dir):
        val = self._validation()
        rows = torch.linspace(0, len(val) - 1, min(GRID_PAIRS, len(val))).round().long().tolist()
        items = [val[r] for r in rows]
        self._grid = {k: to_model(torch.stack([i[k] for i in items]), session.device) for k in ("frames", "pages", "target")}
        self._save_grid(session, os.path.join(run_dir, "pairs_init.png"))

    def save_images(self, session, run_dir):
        self._save_grid(session, os.path.join(run_dir, f"pairs{session.cur_nimg // 1000:06d}.png"))

    @torch.no_grad()
    def _save_grid(self, session, path: str) -> None:
        grid = self._grid
        predicted = session.G_ema(grid["frames"], grid["pages"])
        middle = grid["pages"].shape[1] // 2
        save_png(figures.pair_grid(grid["frames"][:, -1], grid["pages"][:, middle], predicted, grid["target"]), path)

    def evaluate(self, session, run_dir, snapshot_path):
        if session.rank != 0:
            return
        models = {self.cond: session.G_ema}
        for name, path in self.compare.items():
            models[name] = load_predictor(path, session.device)
        report = evaluation.evaluate(models, self._validation(), session.device, rollout_steps=self.rollout_steps)
        session.G_ema.eval()
        kimg = session.cur_nimg // 1000
        report.update(snapshot_pkl=os.path.basename(snapshot_path), kimg=session.cur_nimg / 1000)
        stem = os.path.join(run_dir, f"eval{kimg:06d}")
        write_json(stem + ".json", report)
        figures.plot_evaluation(report, stem + ".png", title=f"{self.cond} at {session.cur_nimg / 1000:g} kimg")
        summary = dict(kimg=session.cur_nimg / 1000, snapshot_pkl=report["snapshot_pkl"], one_step=report["one_step"])
        with open(os.path.join(run_dir, "metric-nextframe.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(summary) + "\n")
