"""Click commands ``manga``, ``intro`` and ``outro`` for dataset_tool_anime.py (argument parsing only).

Register with ``cli.add_command(manga)``, ``cli.add_command(intro)``, ``cli.add_command(outro)``.
"""

import dataclasses

import click

from manganime_ext.analysis import intro_outro
from manganime_ext.io.manga import MangaError, MangaSettings, check_settings, load_config, write_volume
from manganime_ext.io.outputs import OutputExistsError
from manganime_ext.io.video import VideoError

USER_ERRORS = (OutputExistsError, VideoError, MangaError, intro_outro.IntroOutroError)


class UserError(click.ClickException):
    """One line, exit code 1, no traceback."""


@click.command()
@click.argument("source", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Output folder: page0000.png ... and manga.json.")
@click.option("--resolution", default=256, show_default=True, type=click.IntRange(min=8), help="Square page size.")
@click.option("--config", type=click.Path(), help='Study JSON: {"start", "end", "exclude", "crop"}; flags override it.')
@click.option("--start", type=click.IntRange(min=0), help="Pages to skip at the beginning.")
@click.option("--end", type=click.IntRange(min=0), help="Pages to skip at the end.")
@click.option("--exclude", multiple=True, type=click.IntRange(min=0),
              help="Index (in the original sorted list) of a page to drop; repeat for more.")
@click.option("--crop", nargs=4, type=click.IntRange(min=0), default=None,
              help="Pixels to cut: TOP BOTTOM LEFT RIGHT.")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
def manga(source, out, resolution, config, start, end, exclude, crop, force) -> None:
    """Preprocess a manga volume (a folder of images or a CBZ/zip) into square greyscale pages."""
    try:
        settings = load_config(config) if config else MangaSettings()
        flags = dict(start=start, end=end, exclude=list(exclude) or None, crop=list(crop) if crop else None)
        settings = check_settings(dataclasses.replace(settings, **{k: v for k, v in flags.items() if v is not None}))
        manifest = write_volume(source, out, resolution, settings, force)
    except USER_ERRORS as e:
        raise UserError(str(e)) from None
    click.echo(f"{out}: {len(manifest['pages'])} pages at {resolution}x{resolution}")


def _exclusion_command(part: str) -> click.Command:
    """``intro`` and ``outro`` differ only in which end of the episode they search."""

    @click.command(name=part)
    @click.argument("stores", nargs=-1, required=True, type=click.Path())
    @click.option("--out", required=True, type=click.Path(), help="Exclusions JSON {episode: [[start, stop], ...]}.")
    @click.option("--method", default="auto", show_default=True, type=click.Choice(["auto", "reference"]),
                  help="auto: the sequence episodes share; reference: the frame most like --image (the study's).")
    @click.option("--minutes", default=3.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
                  help=f"Search the {'first' if part == 'intro' else 'last'} minutes of each episode (at most half).")
    @click.option("--image", type=click.Path(), help="reference: a representative image of the sequence.")
    @click.option("--left", type=click.IntRange(min=0), help="reference: frames to exclude before the best match.")
    @click.option("--right", type=click.IntRange(min=0), help="reference: frames to exclude after the best match.")
    @click.option("--min-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0),
                  help="auto: shortest shared run that counts.")
    @click.option("--tolerance", default=10.0, show_default=True, type=click.FloatRange(min=0),
                  help="auto: RMS grey-level difference of 8x8 signatures still called identical.")
    @click.option("--merge", is_flag=True, help="Add the ranges to an existing --out file (e.g. intro, then outro).")
    @click.option("--force", is_flag=True, help="Replace an existing --out file.")
    def command(stores, out, method, minutes, image, left, right, min_seconds, tolerance, merge, force) -> None:
        try:
            opened = intro_outro.open_stores(stores)
            if method == "reference":
                missing = [f"--{n}" for n, v in (("image", image), ("left", left), ("right", right)) if v is None]
                if missing:
                    raise click.UsageError(f"--method reference needs {', '.join(missing)}")
                found = intro_outro.detect_reference(opened, part, image, minutes, left, right)
            else:
                found = intro_outro.detect_auto(opened, part, minutes, min_seconds, tolerance)
            if not any(found.values()):
                raise UserError(f"no {part} found: no run of {min_seconds} s repeats across the episodes "
                                f"(lower --min-seconds, raise --tolerance or --minutes, or use --method reference)")
            intro_outro.save_exclusions(out, found, merge, force)
        except USER_ERRORS as e:
            raise UserError(str(e)) from None
        for name, ranges in found.items():
            click.echo(f"{name}: {part} {' '.join(f'[{a}, {b})' for a, b in ranges) or 'not found'}")

    command.help = (f"Mark each episode's {part} (frames without manga support) as an exclusion range, "
                    f"found automatically or from a reference image.\n\nNo --shard: the automatic method "
                    f"finds the {part} by comparing episodes, so it runs once over all of a series' stores "
                    f"(it reads only the {part} window of each, so it stays cheap).")
    return command


intro = _exclusion_command("intro")
outro = _exclusion_command("outro")
