"""frames benchmark: throughput vs ffmpeg alone on the same file, peak RSS for a short vs a long episode,
and the latency of random access to a stored frame (FrameStore[i]).

    python benchmarks/bench_frames.py [--long-seconds 1800] [--reads 2000]

Both sides decode, keep every 2nd frame and squash to 256 px with the same ffmpeg filter chain; ffmpeg
alone writes raw frames to /dev/null. Peak RSS is measured in a child process per run (ru_maxrss), so
the two runs do not share a high-water mark. Random access copies frame i out of the store (so the page
is really read) for random i: "cold" after asking the kernel to drop the store's pages from its cache
(posix_fadvise DONTNEED; best effort), "warm" once every frame has been read.
"""

import os
import subprocess
import sys
import tempfile
import time

import click
import imageio_ffmpeg
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from manganime_ext import synth, video_io  # noqa: E402
from manganime_ext.frame_store import FRAMES, FrameStore  # noqa: E402

STORE_CHILD = ("import resource, sys, time; sys.path.insert(0, sys.argv[1]); from manganime_ext import frame_store;"
               "t = time.perf_counter(); n = frame_store.write_episode(sys.argv[3], sys.argv[2], 256, stride=2);"
               "print(n, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def make_episode(folder: str, seconds: float, resolution: int) -> str:
    synth.write_series(folder, episodes=1, seconds=seconds, resolution=resolution)
    return os.path.join(folder, "episodes", "ep000.mp4")


def ffmpeg_alone(video: str) -> float:
    inputs, outputs = video_io.ffmpeg_args(256, "squash", 2, None, None)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *inputs, "-i", video, *outputs,
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", "/dev/null"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def store_run(video: str, out: str):
    """(frames, seconds, peak RSS MiB) of frame_store.write_episode in a fresh process."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", STORE_CHILD, root, video, out], check=True, capture_output=True,
                         text=True)
    n, sec, rss_kib = res.stdout.split()
    return int(n), float(sec), int(rss_kib) / 1024


def access_latency(folder: str, reads: int, cold: bool) -> np.ndarray:
    """Seconds per ``np.array(store[i])`` for ``reads`` random i (seeded)."""
    if cold:
        fd = os.open(os.path.join(folder, FRAMES), os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    store = FrameStore(folder)
    if not cold:
        np.asarray(store.frames).sum()
    times = []
    for i in np.random.RandomState(int(cold)).randint(0, len(store), reads):
        t = time.perf_counter()
        np.array(store[i])
        times.append(time.perf_counter() - t)
    return np.array(times)


@click.command()
@click.option("--short-seconds", default=120.0, show_default=True)
@click.option("--long-seconds", default=600.0, show_default=True)
@click.option("--resolution", default=256, show_default=True, help="Resolution of the synthetic episodes.")
@click.option("--reads", default=2000, show_default=True, help="Random frame reads for the access latency.")
def main(short_seconds: float, long_seconds: float, resolution: int, reads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, seconds in [("short", short_seconds), ("long", long_seconds)]:
            t = time.perf_counter()
            video = make_episode(os.path.join(tmp, name), seconds, resolution)
            print(f"{name}: synthesised {seconds:.0f} s at {resolution} px in {time.perf_counter() - t:.1f} s")
            base = ffmpeg_alone(video)
            n, sec, rss = store_run(video, os.path.join(tmp, name + "-store"))
            print(f"{name}: {n} frames stored; ffmpeg alone {n / base:.0f} fps, frames {n / sec:.0f} fps "
                  f"({base / sec:.2f}x ffmpeg); peak RSS {rss:.0f} MiB")
            for cold in (True, False):
                ms = access_latency(os.path.join(tmp, name + "-store"), reads, cold) * 1000
                print(f"{name}: store[i] for {reads} random i, {'cold' if cold else 'warm'} cache: "
                      f"median {np.median(ms):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms")


if __name__ == "__main__":
    main()
