"""StyleGAN2-ADA as a task of the shared training loop: G, D, G_ema, ADA, image grids and metrics.

G, D and the loss are built by ``class_name`` from ``G_kwargs``, ``D_kwargs`` and ``loss_kwargs``
(the official option layout), so a variant network or loss is a new class named in the options.
"""

import copy
import os
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from .. import dnnlib
from ..torch_utils import distributed, training_stats
from . import image_grid
from .task import TrainingError, TrainingTask

DEFAULT_CLASSES = dict(
    G_kwargs="stylegan2_ada.training.networks.Generator",
    D_kwargs="stylegan2_ada.training.networks.Discriminator",
    loss_kwargs="stylegan2_ada.training.loss.StyleGAN2Loss",
)


def _construct(options: Dict[str, Any], key: str, **extra: Any) -> Any:
    """Build the object ``options[key]`` describes; options written before class names existed get the default."""
    kwargs = dict(options[key])
    class_name = kwargs.pop("class_name", DEFAULT_CLASSES[key])
    return dnnlib.util.construct_class_by_name(class_name=class_name, **kwargs, **extra)


class StyleGAN2Task(TrainingTask):
    """Unconditional or class-conditional StyleGAN2 with adaptive discriminator augmentation."""

    trained = ("G", "D")
    ema = {"G_ema": "G"}

    def __init__(self, options: Dict[str, Any], **task_kwargs: Any):
        super().__init__(options, **task_kwargs)
        seed = options["random_seed"]
        self.latent_rng = torch.Generator().manual_seed(seed)
        self.label_rng = np.random.RandomState(seed)
        self.ada_stats: Optional[training_stats.Collector] = None
        self.grid: Optional[Dict[str, Any]] = None

    # Set-up -------------------------------------------------------------------------------------

    def build_networks(self, session, resumed):
        ts = session.training_set
        shape = dict(c_dim=ts.label_dim, img_resolution=ts.resolution, img_channels=ts.num_channels)
        if resumed is None:
            G = _construct(self.options, "G_kwargs", **shape)
            D = _construct(self.options, "D_kwargs", **shape)
            G_ema = copy.deepcopy(G)
        else:
            G, D, G_ema = resumed["G"], resumed["D"], resumed["G_ema"]
            if G is None or D is None:
                raise TrainingError("the resume file has no G or D network (only G_ema): it cannot be trained further")
            wanted = tuple(shape.values())
            for name, net in (("G", G), ("D", D)):
                found = (net.c_dim, net.img_resolution, net.img_channels)
                if found != wanted:
                    raise TrainingError(f"the resume network's {name} has (labels, resolution, channels) = "
                                             f"{found}, but the dataset has {wanted}")
        networks = dict(G=G.train(), D=D.train(), G_ema=G_ema.eval(), augment_pipe=self._augment_pipe(resumed))
        return {name: None if net is None else net.requires_grad_(False).to(session.device)
                for name, net in networks.items()}

    def _augment_pipe(self, resumed: Optional[Dict[str, Any]]) -> Optional[torch.nn.Module]:
        """ADA's pipeline at its starting p: the fixed ``augment_p``, or the resumed run's adapted p."""
        opts = self.options
        if opts.get("augment_kwargs") is None:
            return None
        from .augment import AugmentPipe  # the augmentation code loads only when it is used

        pipe = AugmentPipe(**opts["augment_kwargs"]).train()
        pipe.p.fill_(float(opts.get("augment_p", 0)))
        adapting = opts.get("ada_target") is not None
        if adapting and resumed is not None and resumed.get("augment_pipe") is not None:
            pipe.p.copy_(resumed["augment_pipe"].p)
        return pipe

    def build_loss(self, session):
        if self.options.get("ada_target") is not None:
            self.ada_stats = training_stats.Collector(regex="Loss/signs/real", device=session.device)
        G = session.networks["G"]
        return _construct(self.options, "loss_kwargs", device=session.device, G_mapping=G.mapping,
                          G_synthesis=G.synthesis, D=session.networks["D"],
                          augment_pipe=session.networks["augment_pipe"])

    def restore(self, session, resumed):
        progress = resumed.get("progress") or {}
        if "pl_mean" in progress and hasattr(session.loss, "pl_mean"):
            session.loss.pl_mean.fill_(float(progress["pl_mean"]))

    # The step -----------------------------------------------------------------------------------

    def phase_inputs(self, session, phase, batch):
        """Latents and labels for this phase: one global draw, identical on every process, then sharded,
        so N processes see what one process with the same total batch sees."""
        count = self.options["batch_size"]
        z = torch.randn([count, session.G.z_dim], generator=self.latent_rng)
        ts = session.training_set
        picks = self.label_rng.randint(len(ts), size=count)
        c = torch.from_numpy(np.stack([ts.get_label(int(i)) for i in picks])) if count else torch.zeros([0, 0])
        mine = slice(session.rank, None, session.num_gpus)
        per_round = self.options["batch_gpu"]
        z_rounds = z[mine].to(session.device).split(per_round)
        c_rounds = c[mine].to(session.device).split(per_round)
        return [dict(real, gen_z=gz, gen_c=gc) for real, gz, gc in zip(batch, z_rounds, c_rounds)]

    def after_step(self, session):
        """Average the path-length mean across processes, then nudge ADA's p towards the target."""
        if hasattr(session.loss, "pl_mean"):
            distributed.average_tensors_([session.loss.pl_mean])
        opts = self.options
        if self.ada_stats is None or session.batch_idx % opts["ada_interval"] != 0:
            return
        self.ada_stats.update()
        overfit = self.ada_stats.mean("Loss/signs/real")
        if not np.isfinite(overfit):
            return
        images_since = opts["batch_size"] * opts["ada_interval"]
        step = np.sign(overfit - opts["ada_target"]) * images_since / (opts["ada_kimg"] * 1000)
        p = session.networks["augment_pipe"].p
        p.copy_((p + step).clamp(min=0))

    # Maintenance --------------------------------------------------------------------------------

    def snapshot_state(self, session):
        return {"pl_mean": float(session.loss.pl_mean)} if hasattr(session.loss, "pl_mean") else {}

    def begin(self, session, run_dir):
        ts = session.training_set
        size = image_grid.grid_shape(ts.resolution, len(ts))
        images, labels = image_grid.pick_grid_items(ts, size, random_seed=self.options["random_seed"])
        image_grid.save_image_grid(images, os.path.join(run_dir, "reals.png"), drange=(0, 255), grid_size=size)
        z = torch.randn([labels.shape[0], session.G.z_dim], generator=torch.Generator().manual_seed(123))
        self.grid = dict(size=size, z=z.to(session.device), c=torch.from_numpy(labels).to(session.device))
        self._save_fakes(session, os.path.join(run_dir, "fakes_init.png"))

    def save_images(self, session, run_dir):
        self._save_fakes(session, os.path.join(run_dir, f"fakes{session.cur_nimg // 1000:06d}.png"))

    def _save_fakes(self, session, path: str) -> None:
        grid = self.grid
        images = image_grid.generate_grid(session.G_ema, grid["z"], grid["c"], batch=self.options["batch_gpu"])
        image_grid.save_image_grid(images, path, drange=(-1, 1), grid_size=grid["size"])

    def evaluate(self, session, run_dir, snapshot_path):
        metrics: List[str] = self.options.get("metrics") or []
        if not metrics:
            return
        from ..metrics import metric_main  # metrics (and their detectors) load only when asked for

        for metric in metrics:
            result = metric_main.calc_metric(metric=metric, G=session.G_ema,
                                             dataset_kwargs=self.options["training_set_kwargs"],
                                             num_gpus=session.num_gpus, rank=session.rank, device=session.device)
            if session.rank == 0:
                metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_path)

    def tick_fields(self, session):
        pipe = session.networks.get("augment_pipe")
        return {"augment": float(pipe.p) if pipe is not None else 0.0}

    def close(self, session):
        if self.ada_stats is not None:
            self.ada_stats.close()
