"""The errors a user can fix, shown as one line (``Error: ...``, exit code 1, no traceback).

Every room raises its own error class for inputs a user can fix (a missing file, a bad range, an
existing output); ``user_errors`` turns exactly those into ``UserError`` at the command's edge.
Anything else is a bug and keeps its traceback.
"""

import functools
from typing import Callable, TypeVar

import click

from manganime_ext.analysis.intro_outro import IntroOutroError
from manganime_ext.conditioning.evaluation import EvaluationError
from manganime_ext.conditioning.predictor import PredictorError
from manganime_ext.conditioning.rollout import RolloutError
from manganime_ext.data.ground_truth import GroundTruthError
from manganime_ext.data.paired_dataset import PairedDatasetError
from manganime_ext.data.export import ExportError
from manganime_ext.data.page_function import PageFunctionError
from manganime_ext.data.series_config import SeriesConfigError
from manganime_ext.io.json_files import JSONFileError
from manganime_ext.io.manga import MangaError
from manganime_ext.io.outputs import OutputExistsError, ShardError
from manganime_ext.io.video import VideoError
from manganime_ext.projection.errors import ProjectionError
from manganime_ext.synthetic.anime import SynthError

USER_ERRORS = (OutputExistsError, ShardError, JSONFileError, VideoError, MangaError, SynthError, IntroOutroError,
               PageFunctionError, SeriesConfigError, ExportError, GroundTruthError, PairedDatasetError, PredictorError,
               EvaluationError, RolloutError, ProjectionError)
F = TypeVar("F", bound=Callable)


class UserError(click.ClickException):
    """One line, exit code 1, no traceback."""


def user_errors(command: F) -> F:
    """Decorate a command's function (innermost, under the click decorators): known user errors become one line."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as e:
            raise UserError(str(e)) from None

    return wrapper  # type: ignore[return-value]
