"""The ``intro`` and ``outro`` commands: mark the frames without manga support as exclusion ranges."""

import click

from manganime_ext.analysis import intro_outro
from manganime_ext.cli.errors import UserError, user_errors


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
    @user_errors
    def command(stores, out, method, minutes, image, left, right, min_seconds, tolerance, merge, force) -> None:
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
        for name, ranges in found.items():
            click.echo(f"{name}: {part} {' '.join(f'[{a}, {b})' for a, b in ranges) or 'not found'}")

    command.help = (f"Mark each episode's {part} (frames without manga support) as an exclusion range, "
                    f"found automatically or from a reference image.\n\nNo --shard: the automatic method "
                    f"finds the {part} by comparing episodes, so it runs once over all of a series' stores "
                    f"(it reads only the {part} window of each, so it stays cheap).")
    return command


intro = _exclusion_command("intro")
outro = _exclusion_command("outro")
