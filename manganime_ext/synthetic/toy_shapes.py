"""A small built-in image set for the demo and smoke tests: flat-coloured cartoon shapes.

Cel-shaded blobs (filled circles, squares and triangles with dark outlines)
over a two-tone background, written as an official-format dataset zip
(``00000/img00000000.png``, ..., ``dataset.json`` with the shape class as
label): the training set of ``make demo``, small and quick to learn on a CPU.

    python -m manganime_ext.cli.toy_shapes --out shapes.zip --count 1000 --resolution 32
"""

import io
import json
import zipfile
from typing import Tuple

import numpy as np
import PIL.Image
import PIL.ImageDraw

from manganime_ext.io.outputs import atomic_file

PALETTE = [(236, 94, 86), (250, 200, 80), (92, 170, 230), (120, 200, 120), (200, 130, 220), (245, 245, 235)]
SHAPES = ("circle", "square", "triangle")


def draw_shape_image(rnd: np.random.RandomState, resolution: int) -> Tuple[np.ndarray, int]:
    """One image (HWC uint8) and its shape class, drawn at 4x and downsampled for clean outlines."""
    scale = 4
    size = resolution * scale
    sky, ground = rnd.choice(len(PALETTE), 2, replace=False)
    img = PIL.Image.new("RGB", (size, size), PALETTE[sky])
    draw = PIL.ImageDraw.Draw(img)
    horizon = int(size * rnd.uniform(0.55, 0.8))
    draw.rectangle([0, horizon, size, size], fill=tuple(int(c * 0.7) for c in PALETTE[ground]))
    shape = int(rnd.randint(len(SHAPES)))
    radius = size * rnd.uniform(0.18, 0.32)
    cx, cy = size * rnd.uniform(0.3, 0.7), size * rnd.uniform(0.3, 0.7)
    colour = PALETTE[rnd.choice([i for i in range(len(PALETTE)) if i != sky])]
    outline = dict(fill=colour, outline=(30, 25, 35), width=2 * scale)
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    if SHAPES[shape] == "circle":
        draw.ellipse(box, **outline)
    elif SHAPES[shape] == "square":
        draw.rectangle(box, **outline)
    else:
        draw.polygon([(cx, cy - radius), (cx + radius, cy + radius), (cx - radius, cy + radius)], **outline)
    # A highlight, as cel shading does.
    draw.ellipse([cx - radius * 0.5, cy - radius * 0.6, cx - radius * 0.1, cy - radius * 0.2], fill=(255, 255, 255))
    img = img.resize((resolution, resolution), PIL.Image.LANCZOS)
    return np.asarray(img), shape


def write_shapes_zip(path: str, count: int, resolution: int, seed: int = 0) -> None:
    """Write ``count`` images as an official-format dataset zip, atomically."""
    rnd = np.random.RandomState(seed)
    labels = []
    with atomic_file(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for idx in range(count):
            pixels, shape = draw_shape_image(rnd, resolution)
            name = f"{idx // 1000:05d}/img{idx:08d}.png"
            buf = io.BytesIO()
            PIL.Image.fromarray(pixels).save(buf, format="png", compress_level=0)
            zf.writestr(name, buf.getvalue())
            labels.append([name, shape])
        zf.writestr("dataset.json", json.dumps({"labels": labels}))
