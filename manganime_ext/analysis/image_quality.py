"""Full-reference image quality per image: MSE on the 0-255 scale, PSNR and SSIM.

Next-frame prediction and projection are both judged by how close an image is to the true one.
These functions take float tensors ``[N, C, H, W]`` on the 0-255 scale (any device) and return one
value per image, so callers can average, split (e.g. pairs across a cut) or plot them as they like.
"""

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F

PSNR_CAP_DB = 60.0  # identical images (an MSE of 0) score this instead of infinity


def mse_255(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, both on the 0-255 scale: [N]."""
    return (pred.double() - target.double()).square().flatten(1).mean(dim=1)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for 8-bit images, capped at :data:`PSNR_CAP_DB` (identical images would give infinity)."""
    floor = 255.0**2 / 10 ** (PSNR_CAP_DB / 10)
    return 10 * torch.log10(255.0**2 / mse.double().clamp(min=floor))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR per image in dB (see :func:`psnr_from_mse`): [N]."""
    return psnr_from_mse(mse_255(pred, target))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-offsets.square() / (2 * sigma**2))
    return taps / taps.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004): [N], 1 for identical images.

    Gaussian-weighted local statistics (11 taps, sigma 1.5, 'valid' positions only), constants
    (0.01 * 255)^2 and (0.03 * 255)^2, averaged over positions and channels. Images smaller than the
    window use a window of their own size, so 16-px test images still get a score.
    """
    x, y = pred.double(), target.double()
    channels, height, width = x.shape[1:]
    size = min(window, height, width)
    taps = _gaussian_window(size, sigma).to(x.device)

    def blur(img: torch.Tensor) -> torch.Tensor:  # separable Gaussian, one channel at a time
        rows = F.conv2d(img, taps.view(1, 1, 1, -1).expand(channels, 1, 1, size), groups=channels)
        return F.conv2d(rows, taps.view(1, 1, -1, 1).expand(channels, 1, size, 1), groups=channels)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return score.flatten(1).mean(dim=1)


def psnr_of_mean_mse(mse: torch.Tensor) -> float:
    """PSNR of the average MSE over a set of images (the set's PSNR, not the mean of per-image PSNRs)."""
    mean = float(mse.double().mean())
    return PSNR_CAP_DB if mean <= 0 else min(PSNR_CAP_DB, 10 * math.log10(255.0**2 / mean))


def load_lpips(device: torch.device, detector_dir: Optional[str] = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """VGG16-LPIPS from the official ``vgg16.pt`` (found like the metrics' detectors: ``detector_dir``,
    ``$MANGANIME_METRIC_NETWORKS``, the cache, then a download): a function (pred, target) on the
    0-255 scale -> distance per image [N]. Raises ``stylegan2_ada.metrics.MetricError`` (one line)
    when the weights cannot be found."""
    from stylegan2_ada.metrics.detectors import VGG16_URL, get_feature_detector

    vgg16 = get_feature_detector(VGG16_URL, device=device, detector_dir=detector_dir,
                                 required_args=("resize_images", "return_lpips"))

    def distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        both = vgg16(torch.cat([pred, target]).float(), resize_images=False, return_lpips=True)
        a, b = both.chunk(2)
        return (a - b).square().sum(dim=1)

    return distance
