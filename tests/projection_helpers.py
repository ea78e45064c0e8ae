"""Tiny networks and stand-ins shared by the projection tests."""

import math

import torch

from stylegan2_ada import projector
from stylegan2_ada.training.networks import Generator

TINY = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
            synthesis_kwargs={"channel_base": 256, "channel_max": 32})


class TinyLPIPS(torch.nn.Module):
    """Stand-in for vgg16.pt with its call signature: fixed random 3x3 features, unit-normalised per position."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", torch.randn([8, 3, 3, 3], generator=torch.Generator().manual_seed(1)))

    def forward(self, x: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        features = torch.nn.functional.conv2d(x / 127.5 - 1, self.kernel, padding=1)
        features = features / (features.square().sum(dim=1, keepdim=True) + 1e-8).sqrt()
        return features.flatten(1) / math.sqrt(x.shape[2] * x.shape[3])


def save_tiny_lpips(folder) -> str:
    """Write the stand-in as ``folder/vgg16.pt`` (TorchScript, like the official file); return the folder."""
    torch.jit.save(torch.jit.script(TinyLPIPS()), str(folder / "vgg16.pt"))
    return str(folder)


class PixelMSE(projector.ImageDistance):
    """A smooth distance (mean squared error on [0, 1]) for checks that follow trajectories closely."""

    name = "pixel mse"

    def prepare(self, targets):
        return targets.float()

    def distance(self, images, prepared):
        return ((images - prepared) / 255).square().flatten(1).mean(dim=1)


def tiny_generator(seed: int = 0, noise_strength: float = 0.0, tame: bool = True, **overrides) -> Generator:
    """A random tiny G. ``tame``: its ToRGB layers scaled down so that images stay within [-1, 1] as a trained
    network's do (a random one overshoots several times); ``noise_strength`` makes the noise maps count."""
    torch.manual_seed(seed)
    G = Generator(**dict(TINY, **overrides)).eval()
    with torch.no_grad():
        if tame:
            for name, param in G.synthesis.named_parameters():
                if "torgb.weight" in name:
                    param.mul_(0.25)
        for layer in projector.noise_layers(G.synthesis):
            layer.noise_strength.fill_(noise_strength)
    return G
