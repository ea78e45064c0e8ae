"""``--shard I/N``, shared by the per-episode stages (frames, cuts, align) and ``check``."""

from typing import Optional

import click

from manganime_ext.cli.errors import UserError
from manganime_ext.io.outputs import Shard, ShardError, parse_shard

SHARD_HELP = ("\n\nPer episode and idempotent with --shard I/N: stores in name order, every N-th from the I-th; "
              "the jobs of an array share --out, each episode's files appear at once, episodes already there "
              "are skipped unless --force, and the report is report-<I>of<N>.json over the shard's episodes "
              "(skipped ones read back). Without --shard the whole folder appears at once, as report.json.")


def _parse(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Shard:
    """``I/N`` -> (I, N) at parse time, so a bad value fails before any work, in one line naming --shard."""
    try:
        return None if value is None else parse_shard(value)
    except ShardError as e:
        raise UserError(str(e)) from None


shard_option = click.option("--shard", default=None, metavar="I/N", callback=_parse,
                            help="Only episodes whose index % N == I (one job of an N-job array).")
