"""``projector_video.py``: project the frames of a video, walk the latent space, draw the study's figure.

    python projector_video.py project --network=net.pkl --video=ep003.mp4 --out=proj [--every 2 --start 5 --end 13]
    python projector_video.py interpolate --network=net.pkl --projection=proj --out=walk
    python projector_video.py interpolate --network=net.pkl --seeds=0-15 --grid=2x2 --kind=cubic --loop --out=walk
    python projector_video.py figure --network=net.pkl --projection=proj --out=figure.png

Argument parsing only; the work is ``manganime_ext.projection.workflow``.
"""

import re
from typing import List, Optional, Tuple

import click

from manganime_ext.cli.errors import user_errors
from manganime_ext.io.video import TRANSFORMS
from manganime_ext.projection import workflow
from manganime_ext.projection.interpolation import KINDS
from manganime_ext.projection.video import SPACES, VideoProjectionSettings
from stylegan2_ada.generate import parse_seeds
from stylegan2_ada.projector import DISTANCES


def _frame_list(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[List[int]]:
    if value is None:
        return None
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma list of frame numbers like 48,96,144") from None
    if any(n < 0 for n in numbers) or len(numbers) < 2:
        raise click.BadParameter(f"{value!r}: give two or more frame numbers, none negative")
    return numbers


def _seed_list(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[List[int]]:
    try:
        return None if value is None else parse_seeds(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _grid(ctx: click.Context, param: click.Parameter, value: str) -> Tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", value)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise click.BadParameter(f"{value!r} is not COLUMNSxROWS like 2x2")
    return int(match.group(1)), int(match.group(2))


distance_options = [
    click.option("--distance", "distance_name", type=click.Choice(DISTANCES), default="lpips", show_default=True,
                 help="lpips: VGG16-LPIPS from vgg16.pt (the paper's); msssim: MS-SSIM + L1, needs no download."),
    click.option("--detector-dir", metavar="DIR", help="Folder holding vgg16.pt (else $MANGANIME_METRIC_NETWORKS, "
                                                        "the download cache, then a download)."),
]
offset_options = [
    click.option("--start-offset", default=2.0, show_default=True, type=float,
                 help="Study keyframes: the first projected frame this many seconds into the clip ..."),
    click.option("--end-offset", default=1.0, show_default=True, type=float,
                 help="... and the last one this many seconds before its end."),
]


def _with(options):
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


@click.group()
def cli() -> None:
    """Project anime frames into a StyleGAN2 latent space and render latent interpolations."""


@cli.command()
@click.option("--network", required=True, help="Network pickle (path or URL): our snapshot or an official one.")
@click.option("--video", required=True, type=click.Path(dir_okay=False), help="Video to project (any format ffmpeg reads).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (written all at once).")
@click.option("--every", default=1, show_default=True, type=click.IntRange(min=1), help="Project every k-th frame.")
@click.option("--start", type=click.FloatRange(min=0), help="Start of the clip (seconds).")
@click.option("--end", type=click.FloatRange(min=0, min_open=True), help="End of the clip (seconds).")
@click.option("--steps", default=100, show_default=True, type=click.IntRange(min=1),
              help="Steps of a cold start (the mean w; the study's 100 for every frame).")
@click.option("--warm-steps", default=VideoProjectionSettings.warm_steps, show_default=True, type=click.IntRange(min=1),
              help="Steps of a frame started from the previous frame's latent and noise.")
@click.option("--cold", is_flag=True, help="Start every frame cold, as the study did (no warm starts).")
@click.option("--optimize-noise", is_flag=True, help="Optimise per-frame noise maps too (the paper's single-image "
                                                       "procedure; outputs still use the network's own noise).")
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1), help="Frames optimised together.")
@click.option("--space", type=click.Choice(SPACES), default="w", show_default=True,
              help="w: one latent per frame; wplus: one per layer (closer, less editable).")
@click.option("--tune", default=0, show_default=True, type=click.IntRange(min=0),
              help="Pivotal tuning steps: fine-tune G around the latents; writes tuned.pkl.")
@click.option("--tune-lr", default=3e-3, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Pivotal tuning learning rate (PTI used 3e-4 for one image on a large network).")
@click.option("--transform", type=click.Choice(TRANSFORMS), default="squash", show_default=True,
              help="How frames of another shape are made square at the network's size.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (frame f uses seed + f).")
@_with(distance_options)
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@user_errors
def project(network, video, out, every, start, end, steps, warm_steps, cold, optimize_noise, batch, space, tune,
            tune_lr, transform, seed, distance_name, detector_dir, force) -> None:
    """Project every frame of a video into W or W+: batched, warm-started, cold again at cuts."""
    settings = VideoProjectionSettings(steps=steps, warm_steps=warm_steps, batch=batch, space=space, warm=not cold,
                                       optimize_noise=optimize_noise, seed=seed)
    workflow.project_video(network, video, out, settings, every=every, start=start, end=end, tune_steps=tune,
                           tune_learning_rate=tune_lr, distance_name=distance_name, detector_dir=detector_dir,
                           transform=transform, force=force, log=click.echo)


@cli.command()
@click.option("--network", required=True, help="Network pickle (path or URL), e.g. a project run's tuned.pkl.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (written all at once).")
@click.option("--projection", type=click.Path(), help="A project run's folder (or its ws.npz): walk between its frames.")
@click.option("--keyframes", callback=_frame_list, help="Projected frame numbers to pass through, e.g. 48,96,144 "
                                                         "[default: the study's two, see --start-offset/--end-offset].")
@click.option("--seeds", callback=_seed_list, help="Walk between the latents of these seeds instead, e.g. 0-3.")
@click.option("--kind", type=click.Choice(KINDS), default="linear", show_default=True,
              help="linear in W (the study), slerp in Z (seeds only), cubic spline in W through all keyframes.")
@click.option("--frames-per-transition", default=48, show_default=True, type=click.IntRange(min=1))
@click.option("--loop", is_flag=True, help="Come back to the first keyframe (closed path).")
@click.option("--grid", default="1x1", show_default=True, callback=_grid,
              help="COLUMNSxROWS walks side by side (seeds are dealt out in order, the same number per walk).")
@click.option("--fps", default=24.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--trunc", "truncation_psi", default=1.0, show_default=True, type=float, help="Truncation psi (seeds).")
@_with(offset_options)
@_with(distance_options)
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@user_errors
def interpolate(network, out, projection, keyframes, seeds, kind, frames_per_transition, loop, grid, fps,
                truncation_psi, start_offset, end_offset, distance_name, detector_dir, force) -> None:
    """Render a latent walk (interpolation.mp4) and its smoothness report (smoothness.json)."""
    report = workflow.interpolate(network, out, projection=projection, keyframes=keyframes, seeds=seeds, kind=kind,
                                  frames_per_transition=frames_per_transition, loop=loop, grid=grid, fps=fps,
                                  truncation_psi=truncation_psi, start_offset=start_offset, end_offset=end_offset,
                                  distance_name=distance_name, detector_dir=detector_dir, force=force, log=click.echo)
    for cell in report["smoothness"] if isinstance(report["smoothness"], list) else [report["smoothness"]]:
        click.echo(f"adjacent frames: {cell['distance']} mean {cell['distance_mean']:.4f}, max {cell['distance_max']:.4f};"
                   f" pixels mean {cell['pixel_mean']:.2f}, max {cell['pixel_max']:.2f}")


@cli.command()
@click.option("--network", required=True, help="Network pickle (path or URL) the projection was made with.")
@click.option("--projection", required=True, type=click.Path(), help="A project run's folder (or its ws.npz).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--video", type=click.Path(dir_okay=False), help="The projected video [default: the one metrics.json names].")
@click.option("--columns", default=8, show_default=True, type=click.IntRange(min=2))
@click.option("--keyframes", callback=_frame_list, help="The two projected frame numbers to span "
                                                         "[default: the study's offsets].")
@_with(offset_options)
@click.option("--no-labels", is_flag=True, help="Leave out the row names.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@user_errors
def figure(network, projection, out, video, columns, keyframes, start_offset, end_offset, no_labels, force) -> None:
    """The study's figure: ground truth / projection / interpolation in W, evenly spaced columns."""
    workflow.figure(network, projection, out, video=video, columns=columns, keyframes=keyframes,
                    start_offset=start_offset, end_offset=end_offset, labels=not no_labels, force=force, log=click.echo)
