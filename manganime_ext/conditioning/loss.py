"""The next-frame objective: pixel MSE (the study's), plus optional perceptual and adversarial terms.

Phases for the shared loop: ``Gboth`` trains the predictor; with an adversarial weight, ``Dmain`` and
``Dreg`` train the unconditional snapshot's discriminator to tell true next frames from predicted
ones (non-saturating loss, lazy R1), as StyleGAN2 trains it on images.
"""

from typing import Callable, Optional

import torch
from torch.nn.functional import softplus

from stylegan2_ada.torch_utils import training_stats
from stylegan2_ada.training.loss import NonFiniteLossError

from .data import to_255


def _backward(loss: torch.Tensor, gain: float, phase: str) -> None:
    if not bool(torch.isfinite(loss).all()):
        raise NonFiniteLossError(phase)
    loss.mean().mul(gain).backward()


class NextFrameLoss:
    """weights.mse * MSE(0-255) + weights.lpips * LPIPS + weights.adv * softplus(-D(prediction))."""

    def __init__(
        self,
        G: torch.nn.Module,  # the predictor being trained
        D: Optional[torch.nn.Module] = None,  # the snapshot's discriminator (adversarial term only)
        mse_weight: float = 1.0,  # weight of the pixel MSE on the 0-255 scale (the study's loss)
        lpips_weight: float = 0.0,  # weight of VGG16-LPIPS (needs the vgg16.pt weights)
        adv_weight: float = 0.0,  # weight of the non-saturating adversarial loss (needs D)
        r1_gamma: float = 1.0,  # R1 weight for D's lazy regularisation
        lpips: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,  # (pred, target) on 0-255 -> [N]
    ):
        self.G, self.D = G, D
        self.mse_weight, self.lpips_weight, self.adv_weight, self.r1_gamma = mse_weight, lpips_weight, adv_weight, r1_gamma
        self.lpips = lpips

    def accumulate_gradients(self, phase: str, frames: torch.Tensor, pages: torch.Tensor, target: torch.Tensor,
                             sync: bool, gain: float) -> None:
        if phase == "Gboth":
            self._predictor(frames, pages, target, gain, phase)
        elif phase == "Dmain":
            self._discriminator(frames, pages, target, gain, phase)
        elif phase == "Dreg":
            self._r1(target, gain, phase)
        else:
            raise ValueError(f"unknown phase '{phase}' for next-frame training")

    def _predictor(self, frames, pages, target, gain, phase) -> None:
        prediction = self.G(frames, pages)
        squared = ((prediction - target) * 127.5).square().flatten(1).mean(dim=1)
        training_stats.report("Loss/mse", squared)
        loss = self.mse_weight * squared
        if self.lpips_weight:
            distance = self.lpips(to_255(prediction), to_255(target))
            training_stats.report("Loss/lpips", distance)
            loss = loss + self.lpips_weight * distance
        if self.adv_weight:
            logits = self.D(prediction, None).flatten()
            training_stats.report("Loss/G/adv", softplus(-logits))
            loss = loss + self.adv_weight * softplus(-logits)
        training_stats.report("Loss/G/loss", loss)
        _backward(loss, gain, phase)

    def _discriminator(self, frames, pages, target, gain, phase) -> None:
        with torch.no_grad():
            prediction = self.G(frames, pages)
        fake, real = self.D(prediction, None).flatten(), self.D(target, None).flatten()
        training_stats.report("Loss/scores/fake", fake)
        training_stats.report("Loss/scores/real", real)
        loss = softplus(fake) + softplus(-real)
        training_stats.report("Loss/D/loss", loss)
        _backward(loss, gain, phase)

    def _r1(self, target, gain, phase) -> None:
        images = target.detach().requires_grad_(True)
        logits = self.D(images, None)
        (slope,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
        penalty = slope.square().sum(dim=[1, 2, 3]) * (self.r1_gamma / 2)
        training_stats.report("Loss/D/reg", penalty)
        _backward(penalty + logits.flatten() * 0, gain, phase)
