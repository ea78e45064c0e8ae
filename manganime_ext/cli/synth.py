"""``synth`` writes the built-in synthetic series; ``truth`` turns its ground truth into a series config."""

import click
import tqdm

from manganime_ext.cli.errors import user_errors
from manganime_ext.data import ground_truth
from manganime_ext.synthetic import anime


@click.command(name="synth")
@click.option("--out", required=True, type=click.Path(), help="Output folder (episodes/, manga/, ground_truth.json).")
@click.option("--episodes", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--seconds", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Length of each episode.")
@click.option("--resolution", default=128, show_default=True, type=click.IntRange(min=16))
@click.option("--fps", default=24, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--intro-seconds", default=3.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--outro-seconds", default=2.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--cast", default=0, show_default=True, type=click.IntRange(min=0),
              help="Recurring characters the whole series draws from (0: new characters in every shot).")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@user_errors
def synth(out, episodes, seconds, resolution, fps, seed, intro_seconds, outro_seconds, cast, force) -> None:
    """Write the synthetic series: cartoon episodes, their manga volume and the ground truth."""
    with tqdm.tqdm(total=episodes * int(round(seconds * fps)), unit="frame", desc="synth") as bar:
        anime.write_series(out, episodes, seconds, resolution, fps, seed, intro_seconds, outro_seconds,
                           cast=cast, force=force, progress=bar.update)


@click.command(name="truth")
@click.option("--series", "series_dir", required=True, type=click.Path(), help="Folder synth wrote (ground_truth.json).")
@click.option("--stores", required=True, type=click.Path(), help="Frame stores of its episodes (any --stride).")
@click.option("--out", required=True, type=click.Path(), help="Output folder: series.json, tags/, cuts.json.")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@user_errors
def truth(series_dir, stores, out, force) -> None:
    """The synthetic series' ground truth as a series config (page functions, exclusions, cuts) for its stores."""
    counts = ground_truth.write_truth_config(series_dir, stores, out, force=force)
    click.echo(f"{out}/series.json: {len(counts)} episodes, {sum(counts.values())} stored frames; "
               f"cuts for --cuts in {out}/cuts.json")
