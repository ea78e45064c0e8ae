"""Image grids for a run directory: ``reals.png``, ``fakes_init.png``, ``fakesNNNNNN.png``."""

from typing import Tuple

import numpy as np
import PIL.Image
import torch

from ..dnnlib.util import atomic_write


def grid_shape(resolution: int, num_items: int) -> Tuple[int, int]:
    """(columns, rows): about a 4K canvas at full resolution, 7-32 x 4-32 cells, never more than the data."""
    gw = int(np.clip(7680 // resolution, 7, 32))
    gh = int(np.clip(4320 // resolution, 4, 32))
    while gw * gh > max(num_items, 1) and gh > 1:
        gh -= 1
    return gw, gh


def pick_grid_items(dataset, grid_size: Tuple[int, int], random_seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Real images and labels for the grid: random items, or with labels one row per class where possible."""
    gw, gh = grid_size
    rnd = np.random.RandomState(random_seed)
    indices = rnd.permutation(len(dataset))
    if dataset.has_labels:
        by_label = {}
        for idx in indices:
            by_label.setdefault(tuple(dataset.get_details(idx).raw_label.flat[::-1]), []).append(idx)
        rows = [by_label[key] for key in sorted(by_label)]
        chosen = []
        for y in range(gh):
            row = rows[y % len(rows)]
            chosen += [row[x % len(row)] for x in range(gw)]
        indices = np.array(chosen)
    else:
        indices = np.resize(indices, gw * gh)
    images, labels = zip(*[dataset[int(i)] for i in indices])
    return np.stack(images), np.stack(labels)


def save_image_grid(img: np.ndarray, path: str, drange: Tuple[float, float], grid_size: Tuple[int, int]) -> None:
    """Tile ``img`` [N, C, H, W] (values in ``drange``) into a PNG, written atomically."""
    lo, hi = drange
    img = (np.asarray(img, dtype=np.float32) - lo) * (255 / (hi - lo))
    img = np.rint(img).clip(0, 255).astype(np.uint8)
    gw, gh = grid_size
    _n, c, h, w = img.shape
    img = img[: gw * gh].reshape(gh, gw, c, h, w).transpose(0, 3, 1, 4, 2).reshape(gh * h, gw * w, c)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(c)
    if mode is None:
        raise ValueError(f"cannot save a grid of {c}-channel images")
    with atomic_write(path) as f:
        PIL.Image.fromarray(img[:, :, 0] if c == 1 else img, mode).save(f, format="png")


@torch.no_grad()
def generate_grid(G_ema: torch.nn.Module, grid_z: torch.Tensor, grid_c: torch.Tensor, batch: int,
                  noise_mode: str = "const") -> np.ndarray:
    """G_ema's images for the fixed grid latents, in batches, as a float array in [-1, 1]."""
    images = [G_ema(z, c, noise_mode=noise_mode).cpu() for z, c in zip(grid_z.split(batch), grid_c.split(batch))]
    return torch.cat(images).numpy()

