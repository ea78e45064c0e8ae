"""A model that is not StyleGAN2 trains through the shared loop as a plug-in task.

The task below is what a package such as manganime_ext.conditioning writes: its own dataset (dict
items, not (image, label)), its own network registered for snapshots, its own loss and phases.
Everything else — sharded data stream, optimisers, EMA, tick log, stats.jsonl, atomic snapshots,
resume — comes from stylegan2_ada.training.training_loop unchanged.
"""

import json
import os

import numpy as np
import pytest
import torch

from stylegan2_ada import legacy
from stylegan2_ada.torch_utils import persistence, training_stats
from stylegan2_ada.training import training_loop as loop
from stylegan2_ada.training.loss import NonFiniteLossError
from stylegan2_ada.training.task import TrainingError, TrainingTask

TRUE_WEIGHTS = torch.tensor([1.5, -2.0, 0.5, 3.0])


class LinearPairs(torch.utils.data.Dataset):
    """Items are dicts {x, y} with y = <TRUE_WEIGHTS, x>: nothing like an image folder."""

    def __init__(self, size: int = 64, seed: int = 0):
        self.x = torch.from_numpy(np.random.RandomState(seed).randn(size, 4).astype(np.float32))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return dict(x=self.x[idx], y=(self.x[idx] @ TRUE_WEIGHTS).unsqueeze(0))


@legacy.register_class
@persistence.persistent_class
class Regressor(torch.nn.Module):
    """The plug-in's own network: stored in snapshots by its registered ``module.Class`` name."""

    def __init__(self, in_features: int = 4):
        super().__init__()
        self.linear = torch.nn.Linear(in_features, 1)

    def forward(self, x):
        return self.linear(x)


class RegressionLoss:
    """One phase, ``Rboth``: mean squared error, reported like the GAN losses."""

    def __init__(self, R):
        self.R = R

    def accumulate_gradients(self, phase, x, y, sync, gain):
        assert phase == "Rboth"
        loss = (self.R(x) - y).square()
        training_stats.report("Loss/mse", loss)
        if not bool(torch.isfinite(loss).all()):
            raise NonFiniteLossError(phase)
        loss.mean().mul(gain).backward()


class RegressionTask(TrainingTask):
    trained = ("R",)
    ema = {"R_ema": "R"}

    def build_networks(self, session, resumed):
        if resumed is not None:
            return dict(R=resumed["R"].train(), R_ema=resumed["R_ema"])
        R = Regressor(**self.task_kwargs)
        ema = Regressor(**self.task_kwargs)
        ema.load_state_dict(R.state_dict())
        return dict(R=R.requires_grad_(False), R_ema=ema.requires_grad_(False))

    def build_loss(self, session):
        return RegressionLoss(session.networks["R"])

    def next_batch(self, session, rounds):
        batches = [next(session.data_iter) for _ in range(rounds)]
        return [{k: v.to(session.device) for k, v in b.items()} for b in batches]

    def save_images(self, session, run_dir):
        with open(os.path.join(run_dir, f"weights{session.cur_nimg:06d}.json"), "w") as f:
            json.dump(session.networks["R_ema"].linear.weight.flatten().tolist(), f)

    def tick_fields(self, session):
        return {"bias": float(session.networks["R"].linear.bias)}


def plugin_options(**overrides):
    opts = dict(
        task_kwargs=dict(class_name=f"{__name__}.RegressionTask", in_features=4),
        training_set_kwargs=dict(class_name=f"{__name__}.LinearPairs", size=64),
        data_loader_kwargs=dict(num_workers=0),
        R_opt_kwargs=dict(class_name="torch.optim.Adam", lr=0.05, betas=[0.9, 0.99]),
        R_reg_interval=None, ema_kimg=0.02, ema_rampup=None,
        random_seed=0, resume_pkl=None, total_kimg=3.2, kimg_per_tick=0.8, batch_size=16, batch_gpu=8,
        image_snapshot_ticks=1, network_snapshot_ticks=2, cudnn_benchmark=False, allow_tf32=False,
    )
    opts.update(overrides)
    return opts


def test_a_plug_in_task_trains_snapshots_and_resumes_through_the_shared_loop(tmp_path):
    run = tmp_path / "run"
    session = loop.training_loop(run_dir=str(run), **plugin_options())
    learned = session.networks["R"].linear.weight.detach().flatten()
    assert torch.allclose(learned, TRUE_WEIGHTS, atol=0.05), learned  # it really learned y = <w, x>
    assert session.phases[0].name == "Rboth" and session.cur_nimg == 3200

    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["Loss/mse"]["mean"] < 0.01 * stats[0]["Loss/mse"]["mean"]
    tick_lines = [line for line in (run / "log.txt").read_text().splitlines() if line.startswith("tick ")]
    assert tick_lines and tick_lines[-1].split()[-2] == "bias"
    assert json.loads((run / "training_options.json").read_text())["task_kwargs"]["in_features"] == 4
    assert sorted(p.name for p in run.glob("weights*.json"))[-1] == "weights003200.json"

    snapshot = legacy.load_network_pkl(str(run / "network-snapshot-000000.pkl"), require=["R"])
    final = legacy.load_network_pkl(sorted(run.glob("network-snapshot-*.pkl"))[-1], require=["R", "R_ema"])
    assert type(final["R"]) is Regressor and type(final["R_ema"]) is Regressor
    assert final["G"] is None and final["R_opt"]["state"]  # optimiser moments stored by network name
    assert snapshot["progress"]["cur_nimg"] == 16 and final["progress"]["cur_nimg"] == 3200
    with pytest.raises(legacy.NetworkLoadError, match="holds no G_ema network"):
        legacy.load_network_pkl(run / "network-snapshot-000000.pkl")  # what generate.py would need

    resumed = loop.training_loop(run_dir=str(tmp_path / "resumed"), **plugin_options(
        resume_pkl=str(sorted(run.glob("network-snapshot-*.pkl"))[-1]), total_kimg=3.232))
    assert resumed.cur_nimg == 3232
    assert torch.allclose(resumed.networks["R"].linear.weight.flatten(), TRUE_WEIGHTS, atol=0.05)


def test_non_finite_plug_in_loss_stops_with_the_phase(tmp_path):
    with pytest.raises(TrainingError, match="phase Rboth"):
        loop.training_loop(run_dir=str(tmp_path / "run"), **plugin_options(
            R_opt_kwargs=dict(class_name="torch.optim.SGD", lr=1e30), total_kimg=0.4))
