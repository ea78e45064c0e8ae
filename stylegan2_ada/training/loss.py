"""StyleGAN2's losses: the non-saturating logistic GAN loss with lazy R1 and path-length penalties.

The training loop asks for one *phase* at a time and owns zeroing, cross-process averaging and the
optimiser step; ``accumulate_gradients`` only adds this phase's gradients (scaled by ``gain``).
Phases: ``Gmain`` (G tries to fool D), ``Greg`` (path-length penalty), ``Gboth`` (the two together),
``Dmain`` (D tells reals from fakes), ``Dreg`` (R1 penalty on reals), ``Dboth``.
"""

import math
from typing import Optional, Tuple

import torch
from torch.nn.functional import softplus

from ..torch_utils import training_stats

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


class Loss:
    """What the training loop calls: add one phase's gradients, scaled by ``gain``."""

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, sync: bool, gain: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement accumulate_gradients")


class NonFiniteLossError(FloatingPointError):
    """A loss turned NaN or inf: the loop stops the run instead of training on garbage."""

    def __init__(self, phase: str):
        super().__init__(phase)
        self.phase = phase


def _backward_checked(loss: torch.Tensor, gain: float, phase: str) -> None:
    """Back-propagate ``gain * mean(loss)`` after making sure no sample's loss is NaN or inf."""
    if not bool(torch.isfinite(loss).all()):
        raise NonFiniteLossError(phase)
    loss.mean().mul(gain).backward()


class StyleGAN2Loss(Loss):
    """The StyleGAN2 objective as a set of phases.

    G minimises softplus(-D(G(z))); D minimises softplus(D(G(z))) + softplus(-D(x)). Two
    regularisers run lazily (every few steps, scaled up by the loop): R1, gamma/2 * |dD(x)/dx|^2
    on reals, keeps D smooth where the data is; the path-length penalty asks a fixed step in W to
    move the image by a fixed amount, which makes G smoother and easier to invert. Style mixing
    (two latents, switched at a random layer) stops neighbouring layers from relying on each other.
    Every image D sees passes through ``augment_pipe`` (ADA) when one is given.
    """

    def __init__(
        self,
        device: torch.device,  # Device of the running path-length mean.
        G_mapping: torch.nn.Module,  # Generator half that turns (z, c) into per-layer ws.
        G_synthesis: torch.nn.Module,  # Generator half that turns ws into images.
        D: torch.nn.Module,  # Discriminator: (image, c) -> one logit per image.
        augment_pipe: Optional[torch.nn.Module] = None,  # ADA pipeline applied before D; None leaves images as they are.
        style_mixing_prob: float = 0.9,  # Chance that a generated batch mixes two latents.
        r1_gamma: float = 10,  # Weight gamma of R1 = gamma / 2 * squared gradient norm on reals.
        pl_batch_shrink: int = 2,  # The path-length term uses batch / this many samples.
        pl_decay: float = 0.01,  # Speed of the running mean of path lengths.
        pl_weight: float = 2,  # Weight of the path-length penalty; 0 turns it off.
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
        self.pl_mean = torch.zeros([], device=device)  # running mean path length, saved in snapshots

    def run_G(self, z: torch.Tensor, c: torch.Tensor, sync: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """Generated images and the ws behind them; with probability ``style_mixing_prob`` the layers
        from a random cut-off onwards take their w from a second latent."""
        ws = self.G_mapping(z, c)
        layers = ws.shape[1]
        if self.style_mixing_prob > 0 and layers > 1:
            with torch.autograd.profiler.record_function("style_mixing"):
                cut = int(torch.randint(1, layers, []))
                mixing = float(torch.rand([])) < self.style_mixing_prob
                if mixing:
                    other = self.G_mapping(torch.randn_like(z), c, skip_w_avg_update=True)
                    ws = torch.cat([ws.narrow(1, 0, cut), other.narrow(1, cut, layers - cut)], dim=1)
        return self.G_synthesis(ws), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, sync: bool = True) -> torch.Tensor:
        """D's logits for ``img``, seen through the augmentation pipeline when there is one."""
        seen = img if self.augment_pipe is None else self.augment_pipe(img)
        return self.D(seen, c)

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, sync: bool, gain: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase '{phase}' (expected one of {', '.join(PHASES)})")
        network, part = phase[0], phase[1:]
        adversarial = part in ("main", "both")
        regularise = part in ("reg", "both")
        if network == "G":
            if adversarial:
                self._generator_fools_discriminator(gen_z, gen_c, gain, phase)
            if regularise and self.pl_weight != 0:
                self._path_length_penalty(gen_z, gen_c, gain, phase)
            return
        penalise = regularise and self.r1_gamma != 0
        fake_loss = self._discriminator_rejects_fakes(gen_z, gen_c, gain, phase) if adversarial else None
        if adversarial or penalise:
            self._discriminator_on_reals(real_img, real_c, fake_loss, adversarial, penalise, gain, phase)

    def _generator_fools_discriminator(self, z: torch.Tensor, c: torch.Tensor, gain: float, phase: str) -> None:
        images, _ = self.run_G(z, c)
        logits = self.run_D(images, c)
        training_stats.report("Loss/scores/fake", logits)
        training_stats.report("Loss/signs/fake", logits.sign())
        loss = softplus(-logits)
        training_stats.report("Loss/G/loss", loss)
        _backward_checked(loss, gain, phase)

    def _path_length_penalty(self, z: torch.Tensor, c: torch.Tensor, gain: float, phase: str) -> None:
        """(|J_w^T y| - a)^2 for image-space noise y scaled to unit pixel variance; ``a`` is the running mean."""
        count = max(z.shape[0] // self.pl_batch_shrink, 1)
        images, ws = self.run_G(z[:count], c[:count])
        height, width = images.shape[-2:]
        probe = torch.randn_like(images).div(math.sqrt(height * width))
        (jacobian_probe,) = torch.autograd.grad((images * probe).sum(), ws, create_graph=True)
        lengths = jacobian_probe.pow(2).sum(dim=-1).mean(dim=-1).sqrt()
        running = torch.lerp(self.pl_mean, lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(running.detach())
        penalty = (lengths - running).pow(2)
        training_stats.report("Loss/pl_penalty", penalty)
        weighted = penalty * self.pl_weight
        training_stats.report("Loss/G/reg", weighted)
        # A zero-weighted pixel keeps every G parameter in the graph, so each one gets a gradient.
        _backward_checked(weighted + images[:, 0, 0, 0].mul(0), gain, phase)

    def _discriminator_rejects_fakes(self, z: torch.Tensor, c: torch.Tensor, gain: float, phase: str) -> torch.Tensor:
        with torch.no_grad():
            images, _ = self.run_G(z, c, sync=False)
        logits = self.run_D(images, c)
        training_stats.report("Loss/scores/fake", logits)
        training_stats.report("Loss/signs/fake", logits.sign())
        loss = softplus(logits)
        _backward_checked(loss, gain, phase)
        return loss.detach()

    def _discriminator_on_reals(self, images: torch.Tensor, c: torch.Tensor, fake_loss: Optional[torch.Tensor],
                                adversarial: bool, penalise: bool, gain: float, phase: str) -> None:
        """D's loss on reals and/or R1, from one forward pass over the real batch."""
        images = images.detach().requires_grad_(penalise)
        logits = self.run_D(images, c)
        training_stats.report("Loss/scores/real", logits)
        training_stats.report("Loss/signs/real", logits.sign())
        total = logits.mul(0)  # keeps every D parameter in the graph whichever terms are on
        if adversarial:
            real_loss = softplus(-logits)
            training_stats.report("Loss/D/loss", fake_loss + real_loss)
            total = total + real_loss
        if penalise:
            (slope,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
            r1 = slope.pow(2).sum(dim=[1, 2, 3])
            training_stats.report("Loss/r1_penalty", r1)
            weighted = r1 * (self.r1_gamma / 2)
            training_stats.report("Loss/D/reg", weighted)
            total = total + weighted
        which = {(True, True): "Dreal_Dr1", (True, False): "Dreal", (False, True): "Dr1"}[(adversarial, penalise)]
        _backward_checked(total, gain, f"{phase} ({which})")
