"""Quality metrics (FID, KID, PR, IS, PPL) — see the metrics issue."""


class MetricError(ValueError):
    """A problem the user can fix (missing weights, wrong file, data that does not fit the network); one line."""
