"""Pictures people look at, written atomically: PNG images and matplotlib plots.

One place for the two things every figure module ends with, so each keeps only what it draws.
matplotlib is imported on first use with the Agg backend: no display is needed, and commands that
draw nothing never pay for the import.
"""

from typing import Any

import numpy as np
import PIL.Image

from .outputs import atomic_file


def save_png(image: np.ndarray, path: str) -> None:
    """A uint8 HxW or HxWxC array as a PNG at ``path`` (all or nothing)."""
    with atomic_file(path) as f:
        PIL.Image.fromarray(image).save(f, format="png")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, path: str, title: str = "", dpi: int = 100) -> None:
    """Lay out ``fig``, give it ``title`` (if any), write it as a PNG at ``path`` atomically and free it."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    pyplot().close(fig)
