"""``python -m manganime_ext.cli.demo``: run the demo pipeline and write its report (parsing only)."""

import dataclasses

import click

from manganime_ext.cli.errors import UserError
from manganime_ext.demo import report, runner
from manganime_ext.demo.settings import DemoSettings
from manganime_ext.demo.stages import STAGES


@click.command()
@click.option("--out", default="demo-out", show_default=True, type=click.Path(), help="Output folder (resumable).")
@click.option("--force", is_flag=True, help="Run every stage again, even those done before.")
@click.option("--redo", multiple=True, type=click.Choice([s.name for s in STAGES]),
              help="Run this stage and every later one again (repeatable).")
@click.option("--until", type=click.Choice([s.name for s in STAGES]), help="Stop after this stage.")
@click.option("--quick", is_flag=True, help="Tiny sizes (for tests): every stage runs, nothing looks good.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Torch threads per command (0 = torch's default).")
@click.option("--gan-minutes", type=click.FloatRange(min=0, min_open=True),
              help=f"StyleGAN2-ADA's time budget instead of the 20-minute demo's {DemoSettings.gan_minutes:g} (it still "
                   f"stops at {DemoSettings.gan_kimg:g} kimg); on an existing folder add --redo stylegan2.")
def main(out, force, redo, until, quick, threads, gan_minutes) -> None:
    """The whole manGANime pipeline on the built-in synthetic series, then OUT/index.html."""
    settings = DemoSettings.quick() if quick else DemoSettings.full()
    if threads:
        settings = dataclasses.replace(settings, threads=threads)
    if gan_minutes:
        settings = dataclasses.replace(settings, gan_minutes=gan_minutes)
    try:
        timings = runner.run(out, settings, force=force, redo=redo, until=until)
    except runner.DemoError as err:
        report.write_report(out)
        raise UserError(str(err)) from None
    path = report.write_report(out)
    click.echo(f"Demo done ({sum(timings.values()) / 60:.1f} min this run): open {path}")


if __name__ == "__main__":
    main()  # pylint: disable=no-value-for-parameter
