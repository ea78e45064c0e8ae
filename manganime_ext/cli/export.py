"""The series commands ``check``, ``export-unconditional`` and ``export-conditional``: argument parsing only.

The work is in ``data.series_config`` and ``data.export``.
"""

import contextlib

import click
import tqdm

from manganime_ext.cli.errors import user_errors
from manganime_ext.cli.shard import shard_option
from manganime_ext.data import export, series_config
from manganime_ext.io.outputs import select_shard

series_option = click.option("--series", "series_path", required=True, type=click.Path(),
                             help="Series config JSON (episodes, volumes).")


def _bar(stack: contextlib.ExitStack) -> export.ProgressFactory:
    """A progress factory whose bar appears only once the inputs are valid, and closes with ``stack``."""
    return lambda total: stack.enter_context(tqdm.tqdm(total=total, unit="frame", desc="export")).update


@click.command()
@series_option
@shard_option
@user_errors
def check(series_path, shard) -> None:
    """Validate a whole series and print frames, pages, tagged fraction and frames per page."""
    series = series_config.load(series_path)
    rows, total = series_config.summary(series, select_shard(series.episodes, shard))
    click.echo(f"{'episode':<16} {'frames':>8} {'supported':>9} {'pages':>6} {'tagged':>7}  frames/page mean min max")
    for r in rows + [dict(total, name=f"total ({total['episodes']} ep.)")]:
        mean, lo, hi = r["per_page"]
        click.echo(f"{r['name']:<16} {r['frames']:>8} {r['supported']:>9} {r['pages']:>6} "
                   f"{r['tagged'] / max(r['pages'], 1):>7.1%}  {mean:>15.1f} {lo:>3} {hi:>3}")


@click.command(name="export-unconditional")
@series_option
@click.option("--out", required=True, type=click.Path(), help="Output .zip (official StyleGAN2-ADA format).")
@click.option("--labels", type=click.Choice(export.LABELS), is_flag=False, flag_value="episode", default=None,
              help="Class-conditional set: label each image with its episode's index (bare --labels) or its "
                   "manga page (--labels=page).")
@click.option("--force", is_flag=True, help="Replace an existing output.")
@user_errors
def export_unconditional(series_path, out, labels, force) -> None:
    """Write every supported frame of the series as an official-format dataset zip."""
    series = series_config.load(series_path)
    with contextlib.ExitStack() as bars:
        count = export.export_unconditional(series, series.episodes, out, labels, force, _bar(bars))
    click.echo(f"{out}: {count} images")


@click.command(name="export-conditional")
@series_option
@click.option("--out", required=True, type=click.Path(), help="Output .zip: pages, frames, index.json.")
@click.option("--stride", default=1, show_default=True, type=click.IntRange(min=1),
              help="Pairs (n, n + stride), in stored frames.")
@click.option("--val-episodes", default="", help="Comma-separated episode names for the validation split.")
@click.option("--cuts", "cuts_path", default=None, type=click.Path(),
              help="The cuts command's --out folder, one JSON {episode: [frames]}, or ground_truth.json.")
@click.option("--no-cross-cuts", is_flag=True, help="Drop pairs that straddle a cut (needs --cuts).")
@click.option("--skip-untagged", is_flag=True, help="Drop pairs on untagged pages instead of guessing their page.")
@click.option("--page-resolution", default=None, type=click.IntRange(min=8),
              help="Side of the square greyscale pages written  [default: the frames' size]")
@click.option("--force", is_flag=True, help="Replace an existing output.")
@user_errors
def export_conditional(series_path, out, stride, val_episodes, cuts_path, no_cross_cuts, skip_untagged,
                       page_resolution, force) -> None:
    """Write the paired (frame, page, next frame) dataset for next-frame training."""
    if no_cross_cuts and cuts_path is None:
        raise export.ExportError("--no-cross-cuts: give the cuts with --cuts")
    series = series_config.load(series_path)
    cuts = export.load_cuts(cuts_path) if cuts_path else None
    val = [v.strip() for v in val_episodes.split(",") if v.strip()]
    with contextlib.ExitStack() as bars:
        counts = export.export_conditional(series, series.episodes, out, val, stride, cuts, no_cross_cuts,
                                           skip_untagged, force, _bar(bars), page_resolution)
    click.echo(f"{out}: {counts['train']} train / {counts['val']} val pairs, {counts['frames']} frames, "
               f"{counts['pages']} pages")
