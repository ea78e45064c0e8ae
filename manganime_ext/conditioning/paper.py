"""The study's conditioning, exactly as the paper describes it: the inputs *replace* the latent z.

F_n and its manga page are converted to greyscale (BT.601 luma), average-pooled to 16x16 each
(window = resolution / 16), concatenated to x in [0, 1]^512 and mapped to z = 2x - 1, which goes
through the pretrained generator (mapping and synthesis). With ``page_window=3`` (what the authors'
published code fed) the pages p-1, p, p+1 are laid side by side and the spread is pooled to the same
16x16, so z stays 512 numbers. The study trained this with a pixel MSE and got noise; we reproduce it
as a baseline, whatever it gives.
"""

from typing import Dict, List

import torch
import torch.nn.functional as F

from stylegan2_ada.training.networks import Generator

from .predictor import NextFramePredictor, PredictorError, register_predictor

POOLED_SIDE = 16  # the paper's 16x16 = 256 numbers per image
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def luma01(images: torch.Tensor) -> torch.Tensor:
    """[N, 3 or 1, H, W] in [-1, 1] -> [N, 1, H, W] greyscale in [0, 1]."""
    unit = (images + 1) / 2
    if unit.shape[1] == 1:
        return unit
    weights = unit.new_tensor(LUMA).view(1, 3, 1, 1)
    return (unit * weights).sum(dim=1, keepdim=True)


def pooled(grey: torch.Tensor) -> torch.Tensor:
    """Average-pool a greyscale image (or a side-by-side spread) to 16 rows x 16 columns, flattened: [N, 256]."""
    height, width = grey.shape[-2:]
    if height % POOLED_SIDE or width % POOLED_SIDE:
        raise PredictorError(f"paper conditioning needs sides divisible by {POOLED_SIDE}, got {height}x{width}")
    window = (height // POOLED_SIDE, width // POOLED_SIDE)
    return F.avg_pool2d(grey, kernel_size=window, stride=window).flatten(1)


def paper_latent(frame: torch.Tensor, pages: torch.Tensor) -> torch.Tensor:
    """z = 2 [pool(grey(F_n)), pool(grey(pages side by side))] - 1: [N, 512]."""
    spread = torch.cat(list(pages.unbind(dim=1)), dim=-1)  # [N, 1, S, P*S]
    x = torch.cat([pooled(luma01(frame)), pooled(luma01(spread))], dim=1)
    return 2 * x - 1


@register_predictor("paper")
class PaperPredictor(NextFramePredictor):
    """The whole pretrained G driven by the paper's 512 pooled pixels instead of a random z."""

    context_frames = 1

    def __init__(
        self,
        generator_kwargs: dict,  # constructor arguments of the unconditional Generator it starts from
        page_window: int = 1,  # 1 = the page of F_n (the paper); 3 = pages p-1, p, p+1 (the authors' code)
    ):
        super().__init__()
        if generator_kwargs.get("z_dim") != 2 * POOLED_SIDE**2:
            raise PredictorError(f"--cond paper needs a generator with z_dim = 512, this one has "
                                 f"z_dim = {generator_kwargs.get('z_dim')}")
        if page_window not in (1, 3):
            raise PredictorError(f"--page-window must be 1 or 3, got {page_window}")
        self.page_window = page_window
        self.G = Generator(**generator_kwargs)
        self.img_resolution = self.G.img_resolution

    def predict(self, frames: torch.Tensor, pages: torch.Tensor) -> torch.Tensor:
        z = paper_latent(frames[:, -1], pages)
        c = z.new_zeros([z.shape[0], self.G.c_dim])
        ws = self.G.mapping(z, c, skip_w_avg_update=True)
        return self.G.synthesis(ws, noise_mode="const", force_fp32=True)

    def init_from_generator(self, G: torch.nn.Module) -> None:
        self.G.load_state_dict(G.state_dict())

    def parameter_groups(self) -> Dict[str, List[torch.nn.Parameter]]:
        """The mapping network is where the paper's conditioning enters: it is the 'encoder' here."""
        return {"encoder": list(self.G.mapping.parameters()), "synthesis": list(self.G.synthesis.parameters())}
