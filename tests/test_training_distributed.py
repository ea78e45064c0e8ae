"""Two gloo processes train exactly like one process with the same total batch."""

import os

import torch
import torch.multiprocessing as mp

from stylegan2_ada.train import run_process
from training_helpers import tiny_options


def _equivalence_options(batch_gpu: int):
    # Randomness that is not drawn from the shared global streams is switched off:
    # noise inputs, style mixing, path-length noise and augmentation.
    opts = tiny_options(total_kimg=0.024, kimg_per_tick=1, batch_gpu=batch_gpu,
                        image_snapshot_ticks=None, network_snapshot_ticks=None,
                        loss_kwargs=dict(r1_gamma=1.0, style_mixing_prob=0, pl_weight=0))
    opts["G_kwargs"]["synthesis_kwargs"]["use_noise"] = False
    return opts


def _train_and_save(rank: int, batch_gpu: int, world_size: int, run_dir: str, init_method: str, out: str) -> None:
    torch.set_num_threads(1)
    from stylegan2_ada.training import training_loop as loop

    captured = {}
    original_setup, original_loop = loop.setup, loop.training_loop

    def setup_and_record(*args, **kwargs):
        session = original_setup(*args, **kwargs)
        captured["initial_G"] = {k: v.clone() for k, v in session.G.state_dict().items()}
        return session

    def loop_and_record(**kwargs):
        captured["session"] = original_loop(**kwargs)
        return captured["session"]

    loop.setup, loop.training_loop = setup_and_record, loop_and_record
    try:
        run_process(rank, _equivalence_options(batch_gpu), run_dir, world_size, init_method)
    finally:  # rank 0 may run inside the test process: leave the loop as it was for later tests
        loop.setup, loop.training_loop = original_setup, original_loop
    if rank == 0:
        session = captured["session"]
        torch.save({"G": session.G.state_dict(), "D": session.D.state_dict(), "G_ema": session.G_ema.state_dict(),
                    "initial_G": captured["initial_G"]}, out)


def test_two_processes_match_one_process(tmp_path):
    single = str(tmp_path / "single.pt")
    _train_and_save(0, 8, 1, str(tmp_path / "run1"), "", single)

    double = str(tmp_path / "double.pt")
    init = "file://" + str(tmp_path / "init")
    mp.spawn(_train_and_save, args=(4, 2, str(tmp_path / "run2"), init, double), nprocs=2)

    a, b = torch.load(single), torch.load(double)
    for net in ["G", "D", "G_ema"]:
        assert a[net].keys() == b[net].keys()
        for name in a[net]:
            diff = (a[net][name] - b[net][name]).abs().max().item() if a[net][name].numel() else 0.0
            assert diff < 1e-4, f"{net}.{name} differs by {diff}"
    # Training moved the weights: the comparison is not between two untouched copies.
    initial = a["initial_G"]
    moved = max((a["G"][k] - initial[k]).abs().max().item() for k in initial if initial[k].is_floating_point())
    assert moved > 1e-3
    assert os.path.exists(tmp_path / "run1" / "reals.png") and os.path.exists(tmp_path / "run2" / "reals.png")


def test_cli_gpus_2_starts_two_cpu_processes(tmp_path):
    from click.testing import CliRunner

    from stylegan2_ada import train
    from training_helpers import FIXTURE_ZIP

    args = [f"--outdir={tmp_path}", f"--data={FIXTURE_ZIP}", "--gpus=2", "--kimg=0.016", "--tick=0.008", "--snap=1",
            "--aug=noaug", "--cbase=128", "--cmax=16", "--map=2", "--workers=0", "--batch=8", "--mbstd-group=2",
            "--fp32"]
    result = CliRunner().invoke(train.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert "on 2 process(es)" in (run / "log.txt").read_text()
    assert list(run.glob("network-snapshot-*.pkl"))


def test_max_minutes_stops_both_processes_at_the_same_step(tmp_path):
    from click.testing import CliRunner

    from stylegan2_ada import legacy, train
    from training_helpers import FIXTURE_ZIP

    # Rank 0's clock decides for both: were each rank to read its own, one would wait forever in an all-reduce.
    args = [f"--outdir={tmp_path}", f"--data={FIXTURE_ZIP}", "--gpus=2", "--kimg=100", "--tick=50", "--snap=1000",
            "--aug=noaug", "--max-minutes=0.01", "--cbase=128", "--cmax=16", "--map=2", "--workers=0", "--batch=8",
            "--mbstd-group=2", "--fp32"]
    result = CliRunner().invoke(train.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert "Time budget of 0.01 minutes spent" in (run / "log.txt").read_text()
    final = legacy.load_network_pkl(str(sorted(run.glob("network-snapshot-*.pkl"))[-1]))
    assert 0 < final["progress"]["cur_nimg"] < 100_000
