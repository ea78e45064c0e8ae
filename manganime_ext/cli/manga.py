"""The ``manga`` command: preprocess a volume of scans into square greyscale pages."""

import dataclasses

import click

from manganime_ext.cli.errors import user_errors
from manganime_ext.io.manga import MangaSettings, check_settings, load_config, write_volume


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
@user_errors
def manga(source, out, resolution, config, start, end, exclude, crop, force) -> None:
    """Preprocess a manga volume (a folder of images or a CBZ/zip) into square greyscale pages."""
    settings = load_config(config) if config else MangaSettings()
    flags = dict(start=start, end=end, exclude=list(exclude) or None, crop=list(crop) if crop else None)
    settings = check_settings(dataclasses.replace(settings, **{k: v for k, v in flags.items() if v is not None}))
    manifest = write_volume(source, out, resolution, settings, force)
    click.echo(f"{out}: {len(manifest['pages'])} pages at {resolution}x{resolution}")
