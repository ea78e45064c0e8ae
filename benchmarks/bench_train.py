"""Training throughput on this machine, split by phase, with peak memory.

Fixed configuration (issue #3): 32x32 RGB data, z = w = 512, 2 mapping layers,
channel_base 8192, channel_max 256, batch 16, fp32, AugmentPipe with the bgc
transforms at p = 0.5, R1 gamma 0.05 every 16 D steps, path length every 4 G
steps.  The official code's reference (non-CUDA) path manages about 3.8 img/s
for this iteration on the 2-core development machine; the ratio against that
figure is printed.  Steps are timed in whole lazy-regularisation cycles (16
steps) so every phase is represented in its real proportion.

    python benchmarks/bench_train.py [--cycles 2]
"""

import argparse
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stylegan2_ada.training import training_loop as loop  # noqa: E402

OFFICIAL_REFERENCE_IMG_PER_SEC = 3.8


def write_random_dataset(path: Path, count: int = 64, resolution: int = 32) -> None:
    rnd = np.random.RandomState(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            pixels = rnd.randint(0, 256, [resolution, resolution, 3], dtype=np.uint8)
            with zf.open(f"00000/img{i:08d}.png", "w") as f:
                PIL.Image.fromarray(pixels).save(f, format="png")


def options(data: str) -> dict:
    from stylegan2_ada.training.augment import AUGPIPE_SPECS

    return dict(
        training_set_kwargs=dict(class_name="stylegan2_ada.training.dataset.ImageFolderDataset", path=data,
                                 use_labels=False, max_size=None, xflip=False, resolution=32),
        data_loader_kwargs=dict(num_workers=0),
        G_kwargs=dict(z_dim=512, w_dim=512, mapping_kwargs=dict(num_layers=2),
                      synthesis_kwargs=dict(channel_base=8192, channel_max=256, num_fp16_res=0, conv_clamp=None)),
        D_kwargs=dict(channel_base=8192, channel_max=256, num_fp16_res=0, conv_clamp=None,
                      block_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4)),
        G_opt_kwargs=dict(lr=0.0025, betas=[0, 0.99], eps=1e-8), D_opt_kwargs=dict(lr=0.0025, betas=[0, 0.99], eps=1e-8),
        loss_kwargs=dict(r1_gamma=0.05), augment_kwargs=dict(AUGPIPE_SPECS["bgc"]), augment_p=0.5, ada_target=None,
        random_seed=0, resume_pkl=None, batch_size=16, batch_gpu=16, ema_kimg=10, ema_rampup=0.05,
        G_reg_interval=4, D_reg_interval=16, total_kimg=1, kimg_per_tick=4,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=2, help="timed cycles of 16 steps (after one warm-up cycle)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "random32.zip"
        write_random_dataset(data)
        session = loop.setup(options(str(data)), rank=0, num_gpus=1, device=device)
        for _ in range(16):
            loop.training_step(session)
        session.timing.clear()
        steps = 16 * args.cycles
        start = time.perf_counter()
        for _ in range(steps):
            loop.training_step(session)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start

    images = steps * 16
    img_per_sec = images / elapsed
    print(f"{steps} steps of batch 16 in {elapsed:.1f} s: {img_per_sec:.2f} img/s, {elapsed / images * 1000:.1f} sec/kimg "
          f"({img_per_sec / OFFICIAL_REFERENCE_IMG_PER_SEC:.2f}x the official reference path's {OFFICIAL_REFERENCE_IMG_PER_SEC} img/s)")
    print("time per phase (share of the step time):")
    for name, seconds in session.timing.items():
        print(f"  {name:<6} {seconds:7.1f} s  {seconds / elapsed:6.1%}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS: {peak_rss:.2f} GiB" + (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
                                              if device.type == "cuda" else ""))


if __name__ == "__main__":
    main()
