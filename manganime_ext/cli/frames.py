"""The ``frames`` command: decode episodes into frame stores (random access, adjacent-frame rho)."""

import os

import click
import tqdm

from manganime_ext.analysis import decode
from manganime_ext.cli.errors import user_errors
from manganime_ext.cli.shard import shard_option
from manganime_ext.io.outputs import episode_outputs, select_shard
from manganime_ext.io.video import TRANSFORMS


def _progress_bar(name: str, total: int):
    return tqdm.tqdm(total=total or None, unit="frame", desc=name, leave=False).update


@click.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Output folder: one frame store per video, by file stem.")
@click.option("--stride", default=1, show_default=True, type=click.IntRange(min=1),
              help="Keep every k-th frame (study: 2).")
@click.option("--resolution", default=256, show_default=True, type=click.IntRange(min=8), help="Square frame size.")
@click.option("--transform", default="squash", show_default=True, type=click.Choice(TRANSFORMS))
@click.option("--start", default=None, type=click.FloatRange(min=0), help="Trim: first second to keep.")
@click.option("--duration", default=None, type=click.FloatRange(min=0, min_open=True), help="Trim: seconds to keep.")
@click.option("--force", is_flag=True, help="Replace an existing output folder (with --shard: redo its episodes).")
@shard_option
@user_errors
def frames(videos, out, stride, resolution, transform, start, duration, force, shard) -> None:
    """Decode episodes into frame stores with random access and adjacent-frame similarity rho.

    Per episode and idempotent with --shard I/N: videos in sorted order, every N-th from the I-th; the jobs
    of an array share --out, each store appears at once, stores already there are skipped unless --force.
    Without --shard the whole folder appears at once.
    """
    stems = [os.path.splitext(os.path.basename(v))[0] for v in videos]
    if len(set(stems)) != len(stems):
        raise click.BadParameter("two videos share a file name; stores are named by it", param_hint="VIDEOS")
    with episode_outputs(out, shard, force) as dest:
        for video, stem in select_shard(sorted(zip(videos, stems)), shard):
            if dest.done(stem, stem):
                continue
            with dest.episode(stem) as folder:
                count = decode.write_episode(os.path.join(folder, stem), video, resolution, transform, stride,
                                             start, duration, _progress_bar)
            click.echo(f"{stem}: {count} frames")
