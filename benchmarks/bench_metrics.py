"""Metric feature streaming on this machine: images/s and peak memory as the dataset grows.

Workload (metrics issue, item 6): a synthetic dataset of 64x64 RGB uint8 images made on
the fly (nothing on disk) streamed through ``compute_feature_stats_for_dataset`` with a
tiny TorchScript detector that has the official call signature and, like Inception, gives
2048-d features, so the float64 mean/covariance sums are as large as for a real FID.
Each size runs in a fresh process; peak RSS is sampled every 5 ms with psutil.
Memory must stay flat from 2k to 20k images: only the sums grow with the feature dim.
The last line is a JSON summary.

    python benchmarks/bench_metrics.py [--sizes 2000,20000] [--batch 64]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, Tuple

import numpy as np
import psutil
import torch

from stylegan2_ada.metrics import detectors, metric_utils

FEATURES = 2048


class SyntheticImages(torch.utils.data.Dataset):
    """``num`` random 64x64 RGB images, each made from its index when asked for."""

    def __init__(self, num: int):
        self.num = num

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, idx: int) -> Tuple[np.ndarray, np.ndarray]:
        image = np.random.RandomState(idx).randint(0, 256, size=[3, 64, 64], dtype=np.uint8)
        return image, np.zeros([0], dtype=np.float32)


class TinyDetector(torch.nn.Module):
    """8x8 average pooling, then a fixed projection to 2048 features."""

    def __init__(self):
        super().__init__()
        self.register_buffer("proj", torch.randn([3 * 8 * 8, FEATURES], generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x.to(torch.float32), [8, 8]).flatten(1) @ self.proj


def measure(num: int, batch: int, detector_dir: str) -> Dict[str, float]:
    """Stream ``num`` images once; images/s and RSS (MiB) before and at the peak."""
    process = psutil.Process()
    peak = [process.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    opts = metric_utils.MetricOptions(dataset_kwargs=dict(class_name=f"{__name__}.SyntheticImages", num=num),
                                      detector_dir=detector_dir, cache=False, num_workers=0, progress=False)
    before = process.memory_info().rss
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    stats = metric_utils.compute_feature_stats_for_dataset(opts, detectors.INCEPTION_URL,
                                                           dict(return_features=True), capture_mean_cov=True,
                                                           batch_size=batch)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    assert stats.num_items == num
    return dict(images=num, images_per_s=num / seconds, rss_before_mib=before / 2**20, rss_peak_mib=peak[0] / 2**20)


def detector_only(batch: int, detector_dir: str) -> float:
    """Images/s of the detector call alone on uint8 batches (no data loading, no statistics)."""
    detector = detectors.get_feature_detector(detectors.INCEPTION_URL, detector_dir=detector_dir)
    images = torch.randint(0, 256, [batch, 3, 64, 64], dtype=torch.uint8)
    with torch.no_grad():
        detector(images, return_features=True)
        start, reps = time.perf_counter(), 50
        for _ in range(reps):
            detector(images, return_features=True)
    return batch * reps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--detector-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    if args.child is not None:  # one measurement in a fresh process
        print(json.dumps(measure(args.child, args.batch, args.detector_dir)))
        return

    with tempfile.TemporaryDirectory() as detector_dir:
        torch.jit.save(torch.jit.script(TinyDetector()), os.path.join(detector_dir, "inception-2015-12-05.pt"))
        alone = detector_only(args.batch, detector_dir)
        print(f"tiny detector alone: {alone:.0f} images/s "
              f"(batch {args.batch}, 64x64, {torch.get_num_threads()} threads)")
        streamed = []
        for size in (int(s) for s in args.sizes.split(",")):
            out = subprocess.run([sys.executable, __file__, "--child", str(size), "--batch", str(args.batch),
                                  "--detector-dir", detector_dir], check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            streamed.append(r)
            print(f"{r['images']:>6} images: {r['images_per_s']:7.0f} images/s end to end; RSS {r['rss_before_mib']:.0f} "
                  f"MiB before, peak {r['rss_peak_mib']:.0f} MiB (+{r['rss_peak_mib'] - r['rss_before_mib']:.0f} MiB)")
    print(json.dumps(dict(benchmark="metrics", batch=args.batch, threads=torch.get_num_threads(),
                          detector_only_images_per_s=round(alone, 1),
                          streamed=[{key: round(value, 1) for key, value in r.items()} for r in streamed])))


if __name__ == "__main__":
    main()
