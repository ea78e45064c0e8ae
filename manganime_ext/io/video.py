"""Videos through ffmpeg (the binary imageio-ffmpeg ships): decoding any container it reads, streamed, and
writing H.264 mp4.

Stride, trim and resize all happen inside ffmpeg (``select``/``scale`` filters, ``-ss``/``-t``), so
Python only receives the frames it keeps, already at their final size. We run the binary ourselves
rather than through ``imageio_ffmpeg.read_frames``: that reader concatenates each frame from small
reads and polls stderr 20 bytes at a time from a thread, which on 2 cores cost more CPU than decoding
a 256 px episode. Here each frame is read straight into its own numpy array, and a thread that sleeps
in blocking reads drains ffmpeg's log (it can be long on a damaged file, and must never block the
pipe), keeping its head for the header and its tail for the error line. Memory is one frame, whatever
the episode's length.

``write_mp4`` is the one way the project writes a video (the synthetic series, the benchmarks' clips,
and later rollouts and projections): H.264 at CRF 18 in yuv420p, which every player reads.
"""

import itertools
import os
import re
import subprocess
import threading
from typing import BinaryIO, Iterable, Iterator, List, Optional, Tuple

import imageio_ffmpeg
import numpy as np

TRANSFORMS = ("squash", "center-crop", "letterbox")
PIPE_BYTES = 1 << 20  # a larger pipe lets ffmpeg run ahead by a few frames instead of waiting on each read


class VideoError(ValueError):
    """A video that cannot be decoded: missing, unreadable, corrupt or without frames."""


def scale_filter(resolution: int, transform: str, stride: int = 1) -> str:
    """The ffmpeg -vf chain: keep every ``stride``-th frame, then make it ``resolution`` square."""
    r = resolution
    chain = [f"select='not(mod(n\\,{stride}))'"] if stride > 1 else []
    if transform == "squash":
        chain.append(f"scale={r}:{r}:flags=area")
    elif transform == "center-crop":
        chain += ["crop='min(iw,ih)':'min(iw,ih)'", f"scale={r}:{r}:flags=area"]
    elif transform == "letterbox":
        chain += [f"scale={r}:{r}:flags=area:force_original_aspect_ratio=decrease",
                  f"pad={r}:{r}:(ow-iw)/2:(oh-ih)/2:black"]
    else:
        raise ValueError(f"transform: expected one of {TRANSFORMS}, got {transform!r}")
    return ",".join(chain + ["setsar=1"])


def ffmpeg_args(resolution: int, transform: str, stride: int, start: Optional[float],
                duration: Optional[float]) -> Tuple[List[str], List[str]]:
    """(input params, output params) for ffmpeg; shared with the benchmark so both decode alike.

    ``0:V:0`` is the first video stream that is not cover art: a container may list a poster first.
    """
    inputs = (["-ss", str(start)] if start else []) + (["-t", str(duration)] if duration else [])
    outputs = ["-map", "0:V:0", "-vf", scale_filter(resolution, transform, stride), "-fps_mode", "passthrough",
               "-f", "rawvideo", "-pix_fmt", "rgb24"]
    return inputs, outputs


def parse_header(log: str) -> dict:
    """fps, duration (s) and source_size [w, h] of the first video stream, from ffmpeg's input report."""
    meta = {"fps": None, "duration": None, "source_size": None}
    m = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", log)
    if m:
        meta["duration"] = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    stream = re.search(r"Stream #0:\d+.*?: Video: (.*)", log.split("Output #0")[0])
    if stream:
        size = re.search(r"\b(\d{1,5})x(\d{1,5})\b", stream[1])
        rate = re.search(r"([\d.]+)(k?) (?:fps|tbr)\b", stream[1])
        if size:
            meta["source_size"] = [int(size[1]), int(size[2])]
        if rate:
            meta["fps"] = float(rate[1]) * (1000 if rate[2] else 1)
    return meta


def read_video(path: str, resolution: int, transform: str = "squash", stride: int = 1,
               start: Optional[float] = None, duration: Optional[float] = None) -> Tuple[dict, Iterator[np.ndarray]]:
    """(metadata, frames): frames are HWC uint8 ``resolution`` squares, every ``stride``-th of the (trimmed) video.

    The metadata (fps, duration, source size, ``expected_frames`` for a progress bar) is read before
    the frames are handed out, so an unreadable file fails here, with a VideoError naming it.
    """
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such video file")
    inputs, outputs = ffmpeg_args(resolution, transform, stride, start, duration)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *inputs, "-i", path,
           *outputs, "pipe:1"]
    stream = _decode(path, cmd, (resolution, resolution, 3))
    meta = next(stream)
    seconds = min(meta["duration"] or 0.0, duration or float("inf")) - (0 if duration else start or 0)
    meta["expected_frames"] = max(0, int(round(seconds * (meta["fps"] or 0) / stride)))
    return meta, stream


def _decode(path: str, cmd: List[str], shape: Tuple[int, int, int]) -> Iterator:
    """Run ffmpeg; yield its header's metadata, then the frames.

    One generator from start to end, already started when ``read_video`` returns it, so closing it (or
    dropping it) stops ffmpeg whether or not a single frame was taken.
    """
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    log = _Log(proc.stderr)
    _widen_pipe(proc.stdout)
    try:
        frame = _read_frame(path, proc.stdout, shape)
        if frame is None and proc.wait() != 0:
            raise VideoError(f"{path}: ffmpeg cannot read this file as video (corrupt or not a video)")
        yield parse_header(log.header())
        while frame is not None:
            yield frame
            frame = _read_frame(path, proc.stdout, shape)
        if proc.wait() != 0:
            raise VideoError(f"{path}: decoding failed part-way ({log.last_line()})")
    finally:
        _stop(proc, log)


class _Log(threading.Thread):
    """Drains ffmpeg's stderr so that ffmpeg never blocks on it, keeping the first and last ``keep`` bytes."""

    HEADER_END = (b"Stream mapping:", b"Output #0")  # ffmpeg prints these before it writes any frame

    def __init__(self, pipe: BinaryIO, keep: int = 1 << 16):
        super().__init__(daemon=True)
        self.pipe, self.keep = pipe, keep
        self.head, self.tail = b"", b""
        self.header_seen = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            for chunk in iter(lambda: self.pipe.read(1 << 16), b""):
                if len(self.head) < self.keep:
                    self.head += chunk[: self.keep - len(self.head)]
                    if any(mark in self.head for mark in self.HEADER_END):
                        self.header_seen.set()
                self.tail = (self.tail + chunk)[-self.keep:]
        except (OSError, ValueError):  # the pipe was closed under us: ffmpeg is being stopped
            pass
        finally:
            self.header_seen.set()

    def header(self) -> str:
        """ffmpeg's input report; called once a frame (or the end) has come, so it is already written."""
        self.header_seen.wait(timeout=10)
        return self.head.decode("utf-8", "replace")

    def last_line(self) -> str:
        """The last line ffmpeg logged (its reason for failing); call after ffmpeg has exited."""
        self.join(timeout=10)
        lines = [line.strip() for line in self.tail.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1] if lines else "no message from ffmpeg"


def _read_frame(path: str, pipe: BinaryIO, shape: Tuple[int, int, int]) -> Optional[np.ndarray]:
    """The next frame read straight into a new array; None at the end of the stream."""
    frame = np.empty(shape, np.uint8)
    view, got = memoryview(frame).cast("B"), 0
    while got < len(view):
        n = pipe.readinto(view[got:])
        if not n:
            if got == 0:
                return None
            raise VideoError(f"{path}: ffmpeg stopped inside a frame ({got} of {len(view)} bytes)")
        got += n
    return frame


def _widen_pipe(pipe: BinaryIO) -> None:
    """Best effort: Linux lets a process enlarge a pipe (F_SETPIPE_SZ); elsewhere the default stays."""
    try:
        import fcntl
        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass


def _stop(proc: subprocess.Popen, log: _Log) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    log.join(timeout=10)
    proc.stderr.close()


def write_mp4(path: str, frames: Iterable[np.ndarray], fps: float, crf: int = 18) -> int:
    """Encode ``frames`` (HWC uint8 RGB, all one size) as an H.264 mp4 at ``path``; return the frame count.

    The size comes from the first frame. CRF 18 is visually lossless on flat-colour cartoons, so cut
    detection on the decoded video sees codec noise like that of a real release, no more. Frames are
    streamed to ffmpeg: memory is one frame whatever the length. An empty ``frames`` writes nothing.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        return 0
    height, width = first.shape[:2]
    writer = imageio_ffmpeg.write_frames(path, (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         quality=None, macro_block_size=1,
                                         output_params=["-crf", str(crf), "-preset", "veryfast"])
    writer.send(None)
    count = 0
    try:
        for frame in itertools.chain([first], frames):
            if frame.shape[:2] != (height, width):
                raise ValueError(f"{path}: frame {count} is {frame.shape[1]}x{frame.shape[0]}, the first was "
                                 f"{width}x{height}")
            writer.send(np.ascontiguousarray(frame, np.uint8))
            count += 1
    finally:
        writer.close()
    return count
