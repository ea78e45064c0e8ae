"""Decoding episodes through ffmpeg (imageio-ffmpeg): any container it reads, streamed frame by frame.

Stride, trim and resize all happen inside ffmpeg (``select``/``scale`` filters, ``-ss``/``-t``), so
Python only receives the frames it keeps, already at their final size: decoding stays close to
ffmpeg's own speed and memory is one frame, whatever the episode's length.
"""

import logging
import os
from typing import Iterator, List, Optional, Tuple

import imageio_ffmpeg
import numpy as np

TRANSFORMS = ("squash", "center-crop", "letterbox")


class _ExpectedResize(logging.Filter):
    """We always rescale inside ffmpeg, so imageio-ffmpeg's warning that sizes differ is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "different from the source frame size" not in record.getMessage()


logging.getLogger("imageio_ffmpeg").addFilter(_ExpectedResize())


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
    """(input params, output params) for ffmpeg; shared with the benchmark so both decode alike."""
    inputs = (["-ss", str(start)] if start else []) + (["-t", str(duration)] if duration else [])
    outputs = ["-vf", scale_filter(resolution, transform, stride), "-fps_mode", "passthrough"]
    return inputs, outputs


def read_video(path: str, resolution: int, transform: str = "squash", stride: int = 1,
               start: Optional[float] = None, duration: Optional[float] = None) -> Tuple[dict, Iterator[np.ndarray]]:
    """(metadata, frames): frames are HWC uint8 ``resolution`` squares, every ``stride``-th of the (trimmed) video.

    The metadata (fps, duration, source size, ``expected_frames`` for a progress bar) is read before
    any frame, so an unreadable file fails here, with a VideoError naming it.
    """
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such video file")
    inputs, outputs = ffmpeg_args(resolution, transform, stride, start, duration)
    gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24", input_params=inputs, output_params=outputs)
    try:
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration):
        gen.close()
        raise VideoError(f"{path}: ffmpeg cannot read this file as video (corrupt or not a video)") from None
    seconds = min(meta.get("duration") or 0.0, duration or float("inf")) - (0 if duration else start or 0)
    meta["expected_frames"] = max(0, int(round(seconds * (meta.get("fps") or 0) / stride)))
    return meta, _frames(path, gen, resolution)


def _frames(path: str, gen: Iterator[bytes], resolution: int) -> Iterator[np.ndarray]:
    shape = (resolution, resolution, 3)
    try:
        for buf in gen:
            yield np.frombuffer(buf, np.uint8).reshape(shape)
    except (OSError, RuntimeError) as e:
        raise VideoError(f"{path}: decoding failed part-way ({str(e).splitlines()[0]})") from None
    finally:
        gen.close()
