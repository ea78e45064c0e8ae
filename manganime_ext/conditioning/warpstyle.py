"""``warpstyle``: our next-frame predictor. Warp what moved, let the pretrained StyleGAN2 paint the rest.

Why this shape. Between two frames of cel animation almost every pixel is the previous frame's,
moved by a little: the camera pans, a character walks or swings a limb. The paper squeezes F_n into
512 pooled numbers and asks the generator to redraw everything, which it cannot (it got noise). We
give each part of the problem to the part that can solve it:

* a small U-Net reads F_n, the motion F_n - F_{n-1} (``context_frames=2``; the velocity is what a single
  frame cannot tell) and the manga page window (a global code, via FiLM at the bottleneck); it works
  at half resolution (``encoder_scale=2``: a strided stem first), which halves the predictor's cost;
* it predicts a per-pixel **flow** (upsampled to full size: motion fields are smooth) and warps F_n
  with it (bilinear, sub-pixel), so full-resolution detail comes from F_n itself;
* it also drives the **pretrained synthesis network** — W+ = w_avg + a learned offset, and its own
  features injected into every synthesis block up to the encoder's resolution as spatial feature
  transforms (SFT, as GFP-GAN does with a StyleGAN2 decoder: x <- x * (1 + gamma) + beta after each
  block's convolutions) — so the
  generator's prior paints disoccluded background and new poses, at the frame's layout;
* a per-pixel **mask** blends the two: F_{n+1} = m * warp(F_n) + (1 - m) * synthesis.

Flow and every injection start at zero and the mask near 1, so training starts from copy-last-frame
(the strongest simple baseline) and can only move away from it where that lowers the loss.
"""

import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from stylegan2_ada.torch_utils.ops import upfirdn2d
from stylegan2_ada.training.networks import SynthesisNetwork

from .predictor import NextFramePredictor, PredictorError, register_predictor

MASK_INIT_LOGIT = 4.0  # sigmoid(4) = 0.982: start close to copy-last-frame


def _conv(in_channels: int, out_channels: int) -> torch.nn.Conv2d:
    return torch.nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


def _zero_conv(in_channels: int, out_channels: int) -> torch.nn.Conv2d:
    """A conv whose output starts at exactly zero (injections and heads start switched off)."""
    conv = _conv(in_channels, out_channels)
    torch.nn.init.zeros_(conv.weight)
    torch.nn.init.zeros_(conv.bias)
    return conv


class _DoubleConv(torch.nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.first = _conv(in_channels, out_channels)
        self.second = _conv(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.second(F.leaky_relu(self.first(x), 0.2)), 0.2)


def _widths(resolutions: Sequence[int], channels: int, channels_max: int) -> Dict[int, int]:
    """Feature maps per level: ``channels`` at full resolution, doubling every two levels down, capped."""
    return {res: min(channels_max, int(channels * 2 ** (i / 2))) for i, res in enumerate(resolutions)}


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` [N, C, H, W] by ``flow`` [N, 2, H, W] in pixels (x, y): out(p) = image(p + flow(p))."""
    _, _, height, width = image.shape
    ys = torch.linspace(-1, 1, height, device=image.device, dtype=image.dtype)
    xs = torch.linspace(-1, 1, width, device=image.device, dtype=image.dtype)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [H, W, 2] as (x, y)
    scale = flow.new_tensor([2 / max(width - 1, 1), 2 / max(height - 1, 1)]).view(1, 2, 1, 1)
    grid = base.unsqueeze(0) + (flow * scale).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


@register_predictor("warpstyle")
class WarpStylePredictor(NextFramePredictor):
    """Flow warp of F_n blended with the pretrained synthesis network, driven by a U-Net (see module doc)."""

    def __init__(
        self,
        generator_kwargs: dict,  # constructor arguments of the unconditional Generator whose synthesis it reuses
        context_frames: int = 2,  # 2 = F_{n-1} and F_n (motion); 1 = F_n only, as in the paper
        page_window: int = 1,  # manga pages fed to the page encoder: 1 = p, 3 = p-1, p, p+1
        channels: int = 32,  # U-Net feature maps at full resolution (more at coarser levels)
        channels_max: int = 128,  # cap on the U-Net's feature maps
        page_features: int = 64,  # length of the global page code
        max_flow: float = 8.0,  # largest displacement the flow can express, in pixels
        encoder_scale: int = 2,  # the U-Net works at resolution / this (1 or 2); flow and mask are upsampled
    ):
        super().__init__()
        if context_frames not in (1, 2) or page_window not in (1, 3) or encoder_scale not in (1, 2):
            raise PredictorError("warpstyle takes context_frames 1 or 2, page_window 1 or 3, encoder_scale 1 or 2")
        self.context_frames = context_frames
        self.page_window = page_window
        self.max_flow = max_flow
        self.encoder_scale = encoder_scale
        synthesis_kwargs = dict(generator_kwargs.get("synthesis_kwargs") or {})
        self.synthesis = SynthesisNetwork(w_dim=generator_kwargs["w_dim"], img_resolution=generator_kwargs["img_resolution"],
                                          img_channels=generator_kwargs["img_channels"], **synthesis_kwargs)
        self.img_resolution = self.synthesis.img_resolution
        self.register_buffer("w_avg", torch.zeros(self.synthesis.w_dim))

        top = self.img_resolution // encoder_scale
        levels = [res for res in self.synthesis.block_resolutions[::-1] if res <= top]  # finest first, 4x4 last
        self.levels = levels
        width = _widths(levels, channels, channels_max)
        in_channels = 3 * context_frames
        self.stem = None if encoder_scale == 1 else torch.nn.Conv2d(in_channels, width[top], 4, stride=2, padding=1)
        in_channels = in_channels if encoder_scale == 1 else width[top]
        self.down = torch.nn.ModuleList()
        for res in levels:
            self.down.append(_DoubleConv(in_channels, width[res]))
            in_channels = width[res]
        self.page_encoder = torch.nn.Sequential(
            torch.nn.Conv2d(page_window, 16, 4, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(16, 32, 4, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(32, page_features, 4, stride=2, padding=1), torch.nn.LeakyReLU(0.2))
        bottom = width[levels[-1]]
        self.page_film = torch.nn.Linear(page_features, 2 * bottom)
        torch.nn.init.zeros_(self.page_film.weight)
        torch.nn.init.zeros_(self.page_film.bias)
        self.up = torch.nn.ModuleList(
            _DoubleConv(width[coarse] + width[fine], width[fine]) for coarse, fine in zip(levels[::-1], levels[-2::-1]))
        self.to_ws = torch.nn.Linear(bottom + page_features, self.synthesis.num_ws * self.synthesis.w_dim)
        torch.nn.init.zeros_(self.to_ws.weight)
        torch.nn.init.zeros_(self.to_ws.bias)
        self.sft = torch.nn.ModuleDict()
        for res in levels:  # blocks finer than the encoder run without injection
            block_channels = getattr(self.synthesis, f"b{res}").conv1.out_channels
            self.sft[str(res)] = torch.nn.Sequential(_conv(width[res], width[res]), torch.nn.LeakyReLU(0.2),
                                                     _zero_conv(width[res], 2 * block_channels))
        self.heads = _zero_conv(width[levels[0]], 3)  # flow x, flow y, mask logit

    # Encoder --------------------------------------------------------------------------------------

    def _encode(self, frames: torch.Tensor, pages: torch.Tensor) -> Dict[int, torch.Tensor]:
        """U-Net features at every level, full resolution to 4x4 and back; the page code modulates the bottom."""
        current = frames[:, -1]
        motion = [current - frames[:, -2]] if self.context_frames == 2 else []
        x = torch.cat([current] + motion, dim=1)
        if self.stem is not None:
            x = F.leaky_relu(self.stem(x), 0.2)
        skips: List[torch.Tensor] = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        page_code = self.page_encoder(pages.flatten(1, 2)).mean(dim=[2, 3])
        gamma, beta = self.page_film(page_code).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        x = x * (1 + gamma) + beta
        features = {self.levels[-1]: x}
        for block, skip, res in zip(self.up, skips[-2::-1], self.levels[-2::-1]):
            x = block(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip], dim=1))
            features[res] = x
        features[0] = torch.cat([skips[-1].mean(dim=[2, 3]), page_code], dim=1)  # global code for W+
        return features

    # Decoder: the pretrained synthesis with SFT --------------------------------------------------

    def _synthesise(self, features: Dict[int, torch.Tensor]) -> torch.Tensor:
        synthesis = self.synthesis
        batch = features[0].shape[0]
        offsets = self.to_ws(features[0]).view(batch, synthesis.num_ws, synthesis.w_dim)
        ws = self.w_avg + offsets
        x: Optional[torch.Tensor] = None
        img: Optional[torch.Tensor] = None
        first = 0
        for res in synthesis.block_resolutions:
            block = getattr(synthesis, f"b{res}")
            block_ws = ws[:, first:first + block.num_conv + block.num_torgb].unbind(dim=1)
            first += block.num_conv
            sft = self.sft[str(res)](features[res]) if str(res) in self.sft else None
            x, img = _block_with_sft(block, x, img, block_ws, sft)
        return img

    # Forward -------------------------------------------------------------------------------------

    def predict(self, frames: torch.Tensor, pages: torch.Tensor) -> torch.Tensor:
        features = self._encode(frames, pages)
        heads = self.heads(features[self.levels[0]])
        if self.encoder_scale != 1:
            heads = F.interpolate(heads, scale_factor=float(self.encoder_scale), mode="bilinear", align_corners=False)
            heads = torch.cat([heads[:, :2] * self.encoder_scale, heads[:, 2:]], dim=1)  # flow in full-size pixels
        flow = self.max_flow * torch.tanh(heads[:, :2] / self.max_flow)
        mask = torch.sigmoid(heads[:, 2:3] + MASK_INIT_LOGIT)
        warped = warp(frames[:, -1], flow)
        painted = self._synthesise(features)
        return mask * warped + (1 - mask) * painted

    def init_from_generator(self, G: torch.nn.Module) -> None:
        self.synthesis.load_state_dict(G.synthesis.state_dict())
        self.w_avg.copy_(G.mapping.w_avg)

    def parameter_groups(self) -> Dict[str, List[torch.nn.Parameter]]:
        synthesis = {id(p) for p in self.synthesis.parameters()}
        return {"encoder": [p for p in self.parameters() if id(p) not in synthesis],
                "synthesis": list(self.synthesis.parameters())}


def _block_with_sft(block: torch.nn.Module, x: Optional[torch.Tensor], img: Optional[torch.Tensor],
                    ws: Sequence[torch.Tensor], sft: Optional[torch.Tensor]):
    """One SynthesisBlock in float32 with the injection between its convolutions and its ToRGB.

    The block's own layers do the work (same weights, same maths as ``SynthesisBlock.forward``);
    only the modulation ``x * (1 + gamma) + beta`` is new, placed before ToRGB so that each block's
    image contribution sees the encoder's features (``sft`` None: the block runs as trained).
    """
    opts = dict(noise_mode="const", fused_modconv=False)
    if x is None:
        x = block.conv1(block.const.float().unsqueeze(0).expand(ws[0].shape[0], -1, -1, -1), ws[0], **opts)
    elif block.architecture == "resnet":
        h = block.conv1(block.conv0(x, ws[0], **opts), ws[1], gain=math.sqrt(0.5), **opts)
        x = block.skip(x, gain=math.sqrt(0.5)) + h
    else:
        x = block.conv1(block.conv0(x, ws[0], **opts), ws[1], **opts)
    if sft is not None:
        gamma, beta = sft.chunk(2, dim=1)
        x = x * (1 + gamma) + beta
    if img is not None:
        img = upfirdn2d.upsample2d(img, block.resample_filter)
    if block.num_torgb:
        rgb = block.torgb(x, ws[block.num_conv], fused_modconv=False).float()
        img = rgb if img is None else img + rgb
    return x, img
