"""The interface every next-frame predictor implements, and the registry ``--cond`` names come from.

A predictor maps the last frames and the manga page window to the next frame, everything in [-1, 1]:

    frames [N, K, 3, H, W] (oldest first), pages [N, P, 1, S, S] (the frame's page in the middle)
    -> next frame [N, 3, H, W]

Callers may give more history and a wider page window than a predictor uses (the data always
carries 2 frames and 3 pages); :meth:`NextFramePredictor.forward` keeps the last ``context_frames``
frames and the middle ``page_window`` pages before calling the subclass's ``predict``.

It is built from an unconditional generator's constructor arguments (so a snapshot can rebuild it)
and then takes that generator's weights with :meth:`NextFramePredictor.init_from_generator`. Its
parameters come in two groups, ``encoder`` and ``synthesis``, which ``--train`` chooses between. A new
predictor is a new registered class; the training loop, evaluation and rollout never change.
"""

import inspect
from typing import Callable, Dict, List, Type

import torch

from stylegan2_ada import legacy
from stylegan2_ada.torch_utils import persistence

PREDICTORS: Dict[str, Type["NextFramePredictor"]] = {}
PARAMETER_GROUPS = ("all", "synthesis", "encoder")


class PredictorError(ValueError):
    """A predictor that cannot be built from the given generator or options; one line."""


def register_predictor(name: str) -> Callable[[type], type]:
    """Class decorator: make the predictor available as ``--cond=name`` and storable in snapshots."""

    def add(cls: type) -> type:
        cls = legacy.register_class(persistence.persistent_class(cls))
        cls.cond_name = name
        PREDICTORS[name] = cls
        return cls

    return add


class NextFramePredictor(torch.nn.Module):
    """Base class: subclasses set ``context_frames``/``page_window`` and implement the three methods."""

    cond_name = ""
    context_frames = 1  # past frames forward() wants (1 = F_n only, 2 = F_{n-1} and F_n)
    page_window = 1  # pages around the frame's page forward() wants (1, or 3 = p-1, p, p+1)

    def forward(self, frames: torch.Tensor, pages: torch.Tensor) -> torch.Tensor:
        if frames.shape[1] < self.context_frames:
            raise PredictorError(f"{self.cond_name} needs {self.context_frames} past frames, got {frames.shape[1]}")
        middle, half = pages.shape[1] // 2, self.page_window // 2
        if middle < half:
            raise PredictorError(f"{self.cond_name} needs a window of {self.page_window} pages, got {pages.shape[1]}")
        return self.predict(frames[:, -self.context_frames:], pages[:, middle - half:middle + half + 1])

    def predict(self, frames: torch.Tensor, pages: torch.Tensor) -> torch.Tensor:
        """The next frame from exactly ``context_frames`` frames and ``page_window`` pages."""
        raise NotImplementedError

    def init_from_generator(self, G: torch.nn.Module) -> None:
        """Copy the pretrained generator's weights into the parts of this predictor that came from it."""
        raise NotImplementedError

    def parameter_groups(self) -> Dict[str, List[torch.nn.Parameter]]:
        """``{'encoder': [...], 'synthesis': [...]}``: what ``--train encoder|synthesis`` updates."""
        raise NotImplementedError

    def trainable(self, which: str) -> List[torch.nn.Parameter]:
        """The parameters ``--train which`` updates; an empty choice is an error the user can fix."""
        groups = self.parameter_groups()
        params = groups["encoder"] + groups["synthesis"] if which == "all" else groups[which]
        if not params:
            raise PredictorError(f"--train {which}: the {self.cond_name} predictor has no {which} parameters")
        return params


def build_predictor(cond: str, generator_kwargs: dict, **predictor_kwargs) -> NextFramePredictor:
    """The registered predictor ``cond`` for a generator with these constructor arguments.

    Every constructor argument is passed explicitly, defaults included, so a snapshot records the
    whole design and still rebuilds the same network after a default changes.
    """
    if cond not in PREDICTORS:
        raise PredictorError(f"--cond {cond}: not one of {', '.join(sorted(PREDICTORS))}")
    cls = PREDICTORS[cond]
    try:
        bound = inspect.signature(cls.__init__).bind(None, generator_kwargs=dict(generator_kwargs), **predictor_kwargs)
    except TypeError as err:
        raise PredictorError(f"--cond {cond}: {err}") from None
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("self")
    return cls(**arguments)
