"""The projection room's user error."""


class ProjectionError(ValueError):
    """Inputs projection cannot use (missing or corrupt network or video, a clip shorter than the offsets,
    a missing distance network offline, inconsistent flags); one line naming the file or flag."""
