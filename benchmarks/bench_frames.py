"""frames benchmark: throughput against ffmpeg alone on the same file, peak memory for a short and a long
episode, and the latency of random access to a stored frame (FrameStore[i]).

    python benchmarks/bench_frames.py [--short-seconds 120 --long-seconds 1800 --source-resolution 256]

Every side decodes the same synthetic episode, keeps every 2nd frame and squashes it to 256 px with the
same ffmpeg filter chain. Two baselines, each ffmpeg alone: writing the raw frames to /dev/null (decode
and scale only) and to a raw file beside the store (decode, scale and store, what `ffmpeg -f rawvideo`
by hand gives; the store's own file is this, plus rho and a header). The three runs are interleaved
``--rounds`` times and each figure is the median, so drifting load on a shared machine hits all alike;
before each run the previous runs' written data is flushed (os.sync), so that no run pays for another's
disk writeback.

Peak memory is the store process's own high-water mark (VmHWM, reset at exec; ru_maxrss is not, and
inherits the parent's size) and ffmpeg's (ru_maxrss of the finished child). Random access copies frame
i out of the store (so the page is really read) for random i: "cold" after asking the kernel to drop
the store's pages from its cache (posix_fadvise DONTNEED; best effort), "warm" once every frame has been
read.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import click
import imageio_ffmpeg
import numpy as np

from manganime_ext.io.frame_store import FRAMES, FrameStore
from manganime_ext.io.video import ffmpeg_args
from manganime_ext.synthetic import anime

STORE_CHILD = """
import resource, sys, time
from manganime_ext.analysis import decode
t = time.perf_counter()
n = decode.write_episode(sys.argv[2], sys.argv[1], 256, stride=2)
sec = time.perf_counter() - t
hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]
print(n, sec, hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def make_episode(folder: str, seconds: float, resolution: int) -> str:
    anime.write_series(folder, episodes=1, seconds=seconds, resolution=resolution)
    return os.path.join(folder, "episodes", "ep000.mp4")


def ffmpeg_alone(video: str, target: str) -> float:
    """Seconds for ffmpeg to decode, stride and scale ``video`` into raw frames at ``target``."""
    inputs, outputs = ffmpeg_args(256, "squash", 2, None, None)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", *inputs, "-i", video, *outputs, "-y", target]
    os.sync()
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def store_run(video: str, out: str):
    """(frames, seconds, store process peak MiB, ffmpeg peak MiB) of decode.write_episode, in a fresh process."""
    os.sync()
    res = subprocess.run([sys.executable, "-c", STORE_CHILD, video, out], check=True, capture_output=True,
                         text=True)
    n, sec, hwm_kib, ffmpeg_kib = res.stdout.split()
    return int(n), float(sec), int(hwm_kib) / 1024, int(ffmpeg_kib) / 1024


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


def compare(name: str, video: str, tmp: str, rounds: int) -> str:
    """Interleave the baselines and the store ``rounds`` times; print medians; return the last store's folder."""
    null, raw, store = [], [], []
    for _ in range(rounds):
        null.append(ffmpeg_alone(video, "/dev/null"))
        raw.append(ffmpeg_alone(video, os.path.join(tmp, name + ".raw")))
        os.remove(os.path.join(tmp, name + ".raw"))
        folder = os.path.join(tmp, name + "-store")
        shutil.rmtree(folder, ignore_errors=True)
        n, sec, hwm, ffmpeg_mib = store_run(video, folder)
        store.append(sec)
    t_null, t_raw, t_store = (statistics.median(x) for x in (null, raw, store))
    print(f"{name}: {n} frames; ffmpeg alone -> /dev/null {n / t_null:.0f} fps, -> raw file {n / t_raw:.0f} fps; "
          f"frames {n / t_store:.0f} fps = {t_null / t_store:.2f}x ffmpeg->/dev/null, "
          f"{t_raw / t_store:.2f}x ffmpeg->raw file (median of {rounds})")
    print(f"{name}: peak memory: store process {hwm:.0f} MiB, its ffmpeg {ffmpeg_mib:.0f} MiB; "
          f"store on disk {os.path.getsize(os.path.join(folder, FRAMES)) / 2**20:.0f} MiB")
    return folder


@click.command()
@click.option("--short-seconds", default=120.0, show_default=True)
@click.option("--long-seconds", default=1800.0, show_default=True)
@click.option("--source-resolution", default=256, show_default=True,
              help="Resolution of the synthetic episodes (decoded and squashed to 256 px).")
@click.option("--rounds", default=3, show_default=True, help="Interleaved repetitions; medians are printed.")
@click.option("--reads", default=2000, show_default=True, help="Random frame reads for the access latency.")
def main(short_seconds: float, long_seconds: float, source_resolution: int, rounds: int, reads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, seconds in [("short", short_seconds), ("long", long_seconds)]:
            t = time.perf_counter()
            video = make_episode(os.path.join(tmp, name), seconds, source_resolution)
            print(f"{name}: synthesised {seconds:.0f} s at {source_resolution} px in {time.perf_counter() - t:.1f} s")
            folder = compare(name, video, tmp, rounds)
            for cold in (True, False):
                ms = access_latency(folder, reads, cold) * 1000
                print(f"{name}: store[i] for {reads} random i, {'cold' if cold else 'warm'} cache: "
                      f"median {np.median(ms):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms")
            shutil.rmtree(os.path.join(tmp, name))
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
