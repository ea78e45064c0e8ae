"""The toy cartoon-shapes dataset of ``make demo``, as a command of its own:

    python -m manganime_ext.cli.toy_shapes --out shapes.zip --count 1000 --resolution 32
"""

import os

import click

from manganime_ext.synthetic.toy_shapes import write_shapes_zip


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .zip")
@click.option("--count", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--resolution", type=click.Choice(["16", "32", "64", "128"]), default="32", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing output")
def main(out: str, count: int, resolution: str, seed: int, force: bool) -> None:
    """Write the toy cartoon-shapes dataset."""
    if os.path.exists(out) and not force:
        raise click.UsageError(f"{out} already exists (use --force to overwrite)")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_shapes_zip(out, count, int(resolution), seed)
    click.echo(f"wrote {count} images to {out}")


if __name__ == "__main__":
    main()  # pylint: disable=no-value-for-parameter
