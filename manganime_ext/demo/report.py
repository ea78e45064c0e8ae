"""The demo's report: ``index.html`` beside the stages' outputs, with the pictures the stages imply.

Pictures that no command writes (a contact sheet of frames, manga pages, the sample grid, the align
timeline) are drawn here from the stages' files. Everything on the page is a relative link into the
output folder, so the folder can be zipped, copied or served as it is. Text is escaped.
"""

import glob
import html
import json
import os
from typing import Dict, List, Optional

import numpy as np
import PIL.Image

from manganime_ext.conditioning.figures import tile
from manganime_ext.io.frame_store import FrameStore
from manganime_ext.io.manga import list_pages
from manganime_ext.io.pictures import save_png
from stylegan2_ada.dnnlib.util import atomic_write

from .runner import record_path
from .stages import STAGES, Layout

SCALE = 3  # small frames are shown enlarged (nearest neighbour: the pixels stay honest)


def _enlarge(image: np.ndarray, scale: int = SCALE) -> np.ndarray:
    return np.asarray(PIL.Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale),
                                                        PIL.Image.NEAREST))


def _frames_sheet(layout: Layout) -> Optional[np.ndarray]:
    rows = []
    for folder in sorted(glob.glob(layout("stores/*"))):
        store = FrameStore(folder)
        picks = np.linspace(0, len(store) - 1, 8).round().astype(int)
        rows.append([np.asarray(store[i]) for i in picks])
    return _enlarge(tile(rows)) if rows else None


def _pages_sheet(layout: Layout) -> Optional[np.ndarray]:
    paths = list_pages(layout("series/manga"))[:6] if os.path.isdir(layout("series/manga")) else []
    if not paths:
        return None
    pages = []
    for path in paths:
        with PIL.Image.open(path) as img:
            pages.append(np.asarray(img.convert("RGB").resize((96, 136), PIL.Image.BILINEAR)))
    return tile([pages])


def _samples_sheet(layout: Layout) -> Optional[np.ndarray]:
    paths = sorted(glob.glob(layout("stylegan2/samples/*.png")))
    if not paths:
        return None
    images = [np.asarray(PIL.Image.open(p).convert("RGB")) for p in paths]
    return _enlarge(tile([images[i:i + 8] for i in range(0, len(images), 8)]))


def _align_timeline(layout: Layout, path: str) -> bool:
    """Per episode: the true page boundaries (ticks above) and the proposed ones (below)."""
    truth_dir, proposals = layout("truth/tags"), sorted(glob.glob(layout("align/*.json")))
    proposals = [p for p in proposals if not p.endswith(("report.json", ".tags.json"))]
    if not proposals or not os.path.isdir(truth_dir):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(proposals), 1, figsize=(10, 0.9 * len(proposals) + 0.6), squeeze=False)
    for ax, proposal in zip(axes[:, 0], proposals):
        name = os.path.splitext(os.path.basename(proposal))[0]
        proposed = json.load(open(proposal, encoding="utf-8"))
        true_path = os.path.join(truth_dir, f"{name}.json")
        if not os.path.isfile(true_path):
            continue
        truth = json.load(open(true_path, encoding="utf-8"))
        ax.vlines(truth["boundaries"], 0.5, 1, color="C0", label="ground truth")
        ax.vlines(proposed["boundaries"], 0, 0.5, color="C1", label="align proposal")
        for a, b in truth.get("exclusions", []):
            ax.axvspan(a, b, color="0.85")
        ax.set_xlim(0, truth["num_frames"])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=2)
    axes[-1, 0].set_xlabel("stored frame (grey: intro/outro)")
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return True


def draw_pictures(layout: Layout) -> None:
    os.makedirs(layout("pictures"), exist_ok=True)
    for name, make in (("frames.png", _frames_sheet), ("pages.png", _pages_sheet), ("samples.png", _samples_sheet)):
        image = make(layout)
        if image is not None:
            save_png(image, layout("pictures", name))
    _align_timeline(layout, layout("pictures", "align.png"))


def _table(value: object) -> str:
    """Nested dicts as nested tables; everything else as escaped text."""
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_table(v)}</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    return html.escape(json.dumps(value) if isinstance(value, (list, tuple)) else str(value))


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
img, video { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; margin: 0.3em 0; }
table { border-collapse: collapse; font-size: 0.9em; } th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; }
.timing { color: #666; }
"""


def write_report(out: str) -> str:
    """Draw the derived pictures and write ``index.html``; returns its path."""
    layout = Layout(out)
    draw_pictures(layout)
    records: Dict[str, dict] = {}
    for stage in STAGES:
        if os.path.isfile(record_path(layout, stage)):
            records[stage.name] = json.load(open(record_path(layout, stage), encoding="utf-8"))
    total = sum(r["seconds"] for r in records.values())
    parts: List[str] = [f"<!doctype html><html><head><meta charset='utf-8'><title>manGANime demo</title>"
                        f"<style>{STYLE}</style></head><body>",
                        "<h1>manGANime: the whole pipeline on the built-in synthetic series</h1>",
                        f"<p class='timing'>{len(records)} of {len(STAGES)} stages done, {total / 60:.1f} minutes "
                        "of stage time. Every command below is what you would type yourself.</p>",
                        "<table><tr><th>stage</th><th>seconds</th></tr>"]
    parts += [f"<tr><td><a href='#{s.name}'>{html.escape(s.title)}</a></td>"
              f"<td>{records[s.name]['seconds'] if s.name in records else 'not run'}</td></tr>" for s in STAGES]
    parts.append("</table>")
    for stage in STAGES:
        record = records.get(stage.name)
        parts.append(f"<h2 id='{stage.name}'>{html.escape(stage.title)}</h2><p>{html.escape(stage.about)}</p>")
        if record is None:
            parts.append("<p><em>Not run yet.</em></p>")
            continue
        parts.append(f"<p class='timing'>{record['seconds']:.0f} s, finished {html.escape(record['finished'])}</p>")
        parts.append("<pre>" + html.escape("\n".join(record["commands"])) + "</pre>")
        for picture in stage.pictures:
            if os.path.isfile(layout(picture)):
                parts.append(f"<p><img src='{html.escape(picture)}' alt='{html.escape(picture)}'></p>")
        for video in stage.videos:
            if os.path.isfile(layout(video)):
                parts.append(f"<p><video src='{html.escape(video)}' controls loop muted playsinline></video><br>"
                             f"<a href='{html.escape(video)}'>{html.escape(video)}</a></p>")
        if stage.numbers is not None:
            try:
                parts.append(_table(stage.numbers(layout)))
            except (OSError, KeyError, ValueError) as err:
                parts.append(f"<p><em>numbers unavailable: {html.escape(str(err))}</em></p>")
    parts.append("</body></html>")
    path = layout("index.html")
    with atomic_write(path) as f:
        f.write("\n".join(parts).encode("utf-8"))
    return path
