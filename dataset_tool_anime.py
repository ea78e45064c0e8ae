"""Build manGANime datasets from anime episodes and manga scans (or from the built-in synthetic series).

    python dataset_tool_anime.py synth --out series
    python dataset_tool_anime.py frames --out stores --stride 2 --resolution 256 series/episodes/*.mp4
    python dataset_tool_anime.py frames --out stores --shard $SLURM_ARRAY_TASK_ID/100 episodes/*.mkv
    python dataset_tool_anime.py manga | intro | outro | cuts | align | export-unconditional | export-conditional | check

Only argument parsing lives here; each command calls one manganime_ext module.
"""

import os

import click
import tqdm

from manganime_ext.io import frame_store
from manganime_ext.synthetic import anime as synth
from manganime_ext.cli.cuts_align import align_cmd, cuts_cmd
from manganime_ext.cli.export import check, export_conditional, export_unconditional, shard_option
from manganime_ext.cli.manga import intro, manga, outro
from manganime_ext.io.outputs import OutputExistsError, episode_outputs
from manganime_ext.data.series_config import select_shard
from manganime_ext.io.video import TRANSFORMS, VideoError

USER_ERRORS = (OutputExistsError, VideoError, synth.SynthError)


class UserError(click.ClickException):
    """One line, exit code 1, no traceback."""


@click.group()
def cli() -> None:
    """From anime episodes and manga scans to a page-tagged, paired training set."""


@cli.command(name="synth")
@click.option("--out", required=True, type=click.Path(), help="Output folder (episodes/, manga/, ground_truth.json).")
@click.option("--episodes", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--seconds", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Length of each episode.")
@click.option("--resolution", default=128, show_default=True, type=click.IntRange(min=16))
@click.option("--fps", default=24, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--intro-seconds", default=3.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--outro-seconds", default=2.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
def synth_cmd(out, episodes, seconds, resolution, fps, seed, intro_seconds, outro_seconds, force) -> None:
    """Write the synthetic series: cartoon episodes, their manga volume and the ground truth."""
    with tqdm.tqdm(total=episodes * int(round(seconds * fps)), unit="frame", desc="synth") as bar:
        try:
            synth.write_series(out, episodes, seconds, resolution, fps, seed, intro_seconds, outro_seconds,
                               force=force, progress=bar.update)
        except USER_ERRORS as e:
            raise UserError(str(e)) from None


@cli.command()
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
def frames(videos, out, stride, resolution, transform, start, duration, force, shard) -> None:
    """Decode episodes into frame stores with random access and adjacent-frame similarity rho.

    Per episode and idempotent with --shard I/N: videos in sorted order, every N-th from the I-th; the jobs
    of an array share --out, each store appears at once, stores already there are skipped unless --force.
    Without --shard the whole folder appears at once.
    """
    stems = [os.path.splitext(os.path.basename(v))[0] for v in videos]
    if len(set(stems)) != len(stems):
        raise click.BadParameter("two videos share a file name; stores are named by it", param_hint="VIDEOS")
    todo = select_shard(sorted(zip(videos, stems)), shard or (0, 1))

    def progress_factory(name, total):
        return tqdm.tqdm(total=total or None, unit="frame", desc=name, leave=False).update

    try:
        with episode_outputs(out, shard, force) as dest:
            for video, stem in todo:
                if dest.done(stem, stem):
                    continue
                with dest.episode(stem) as folder:
                    count = frame_store.write_episode(os.path.join(folder, stem), video, resolution, transform,
                                                      stride, start, duration, progress_factory)
                click.echo(f"{stem}: {count} frames")
    except USER_ERRORS as e:
        raise UserError(str(e)) from None


for command in (manga, intro, outro, cuts_cmd, align_cmd, export_unconditional, export_conditional, check):
    cli.add_command(command)

if __name__ == "__main__":
    cli()
