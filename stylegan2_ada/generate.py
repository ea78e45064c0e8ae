"""Generate images with a trained network: one PNG per seed, or one per projected W.

    python -m stylegan2_ada.generate --network=snapshot.pkl --seeds=0-3,7 --trunc=0.7 --outdir=out

Flags and file names follow the official release's ``generate.py``.  Images are
written to a temp folder next to ``--outdir`` and moved in only when all succeeded,
so a failed run leaves no partial output.
"""

import os
import re
import shutil
import tempfile
from typing import Callable, List, Optional

import click
import numpy as np
import PIL.Image
import torch

from . import dnnlib, legacy
from .torch_utils.precision import PRECISIONS, PrecisionError, reduced_precision, resolve


def parse_seeds(text: str) -> List[int]:
    """``'0-3,7'`` -> ``[0, 1, 2, 3, 7]``; raises ``ValueError`` with a one-line reason."""
    seeds: List[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise ValueError(f"'{part}' is not a seed or a range like 0-3")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"range '{part}' is empty (end before start)")
        if hi >= 2**32:
            raise ValueError(f"seed {hi} is too large (seeds are below 2**32)")
        seeds.extend(range(lo, hi + 1))
    return seeds


def images_to_uint8(img: torch.Tensor) -> np.ndarray:
    """Generator output ``[N, C, H, W]`` in about [-1, 1] -> ``[N, H, W, C]`` uint8, as the official code rounds."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()


def save_png(pixels: np.ndarray, path: str) -> None:
    """Save one ``[H, W, C]`` uint8 image: 1 channel -> L, 3 -> RGB, 4 -> RGBA."""
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    elif pixels.shape[2] not in (3, 4):
        raise ValueError(f"cannot save an image with {pixels.shape[2]} channels as PNG")
    PIL.Image.fromarray(pixels).save(path)


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The latent the official tools use for ``seed``: ``RandomState(seed).randn(1, z_dim)``."""
    return np.random.RandomState(seed).randn(1, z_dim)


def make_label(G: torch.nn.Module, class_idx: Optional[int], device: torch.device) -> torch.Tensor:
    """One-hot label for a conditional ``G``, an empty ``[1, 0]`` one otherwise; ``ValueError`` on a mismatch."""
    label = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            raise ValueError("--class was given, but the network is unconditional")
        return label
    if class_idx is None:
        raise ValueError(f"the network is conditional ({G.c_dim} classes): pass --class")
    if not 0 <= class_idx < G.c_dim:
        raise ValueError(f"--class must be in 0..{G.c_dim - 1}, got {class_idx}")
    label[:, class_idx] = 1
    return label


def load_projected_w(path: str, G: torch.nn.Module) -> np.ndarray:
    """Read ``w`` of shape ``[N, num_ws, w_dim]`` from an .npz file; ``ValueError`` when it does not fit ``G``."""
    try:
        with np.load(path) as data:
            ws = data["w"]
    except KeyError:
        raise ValueError(f"{path} has no array named 'w'") from None
    except Exception as err:  # numpy's own messages (e.g. about pickled data) would mislead here
        raise ValueError(f"cannot read {path}: not a valid .npz file") from err
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise ValueError(f"{path}: 'w' has shape {list(ws.shape)}, expected [N, {G.num_ws}, {G.w_dim}]")
    return ws


@torch.no_grad()
def generate_seed_images(G: torch.nn.Module, seeds: List[int], label: torch.Tensor, truncation_psi: float,
                         noise_mode: str, device: torch.device, save: Callable[[np.ndarray, str], None]) -> None:
    """Synthesise one image per seed and hand each to ``save(pixels, 'seedNNNN.png')``."""
    for seed in seeds:
        z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device=device, dtype=torch.float32)
        img = G(z, label, truncation_psi=truncation_psi, noise_mode=noise_mode)
        save(images_to_uint8(img)[0], f"seed{seed:04d}.png")


@torch.no_grad()
def generate_projected_images(G: torch.nn.Module, ws: np.ndarray, noise_mode: str, device: torch.device,
                              save: Callable[[np.ndarray, str], None]) -> None:
    """Synthesise each projected ``w`` and hand it to ``save(pixels, 'projNN.png')``."""
    for idx, w in enumerate(torch.from_numpy(ws).to(device=device, dtype=torch.float32)):
        img = G.synthesis(w.unsqueeze(0), noise_mode=noise_mode)
        save(images_to_uint8(img)[0], f"proj{idx:02d}.png")


def load_generator(network: str, device: torch.device) -> torch.nn.Module:
    """``G_ema`` from a path or URL; any problem with the file becomes a one-line ``ClickException``."""
    try:
        with dnnlib.util.open_url(network) as f:
            return legacy.load_network_pkl(f)["G_ema"].to(device)
    except (legacy.NetworkLoadError, OSError, ValueError) as err:
        raise click.ClickException(" ".join(str(err).split())) from None


def write_atomically(outdir: str, produce: Callable[[Callable[[np.ndarray, str], None]], None]) -> None:
    """Run ``produce(save)`` against a temp folder next to ``outdir``; move the files in only on success."""
    parent = os.path.dirname(os.path.abspath(outdir))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.abspath(outdir))}.tmp-")
    try:
        produce(lambda pixels, name: save_png(pixels, os.path.join(tmp_dir, name)))
        os.makedirs(outdir, exist_ok=True)
        for name in sorted(os.listdir(tmp_dir)):
            os.replace(os.path.join(tmp_dir, name), os.path.join(outdir, name))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _seeds_option(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[List[int]]:
    """click callback: parse ``--seeds`` or fail with a one-line BadParameter."""
    if value is None:
        return None
    try:
        return parse_seeds(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@click.command()
@click.option("--network", "network_pkl", help="Network pickle path or URL", required=True)
@click.option("--seeds", callback=_seeds_option, help="Seeds, e.g. '0-3,7'")
@click.option("--trunc", "truncation_psi", type=float, default=1, show_default=True, help="Truncation psi")
@click.option("--class", "class_idx", type=int, help="Class label (conditional networks only)")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True,
              help="Noise mode")
@click.option("--outdir", type=click.Path(file_okay=False), required=True, help="Where to save the images")
@click.option("--projected-w", type=click.Path(exists=True, dir_okay=False), help="Projection result (.npz) to synthesise")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Type of the reduced-precision layers: auto = fp16 on CUDA, bf16 on CPUs where it pays, else fp32")
def main(network_pkl: str, seeds: Optional[List[int]], truncation_psi: float, class_idx: Optional[int],
         noise_mode: str, outdir: str, projected_w: Optional[str], precision: str) -> None:
    """Generate images with a trained network (official pickle or manGANime snapshot)."""
    if seeds is None and projected_w is None:
        raise click.UsageError("--seeds is required unless --projected-w is given")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        choice = resolve(precision, device)
    except PrecisionError as err:
        raise click.BadParameter(str(err), param_hint="--precision") from None
    G = load_generator(network_pkl, device)
    with reduced_precision(choice.name):
        _generate(G, seeds, truncation_psi, class_idx, noise_mode, outdir, projected_w, device)


def _generate(G: torch.nn.Module, seeds: Optional[List[int]], truncation_psi: float, class_idx: Optional[int],
              noise_mode: str, outdir: str, projected_w: Optional[str], device: torch.device) -> None:
    """The images ``main`` asked for, written atomically (inside the chosen precision's scope)."""
    if projected_w is not None:
        if seeds is not None:
            click.echo("warning: --seeds is ignored when --projected-w is given", err=True)
        try:
            ws = load_projected_w(projected_w, G)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--projected-w") from None
        write_atomically(outdir, lambda save: generate_projected_images(G, ws, noise_mode, device, save))
        return

    try:
        label = make_label(G, class_idx, device)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    write_atomically(outdir, lambda save: generate_seed_images(G, seeds, label, truncation_psi, noise_mode, device, save))


if __name__ == "__main__":
    main()  # pylint: disable=no-value-for-parameter
