"""Held-out evaluation of next-frame predictors against simple baselines, all through the same code.

On the validation split (episodes never seen in training) it measures:

* **one step**: MSE (0-255), PSNR and SSIM of each predictor and of the baselines **copy-last-frame**
  (F_{n+1} = F_n) and **linear extrapolation** (clip(2 F_n - F_{n-1})), over all pairs and, when the
  export knows the cuts, separately for pairs inside a shot and pairs that cross a cut (a new shot
  nobody can predict from the old one);
* **rollout**: autoregressive k-step predictions, k = 1..``rollout_steps``, from starts whose next
  ``rollout_steps`` pairs are consecutive and inside one shot, against copy-last (the start frame held)
  and linear extrapolation (the start's velocity continued);
* **page ablation**: each predictor's one-step scores with the true page window and with a wrong page
  of the same episode: if the manga conditioning carries information, the wrong page scores worse.

A pair without F_{n-1} in the export (the first of a run) gives every method F_n as its history, so all
methods always see the same inputs. PSNR per pair is capped at 60 dB (identical frames).
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from manganime_ext.analysis.image_quality import mse_255, psnr_from_mse, psnr_of_mean_mse, ssim

from .data import NextFrameDataset, to_255, to_model, wrong_pages

COPY_LAST = "copy_last"
LINEAR = "linear_extrapolation"
BASELINES = (COPY_LAST, LINEAR)


class EvaluationError(ValueError):
    """Nothing to evaluate (e.g. an export without validation episodes); one line naming what is missing."""


def baseline(name: str, frames: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """A baseline's prediction ``steps`` frames after the last of ``frames`` [N, 2, 3, H, W] (model range)."""
    current = frames[:, -1]
    if name == COPY_LAST:
        return current
    return (current + steps * (current - frames[:, -2])).clamp(-1, 1)


def _scores(pred: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
    pred_255, target_255 = to_255(pred), to_255(target)
    mse = mse_255(pred_255, target_255)
    return dict(mse=mse, psnr=psnr_from_mse(mse), ssim=ssim(pred_255, target_255))


def _summary(scores: Dict[str, torch.Tensor], keep: Optional[torch.Tensor] = None) -> Dict[str, float]:
    if keep is not None:
        scores = {k: v[keep] for k, v in scores.items()}
    count = int(scores["mse"].numel())
    if count == 0:
        return dict(pairs=0)
    return dict(pairs=count, mse=float(scores["mse"].mean()), psnr=float(scores["psnr"].mean()),
                psnr_of_mean_mse=psnr_of_mean_mse(scores["mse"]), ssim=float(scores["ssim"].mean()))


def _batches(dataset: NextFrameDataset, rows: Sequence[int], batch: int):
    for start in range(0, len(rows), batch):
        items = [dataset[r] for r in rows[start:start + batch]]
        yield {key: torch.stack([item[key] for item in items]) for key in items[0]}


@torch.no_grad()
def one_step_scores(predictors: Dict[str, torch.nn.Module], dataset: NextFrameDataset, device: torch.device,
                    batch: int = 32, page_override: Optional[List[int]] = None) -> Dict[str, Dict[str, torch.Tensor]]:
    """Per-pair scores {method: {mse, psnr, ssim}} over every row of ``dataset`` (baselines included unless
    ``page_override`` swaps each row's page window for the page given, as the page ablation does)."""
    methods = list(predictors) + ([] if page_override is not None else list(BASELINES))
    collected: Dict[str, Dict[str, List[torch.Tensor]]] = {m: {} for m in methods}
    rows = list(range(len(dataset)))
    for first, items in zip(range(0, len(rows), batch), _batches(dataset, rows, batch)):
        frames, pages, target = (to_model(items[k], device) for k in ("frames", "pages", "target"))
        if page_override is not None:
            pages = torch.stack([to_model(dataset.pages(p), device) for p in page_override[first:first + batch]])
        for method in methods:
            pred = predictors[method](frames, pages) if method in predictors else baseline(method, frames)
            for key, value in _scores(pred, target).items():
                collected[method].setdefault(key, []).append(value.cpu())
    return {m: {k: torch.cat(v) for k, v in scores.items()} for m, scores in collected.items()}


@torch.no_grad()
def rollout_curves(predictors: Dict[str, torch.nn.Module], dataset: NextFrameDataset, device: torch.device,
                   steps: int = 16, max_starts: int = 32) -> Dict[str, object]:
    """Mean PSNR/SSIM after k = 1..steps autoregressive predictions, for predictors and baselines."""
    chains = dataset.chains(steps)
    if len(chains) > max_starts:
        chains = [chains[i] for i in np.linspace(0, len(chains) - 1, max_starts).round().astype(int)]
    curves: Dict[str, Dict[str, List[float]]] = {m: dict(psnr=[], ssim=[]) for m in list(predictors) + list(BASELINES)}
    if not chains:
        return dict(starts=0, k=[], **curves)
    start = [dataset.item(c[0]) for c in chains]
    history = to_model(torch.stack([s["frames"] for s in start]), device)
    windows = {m: history.clone() for m in predictors}
    for k in range(1, steps + 1):
        items = [dataset.item(c[k - 1]) for c in chains]
        target = to_model(torch.stack([i["target"] for i in items]), device)
        pages = to_model(torch.stack([i["pages"] for i in items]), device)
        for method in curves:
            if method in predictors:
                pred = predictors[method](windows[method], pages)
                windows[method] = torch.stack([windows[method][:, -1], pred], dim=1)
            else:
                pred = baseline(method, history, steps=k)
            scores = _scores(pred, target)
            curves[method]["psnr"].append(float(scores["psnr"].mean()))
            curves[method]["ssim"].append(float(scores["ssim"].mean()))
    return dict(starts=len(chains), k=list(range(1, steps + 1)), **curves)


def evaluate(predictors: Dict[str, torch.nn.Module], dataset: NextFrameDataset, device: torch.device,
             batch: int = 32, rollout_steps: int = 16, max_rollouts: int = 32) -> Dict[str, object]:
    """The whole held-out report as plain data (written as JSON and plotted by ``figures``)."""
    if len(dataset) == 0:
        raise EvaluationError(f"{dataset.path}: the {dataset.split} split has no pairs "
                              "(export with --val-episodes to hold episodes out)")
    for module in predictors.values():
        module.eval()
    scores = one_step_scores(predictors, dataset, device, batch)
    cut_flags = [dataset.crosses_cut(pair) for pair in dataset.rows]
    report: Dict[str, object] = dict(
        split=dataset.split, pairs=len(dataset), stride=dataset.stride,
        pairs_with_history=int(sum(dataset.has_frame(int(e), int(n) - dataset.stride) for e, n, _, _ in dataset.rows)),
        one_step={m: _summary(s) for m, s in scores.items()})
    if all(flag is not None for flag in cut_flags):
        across = torch.tensor(cut_flags, dtype=torch.bool)
        report["one_step_within_shot"] = {m: _summary(s, ~across) for m, s in scores.items()}
        report["one_step_across_cut"] = {m: _summary(s, across) for m, s in scores.items()}
    report["rollout"] = rollout_curves(predictors, dataset, device, rollout_steps, max_rollouts)
    if predictors:
        wrong = wrong_pages(dataset, range(len(dataset)))
        ablated = one_step_scores(predictors, dataset, device, batch, page_override=wrong)
        report["page_ablation"] = {m: dict(true_page=_summary(scores[m]), wrong_page=_summary(ablated[m]))
                                   for m in predictors}
    return report
