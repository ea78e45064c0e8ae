"""Pictures of next-frame prediction: training grids, the evaluation plot and the study's figure.

Grids and figures are plain image tiling (uint8 arrays in, PNG out); the evaluation plot uses
matplotlib (Agg, no display needed). Every file is written atomically.
"""

from typing import Dict, List, Sequence

import numpy as np
import PIL.Image
import torch

from manganime_ext.io.pictures import pyplot, save_plot

from .data import to_255

GAP = 2  # pixels of white between tiles


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in model range [-1, 1] -> uint8 [N, H, W, 3] (greyscale repeated)."""
    pixels = to_255(images).round().to(torch.uint8).cpu()
    if pixels.shape[1] == 1:
        pixels = pixels.repeat(1, 3, 1, 1)
    return pixels.permute(0, 2, 3, 1).numpy()


def tile(rows: Sequence[Sequence[np.ndarray]], gap: int = GAP) -> np.ndarray:
    """Lay uint8 HxWx3 tiles out in rows (all tiles resized to the first tile's size), white gaps between."""
    height, width = rows[0][0].shape[:2]
    columns = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            if image.shape[:2] != (height, width):
                image = np.asarray(PIL.Image.fromarray(image).resize((width, height), PIL.Image.BILINEAR))
            top, left = y * (height + gap), x * (width + gap)
            canvas[top:top + height, left:left + width] = image
    return canvas


def pair_grid(current: torch.Tensor, page: torch.Tensor, predicted: torch.Tensor, true_next: torch.Tensor) -> np.ndarray:
    """One row per pair: F_n | its page | predicted F_{n+1} | true F_{n+1} (all model range)."""
    columns = [to_uint8_hwc(t) for t in (current, page, predicted, true_next)]
    return tile([[c[i] for c in columns] for i in range(current.shape[0])])


def study_figure(true_frames: np.ndarray, generated: np.ndarray, count: int = 8) -> np.ndarray:
    """The study's figure: ``count`` evenly spaced ground-truth frames over the generated ones (uint8 HxWx3)."""
    picks = np.linspace(0, min(len(true_frames), len(generated)) - 1, count).round().astype(int)
    return tile([[true_frames[i] for i in picks], [generated[i] for i in picks]])


def plot_evaluation(report: Dict[str, object], path: str, title: str = "") -> None:
    """Two panels: one-step PSNR/SSIM per method (held-out pairs), and PSNR after k rollout steps."""
    plt = pyplot()
    one_step: Dict[str, Dict[str, float]] = report["one_step"]  # type: ignore[assignment]
    methods = list(one_step)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB), higher is better"), (axes[1], "ssim", "SSIM, higher is better")):
        values = [one_step[m][key] for m in methods]
        bars = ax.bar(range(len(methods)), values, color=[colours[m] for m in methods])
        ax.set_xticks(range(len(methods)), [m.replace("_", "\n") for m in methods], fontsize=8)
        ax.set_title(f"1 step, {report['pairs']} held-out pairs: {label}", fontsize=9)
        low = min(values)
        ax.set_ylim(low - 0.15 * (max(values) - low + 1e-3) - (1 if key == "psnr" else 0.02), None)
        for bar, value in zip(bars, values):
            ax.annotate(f"{value:.2f}" if key == "psnr" else f"{value:.3f}", (bar.get_x() + bar.get_width() / 2, value),
                        ha="center", va="bottom", fontsize=8)
    rollout: Dict[str, object] = report["rollout"]  # type: ignore[assignment]
    ks: List[int] = rollout["k"]  # type: ignore[assignment]
    for m in methods:
        if ks and m in rollout:
            axes[2].plot(ks, rollout[m]["psnr"], marker="o", markersize=3, label=m, color=colours[m])
    axes[2].set_xlabel("steps k (autoregressive)")
    axes[2].set_ylabel("PSNR (dB)")
    axes[2].set_title(f"rollout from {rollout['starts']} held-out starts", fontsize=9)
    if ks:
        axes[2].legend(fontsize=8)
    axes[2].grid(alpha=0.3)
    save_plot(fig, path, title)
