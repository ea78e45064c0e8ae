"""Pictures of a projection: the study's three-row figure and the per-frame quality plot.

The study's Figure 6 shows a clip three times, in 8 evenly spaced columns: the ground-truth frames, their
projections, and the linear interpolation in W between the projections of the first and last column.
Where projection keeps up with the clip and interpolation does not, the rows part ways: only motion
the generator has seen often is a straight line in W. Images are tiled with PIL (labels in its
built-in font), the plot uses matplotlib (Agg); every file is written atomically.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import PIL.Image
import PIL.ImageDraw

from manganime_ext.io.pictures import pyplot, save_plot

ROW_NAMES = ("ground truth", "projection", "interpolation")
GAP = 2  # white pixels between tiles


def _rgb(tile: np.ndarray) -> np.ndarray:
    return np.repeat(tile, 3, axis=2) if tile.shape[2] == 1 else tile[:, :, :3]


def tile_rows(rows: Sequence[Sequence[np.ndarray]], labels: Optional[Sequence[str]] = None, gap: int = GAP) -> np.ndarray:
    """uint8 ``[H, W, C]`` tiles laid out in rows with white gaps, each row optionally labelled on the left."""
    height, width = rows[0][0].shape[:2]
    margin = 0
    if labels:
        margin = max(PIL.ImageDraw.Draw(PIL.Image.new("RGB", (1, 1))).textbbox((0, 0), text)[2] for text in labels) + 6
    columns = max(len(row) for row in rows)
    canvas = np.full((len(rows) * (height + gap) - gap, margin + columns * (width + gap) - gap, 3), 255, np.uint8)
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            top, left = y * (height + gap), margin + x * (width + gap)
            canvas[top:top + height, left:left + width] = _rgb(image)
    picture = PIL.Image.fromarray(canvas)
    if labels:
        draw = PIL.ImageDraw.Draw(picture)
        for y, text in enumerate(labels):
            box = draw.textbbox((0, 0), text)
            draw.text((2, y * (height + gap) + (height - box[3]) // 2), text, fill=(0, 0, 0))
    return np.asarray(picture)


def evenly_spaced(first: int, last: int, count: int = 8) -> List[int]:
    """``count`` positions from ``first`` to ``last`` (both included), evenly spaced and rounded."""
    return [int(round(p)) for p in np.linspace(first, last, count)]


def study_figure(truth: Sequence[np.ndarray], projection: Sequence[np.ndarray], interpolation: Sequence[np.ndarray],
                 labels: bool = True) -> np.ndarray:
    """The three rows (ground truth / projection / interpolation), one column per time."""
    return tile_rows([truth, projection, interpolation], ROW_NAMES if labels else None)


def plot_frames(times: Sequence[float], series: Dict[str, Sequence[float]], distance_name: str,
                shot_starts: Sequence[float], path: str, title: str = "") -> None:
    """PSNR (and the distance) of every projected frame over time, with the cuts marked; PNG at ``path``.

    ``series`` maps a label (``"projection"``, ``"after tuning"``...) to per-frame PSNR values; a key
    ``"distance"`` (and ``"distance after tuning"``) holds distances for the second panel.
    """
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    panels: List[Tuple[object, str]] = [(top, "PSNR (dB), higher is better"),
                                        (bottom, f"{distance_name}, lower is better")]
    for label, values in series.items():
        ax = bottom if label.startswith("distance") else top
        ax.plot(times, values, marker=".", markersize=3, linewidth=1, label=label)
    for ax, ylabel in panels:
        for when in shot_starts:
            ax.axvline(when, color="0.7", linewidth=0.8, linestyle="--")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    bottom.set_xlabel("time in the video (s); dashed: cold starts (first frame, cuts)")
    if title:
        top.set_title(title, fontsize=9)
    save_plot(fig, path)
