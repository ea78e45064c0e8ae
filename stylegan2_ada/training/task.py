"""The plug-in interface of the shared training loop.

The loop (``training_loop.py``) owns everything that does not depend on the model: seeding, the
sharded data stream, resuming, optimisers and lazy regularisation, gradient averaging across
processes, EMA copies, the tick log, ``stats.jsonl``, atomic snapshots, the NaN guard and the
progress bar. A *task* says what is trained: which networks, which loss, what one batch is, and
what to draw and measure at a snapshot. StyleGAN2-ADA itself is one task
(:class:`~stylegan2_ada.training.stylegan2_task.StyleGAN2Task`); manGANime's next-frame predictor is
another, in its own package. The loop picks the task by ``task_kwargs.class_name`` in the options.
"""

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import torch

if TYPE_CHECKING:  # only for annotations: the loop imports this module, not the other way round
    from .training_loop import Phase, Session

DEFAULT_TASK = "stylegan2_ada.training.stylegan2_task.StyleGAN2Task"


class TrainingError(RuntimeError):
    """A problem the user can act on (bad data or resume file, non-finite loss): one line, no traceback."""


class TrainingTask:
    """What a model must tell the shared loop. Subclass it and override what differs.

    Networks live in ``session.networks`` under names of the task's choosing; the ones listed in
    :attr:`trained` get an optimiser built from ``options[name + '_opt_kwargs']`` and, with
    ``options[name + '_reg_interval']``, lazy regularisation phases ``<name>main``/``<name>reg``
    (else one phase ``<name>both``). Each entry ``copy: source`` of :attr:`ema` is an exponential
    moving average of a trained network. Every module in ``session.networks`` goes into snapshots,
    so its class must be registered with :func:`stylegan2_ada.legacy.register_class`.
    """

    trained: Sequence[str] = ("G", "D")  # Networks with an optimiser, in the order their phases run.
    ema: Dict[str, str] = {"G_ema": "G"}  # EMA copy -> the trained network it follows.

    def __init__(self, options: Dict[str, Any], **task_kwargs: Any):
        self.options = options
        self.task_kwargs = task_kwargs

    # Set-up -------------------------------------------------------------------------------------

    def build_networks(self, session: "Session", resumed: Optional[Dict[str, Any]]) -> Dict[str, Optional[torch.nn.Module]]:
        """Every module the task needs, on ``session.device``; from ``resumed`` (a loaded snapshot) when given."""
        raise NotImplementedError

    def build_loss(self, session: "Session") -> Any:
        """The object whose ``accumulate_gradients(phase, sync, gain, **batch)`` runs one phase."""
        raise NotImplementedError

    def trainable_parameters(self, session: "Session", name: str) -> List[torch.nn.Parameter]:
        """The parameters of trained network ``name`` that its optimiser updates (default: all of them).
        Only these get gradients, so freezing part of a network also saves its backward pass."""
        return list(session.networks[name].parameters())

    def restore(self, session: "Session", resumed: Dict[str, Any]) -> None:
        """Take task state (beyond networks and optimisers) back from a snapshot being resumed."""

    # The step -----------------------------------------------------------------------------------

    def next_batch(self, session: "Session", rounds: int) -> List[Dict[str, torch.Tensor]]:
        """The batch function: this process's data for one step, as ``rounds`` accumulation rounds.

        Each dict is passed to the loss as keyword arguments. The default takes ``(image, label)``
        items (uint8 images scaled to [-1, 1]) as ``real_img``/``real_c``; a task whose dataset yields
        something else overrides this.
        """
        batches = []
        for _ in range(rounds):
            images, labels = next(session.data_iter)
            batches.append(dict(real_img=images.to(session.device).to(torch.float32) / 127.5 - 1,
                                real_c=labels.to(session.device)))
        return batches

    def phase_inputs(self, session: "Session", phase: "Phase", batch: List[Dict[str, torch.Tensor]]) -> List[Dict[str, torch.Tensor]]:
        """Loss inputs for ``phase``; called for every phase at every step, due or not, so random
        streams drawn here advance the same way in every run. The default passes ``batch`` on."""
        return batch

    def after_step(self, session: "Session") -> None:
        """Per-step bookkeeping after the optimiser steps and the EMA update (e.g. ADA's probability)."""

    # Maintenance --------------------------------------------------------------------------------

    def snapshot_state(self, session: "Session") -> Dict[str, Any]:
        """Plain data saved in each snapshot's ``progress`` so that a resumed run continues exactly."""
        return {}

    def begin(self, session: "Session", run_dir: str) -> None:
        """Once, on process 0, before the first step (e.g. write ``reals.png`` and the initial grid)."""

    def save_images(self, session: "Session", run_dir: str) -> None:
        """On process 0 at each image snapshot (e.g. ``fakesNNNNNN.png``)."""

    def evaluate(self, session: "Session", run_dir: str, snapshot_path: str) -> None:
        """On every process after each network snapshot (metrics); only process 0 writes."""

    def tick_fields(self, session: "Session") -> Dict[str, float]:
        """Extra numbers for the end of the tick line, e.g. ``{'augment': p}``."""
        return {}

    def close(self, session: "Session") -> None:
        """Release what the task holds (statistics collectors, files) when training ends."""
