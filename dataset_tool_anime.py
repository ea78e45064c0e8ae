"""Build manGANime datasets from anime episodes and manga scans (or from the built-in synthetic series).

    python dataset_tool_anime.py synth --out series
    python dataset_tool_anime.py frames --out stores --stride 2 --resolution 256 series/episodes/*.mp4
    python dataset_tool_anime.py frames --out stores --shard $SLURM_ARRAY_TASK_ID/100 episodes/*.mkv
    python dataset_tool_anime.py manga | intro | outro | cuts | align | export-unconditional | export-conditional | check

Only the command group is assembled here; each command lives in manganime_ext.cli and calls one room.
"""

import click

from manganime_ext.cli.cuts_align import align_cmd, cuts_cmd
from manganime_ext.cli.export import check, export_conditional, export_unconditional
from manganime_ext.cli.frames import frames
from manganime_ext.cli.intro_outro import intro, outro
from manganime_ext.cli.manga import manga
from manganime_ext.cli.synth import synth, truth
from manganime_ext.cli.tag import tag


@click.group()
def cli() -> None:
    """From anime episodes and manga scans to a page-tagged, paired training set."""


for command in (synth, truth, frames, manga, intro, outro, cuts_cmd, align_cmd, export_unconditional, export_conditional,
                check, tag):
    cli.add_command(command)

if __name__ == "__main__":
    cli()
