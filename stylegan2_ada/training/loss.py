"""StyleGAN2 losses: non-saturating logistic loss, lazy R1 and path-length regularisation.

``accumulate_gradients`` runs one *phase* and calls ``backward`` on its loss;
the training loop owns zeroing, averaging across processes and the optimiser step.
Phases: ``Gmain`` (G fools D), ``Greg`` (path length), ``Gboth`` (both at once),
``Dmain`` (D separates real from fake), ``Dreg`` (R1), ``Dboth``.
"""

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..torch_utils import training_stats

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


class Loss:
    """Interface the training loop drives."""

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, sync: bool, gain: float) -> None:
        raise NotImplementedError


class StyleGAN2Loss(Loss):
    def __init__(
        self,
        device: torch.device,  # Where the penalty statistics live.
        G_mapping: torch.nn.Module,  # z, c -> ws.
        G_synthesis: torch.nn.Module,  # ws -> image.
        D: torch.nn.Module,  # image, c -> logits.
        augment_pipe: Optional[torch.nn.Module] = None,  # Applied to every image D sees (ADA), None = no augmentation.
        style_mixing_prob: float = 0.9,  # Probability of mixing two latents at a random layer (style mixing regularisation).
        r1_gamma: float = 10,  # R1 weight gamma; the penalty is gamma / 2 * |grad D(real)|^2.
        pl_batch_shrink: int = 2,  # Path length is measured on batch // pl_batch_shrink samples.
        pl_decay: float = 0.01,  # Decay of the running mean path length.
        pl_weight: float = 2,  # Weight of the path length penalty, 0 = disable.
    ):
        super().__init__()
        self.device = device
        self.G_mapping = G_mapping
        self.G_synthesis = G_synthesis
        self.D = D
        self.augment_pipe = augment_pipe
        self.style_mixing_prob = style_mixing_prob
        self.r1_gamma = r1_gamma
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_weight = pl_weight
        self.pl_mean = torch.zeros([], device=device)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, sync: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """Images and the ws that made them, with style mixing from the second latent onwards."""
        ws = self.G_mapping(z, c)
        if self.style_mixing_prob > 0 and ws.shape[1] > 1:
            with torch.autograd.profiler.record_function("style_mixing"):
                cutoff = int(torch.randint(1, ws.shape[1], []))
                if float(torch.rand([])) >= self.style_mixing_prob:
                    cutoff = ws.shape[1]
                if cutoff < ws.shape[1]:
                    mixed = self.G_mapping(torch.randn_like(z), c, skip_w_avg_update=True)
                    ws = torch.cat([ws[:, :cutoff], mixed[:, cutoff:]], dim=1)
        return self.G_synthesis(ws), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, sync: bool = True) -> torch.Tensor:
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, sync: bool, gain: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase '{phase}'")
        do_Gmain = phase in ("Gmain", "Gboth")
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Gpl = phase in ("Greg", "Gboth") and self.pl_weight != 0
        do_Dr1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0

        if do_Gmain:
            # Non-saturating loss: G maximises log sigmoid(D(G(z))).
            gen_img, _ = self.run_G(gen_z, gen_c)
            gen_logits = self.run_D(gen_img, gen_c)
            training_stats.report("Loss/scores/fake", gen_logits)
            training_stats.report("Loss/signs/fake", gen_logits.sign())
            loss_Gmain = F.softplus(-gen_logits)
            training_stats.report("Loss/G/loss", loss_Gmain)
            _check_finite(loss_Gmain, phase)
            loss_Gmain.mean().mul(gain).backward()

        if do_Gpl:
            # Path length: |J^T y| for random image-space y should be constant across w.
            batch_size = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
            gen_img, gen_ws = self.run_G(gen_z[:batch_size], gen_c[:batch_size])
            pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
            (pl_grads,) = torch.autograd.grad((gen_img * pl_noise).sum(), gen_ws, create_graph=True)
            pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
            pl_mean = self.pl_mean.lerp(pl_lengths.mean(), self.pl_decay)
            self.pl_mean.copy_(pl_mean.detach())
            pl_penalty = (pl_lengths - pl_mean).square()
            training_stats.report("Loss/pl_penalty", pl_penalty)
            loss_Gpl = pl_penalty * self.pl_weight
            training_stats.report("Loss/G/reg", loss_Gpl)
            _check_finite(loss_Gpl, phase)
            # The zero-weighted image term keeps every G parameter in the graph (uniform DDP buckets).
            (gen_img[:, 0, 0, 0] * 0 + loss_Gpl).mean().mul(gain).backward()

        if do_Dmain:
            # D minimises softplus(D(fake)) + softplus(-D(real)); G gets no gradient here.
            with torch.no_grad():
                gen_img, _ = self.run_G(gen_z, gen_c, sync=False)
            gen_logits = self.run_D(gen_img, gen_c)
            training_stats.report("Loss/scores/fake", gen_logits)
            training_stats.report("Loss/signs/fake", gen_logits.sign())
            loss_Dgen = F.softplus(gen_logits)
            _check_finite(loss_Dgen, phase)
            loss_Dgen.mean().mul(gain).backward()

        if do_Dmain or do_Dr1:
            name = "Dreal_Dr1" if do_Dmain and do_Dr1 else "Dreal" if do_Dmain else "Dr1"
            real_img_tmp = real_img.detach().requires_grad_(do_Dr1)
            real_logits = self.run_D(real_img_tmp, real_c)
            training_stats.report("Loss/scores/real", real_logits)
            training_stats.report("Loss/signs/real", real_logits.sign())

            loss_Dreal = 0
            if do_Dmain:
                loss_Dreal = F.softplus(-real_logits)
                training_stats.report("Loss/D/loss", loss_Dgen + loss_Dreal)

            loss_Dr1 = 0
            if do_Dr1:
                (r1_grads,) = torch.autograd.grad(real_logits.sum(), real_img_tmp, create_graph=True)
                r1_penalty = r1_grads.square().sum([1, 2, 3])
                loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
                training_stats.report("Loss/r1_penalty", r1_penalty)
                training_stats.report("Loss/D/reg", loss_Dr1)

            total = real_logits * 0 + loss_Dreal + loss_Dr1
            _check_finite(total, f"{phase} ({name})")
            total.mean().mul(gain).backward()


class NonFiniteLossError(FloatingPointError):
    """Raised when a loss turns NaN/inf, so a run never silently trains on garbage."""

    def __init__(self, phase: str):
        super().__init__(phase)
        self.phase = phase


def _check_finite(loss: torch.Tensor, phase: str) -> None:
    if not bool(torch.isfinite(loss).all()):
        raise NonFiniteLossError(phase)
