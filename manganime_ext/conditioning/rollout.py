"""Autoregressive video: F_{n+1} = G(F_n, M(n)), each prediction fed back as the next input.

Sources: the first frames of a video (its later frames become the ground truth beside the rollout)
or a single first frame; pages from a page function over a manga volume folder (the page of every
rolled-out frame, frames counted as in the frame stores, i.e. after ``stride``) or one page image for
all frames. Outputs, written atomically into one folder: ``rollout.mp4`` (H.264), ``side_by_side.mp4``
(ground truth | rollout, when there is ground truth) and ``figure.png`` (the study's figure: 8
evenly spaced ground-truth frames over the generated ones).
"""

import itertools
import os
from typing import Callable, List, Optional

import numpy as np
import PIL.Image
import torch
from tqdm import tqdm

from manganime_ext.data import page_function
from manganime_ext.data.export import square_page
from manganime_ext.io.manga import list_pages
from manganime_ext.io.outputs import atomic_output_dir
from manganime_ext.io.pictures import save_png
from manganime_ext.io.video import read_video, write_mp4

from . import figures
from .data import to_model
from .predictor import NextFramePredictor


class RolloutError(ValueError):
    """Inputs a rollout cannot use (missing file, a page outside the volume, too few frames); one line."""


def video_frames(path: str, resolution: int, stride: int, start: int, count: int) -> np.ndarray:
    """``count`` frames (uint8 [count, H, W, 3]) from stored-frame index ``start`` of a video read at ``stride``."""
    _, frames = read_video(path, resolution, stride=stride)
    picked = list(itertools.islice(frames, start, start + count))
    frames.close()
    if len(picked) < min(count, 2):
        raise RolloutError(f"{path}: has {start + len(picked)} frames at --stride {stride}, "
                           f"needs at least {start + 2} to start at frame {start}")
    return np.stack(picked)


def image_frame(path: str, resolution: int) -> np.ndarray:
    if not os.path.isfile(path):
        raise RolloutError(f"{path}: no such image")
    try:
        with PIL.Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize((resolution, resolution), PIL.Image.LANCZOS))[None]
    except OSError as err:
        raise RolloutError(f"{path}: not a readable image ({err})") from None


def page_source(resolution: int, page: Optional[str] = None, page_function_path: Optional[str] = None,
                manga: Optional[str] = None) -> Callable[[int], List[np.ndarray]]:
    """frame index -> the page window (p-1, p, p+1) as greyscale squares, from one page or a page function."""
    if page is not None:
        if not os.path.isfile(page):
            raise RolloutError(f"--page: {page}: no such image")
        single = square_page(page, resolution)
        return lambda n: [single] * 3
    if page_function_path is None or manga is None:
        raise RolloutError("give --page PNG, or --page-function JSON with --manga FOLDER")
    pf = page_function.load(page_function_path)
    volume = list_pages(manga)
    cache = {}

    def load_page(p: int) -> np.ndarray:
        if p not in cache:
            cache[p] = square_page(volume[p], resolution)
        return cache[p]

    def window(n: int) -> List[np.ndarray]:
        p = int(page_function.pages_of_frames(pf, [n])[0])
        if p < 0:
            raise RolloutError(f"--page-function: frame {n} has no page (excluded or past the last page)")
        if p >= len(volume):
            raise RolloutError(f"--page-function: frame {n} is on page {p}, but {manga} has {len(volume)} pages")
        return [load_page(min(max(q, 0), len(volume) - 1)) for q in (p - 1, p, p + 1)]

    return window


@torch.no_grad()
def roll_out(model: NextFramePredictor, start: np.ndarray, pages: Callable[[int], List[np.ndarray]], first_index: int,
             steps: int, device: torch.device) -> np.ndarray:
    """``steps`` predicted frames after ``start`` (uint8 [1 or 2, H, W, 3], oldest first) -> uint8 [steps, H, W, 3]."""
    history = to_model(torch.tensor(start).permute(0, 3, 1, 2), device)
    if history.shape[0] == 1:
        history = history.repeat(2, 1, 1, 1)  # no motion seen yet
    window = history[-2:].unsqueeze(0)
    out = []
    for k in tqdm(range(steps), desc="rollout", unit="frame", leave=False):
        index = first_index + k  # the frame being predicted from
        page_stack = torch.from_numpy(np.stack(pages(index)))[:, None]  # [3, 1, S, S]
        predicted = model(window, to_model(page_stack, device).unsqueeze(0))
        window = torch.stack([window[:, -1], predicted], dim=1)
        out.append(figures.to_uint8_hwc(predicted)[0])
    return np.stack(out)


def write_rollout(out: str, generated: np.ndarray, truth: Optional[np.ndarray], fps: float, force: bool = False) -> None:
    """The mp4s and the figure into folder ``out`` (written whole, or not at all)."""
    with atomic_output_dir(out, force) as tmp:
        write_mp4(os.path.join(tmp, "rollout.mp4"), generated, fps)
        if truth is not None and len(truth):
            count = min(len(truth), len(generated))
            write_mp4(os.path.join(tmp, "side_by_side.mp4"),
                      (np.concatenate([truth[i], generated[i]], axis=1) for i in range(count)), fps)
            save_png(figures.study_figure(truth[:count], generated[:count]), os.path.join(tmp, "figure.png"))
        else:
            save_png(figures.tile([list(generated[np.linspace(0, len(generated) - 1, 8).round().astype(int)])]),
                     os.path.join(tmp, "figure.png"))


def rollout_to_folder(model: NextFramePredictor, out: str, steps: int, device: torch.device, *, video: Optional[str] = None,
                      first_frame: Optional[str] = None, start: int = 0, stride: int = 1, fps: float = 12.0,
                      page: Optional[str] = None, page_function_path: Optional[str] = None,
                      manga: Optional[str] = None, force: bool = False) -> dict:
    """Everything ``train_cond.py rollout`` does: read, roll out ``steps`` frames, write; returns a summary."""
    resolution = model.img_resolution
    pages = page_source(resolution, page, page_function_path, manga)
    truth = None
    if video is not None:
        frames = video_frames(video, resolution, stride, max(start - 1, 0), steps + 2)
        context = frames[: 2 if start > 0 else 1]
        truth = frames[len(context):]
    elif first_frame is not None:
        context = image_frame(first_frame, resolution)
    else:
        raise RolloutError("give --video or --first-frame")
    generated = roll_out(model, context, pages, start, steps, device)
    write_rollout(out, generated, truth, fps, force)
    return dict(frames=len(generated), ground_truth=0 if truth is None else len(truth))
