"""The FID Inception-v3 as a plain PyTorch module, for pytorch-fid's ``pt_inception-2015-12-05-*.pth``.

The published FID/KID/IS numbers use the Inception-v3 graph TensorFlow released on 2015-12-05.
Besides the official TorchScript file (``inception-2015-12-05.pt``) those weights are also
distributed by pytorch-fid (https://github.com/mseitzer/pytorch-fid, Apache-2.0) as a
state dict, ``pt_inception-2015-12-05-6726825d.pth``.  This module rebuilds that graph so
the state dict loads into it: the architecture and the parameter names follow pytorch-fid's
``fid_inception_v3`` (torchvision's Inception-v3 layout with 1008 classes, no auxiliary
head, and the TF graph's quirks: average pools that ignore padding in the A/C/first E
blocks, a max pool in the last E block).  Credit for working those quirks out goes to pytorch-fid.

It is called like the official file: ``net(uint8_images, return_features=True)`` gives the
2048-d pool features, ``net(uint8_images, no_output_bias=True)`` the 1008 class logits
without the output bias (the metrics softmax them for IS).

Not verified: without the real weights here, nobody has checked that its features equal the
official TorchScript file's to float precision.  The layers and the [-1, 1] scaling are
those of the same TF graph, but the 299x299 resize (PyTorch bilinear, half-pixel centres)
may sample slightly differently from the official file's, so FID from the two files can
differ in the last digits until someone compares them on real images.
"""

from typing import Mapping, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import MetricError

INPUT_SIZE = 299
NUM_CLASSES = 1008
FEATURE_DIM = 2048

Kernel = Union[int, Tuple[int, int]]


class ConvBN(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3, frozen statistics) -> ReLU: every Inception layer.

    ``padded`` pads by half the kernel in each direction (TF's 'SAME' at stride 1).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: Kernel, stride: int = 1, padded: bool = False):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        padding = (kh // 2, kw // 2) if padded else (0, 0)
        self.conv = nn.Conv2d(in_ch, out_ch, (kh, kw), stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def pool3x3(x: torch.Tensor, use_max: bool) -> torch.Tensor:
    """The stride-1 3x3 pool of a pool branch; the average leaves the zero padding out, as TF does."""
    if use_max:
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1 -> 224 + pool_ch channels."""

    def __init__(self, in_ch: int, pool_ch: int):
        super().__init__()
        self.branch1x1 = ConvBN(in_ch, 64, 1)
        self.branch5x5_1 = ConvBN(in_ch, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padded=True)
        self.branch3x3dbl_1 = ConvBN(in_ch, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padded=True)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padded=True)
        self.branch_pool = ConvBN(in_ch, pool_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = self.branch5x5_2(self.branch5x5_1(x))
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), wide, deep, self.branch_pool(pool3x3(x, False))], dim=1)


class ReduceB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | max pool/2 -> 384 + 96 + in_ch channels."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3 = ConvBN(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_ch, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padded=True)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), deep, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class MixedC(nn.Module):
    """17x17 block (Mixed_6b..6e) with factorised 7x7s of ``mid`` channels -> 4 x 192 channels."""

    def __init__(self, in_ch: int, mid: int):
        super().__init__()
        row, col = (1, 7), (7, 1)
        self.branch1x1 = ConvBN(in_ch, 192, 1)
        self.branch7x7_1 = ConvBN(in_ch, mid, 1)
        self.branch7x7_2 = ConvBN(mid, mid, row, padded=True)
        self.branch7x7_3 = ConvBN(mid, 192, col, padded=True)
        self.branch7x7dbl_1 = ConvBN(in_ch, mid, 1)
        self.branch7x7dbl_2 = ConvBN(mid, mid, col, padded=True)
        self.branch7x7dbl_3 = ConvBN(mid, mid, row, padded=True)
        self.branch7x7dbl_4 = ConvBN(mid, mid, col, padded=True)
        self.branch7x7dbl_5 = ConvBN(mid, 192, row, padded=True)
        self.branch_pool = ConvBN(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))
        double = self.branch7x7dbl_5(self.branch7x7dbl_4(double))
        return torch.cat([self.branch1x1(x), single, double, self.branch_pool(pool3x3(x, False))], dim=1)


class ReduceD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool/2 -> 320 + 192 + in_ch channels."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(in_ch, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_ch, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padded=True)
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padded=True)
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = self.branch3x3_2(self.branch3x3_1(x))
        long = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([short, long, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class MixedE(nn.Module):
    """8x8 block (Mixed_7b, 7c): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | pool-1x1 -> 2048 channels.

    The TF graph pools with an average in Mixed_7b but a max in Mixed_7c (``max_pool``).
    """

    def __init__(self, in_ch: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(in_ch, 320, 1)
        self.branch3x3_1 = ConvBN(in_ch, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padded=True)
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padded=True)
        self.branch3x3dbl_1 = ConvBN(in_ch, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padded=True)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padded=True)
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padded=True)
        self.branch_pool = ConvBN(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = self.branch3x3_1(x)
        deep = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(split), self.branch3x3_2b(split),
                          self.branch3x3dbl_3a(deep), self.branch3x3dbl_3b(deep),
                          self.branch_pool(pool3x3(x, self.max_pool))], dim=1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the 2015-12-05 TF graph; parameter names as in pytorch-fid's state dict."""

    def __init__(self):
        super().__init__()
        self.input_size = INPUT_SIZE
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padded=True)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = MixedA(192, pool_ch=32)
        self.Mixed_5c = MixedA(256, pool_ch=64)
        self.Mixed_5d = MixedA(288, pool_ch=64)
        self.Mixed_6a = ReduceB(288)
        self.Mixed_6b = MixedC(768, mid=128)
        self.Mixed_6c = MixedC(768, mid=160)
        self.Mixed_6d = MixedC(768, mid=160)
        self.Mixed_6e = MixedC(768, mid=192)
        self.Mixed_7a = ReduceD(768)
        self.Mixed_7b = MixedE(1280, max_pool=False)
        self.Mixed_7c = MixedE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images at 299x299 -> [N, 2048] pool features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6a(x)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        return x.mean(dim=[2, 3])

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False,
                resize_images: bool = True) -> torch.Tensor:
        """uint8-valued ``[N, 3, H, W]`` images (uint8 or float, 0..255) -> features or class logits.

        ``return_features``: the [N, 2048] pool features (FID, KID).  Otherwise the [N, 1008]
        logits, without the output layer's bias when ``no_output_bias`` (IS).  ``resize_images``
        resizes to 299x299 bilinearly first; without it the images must already be that size.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape [N, 3, H, W], got {list(x.shape)}")
        x = x.to(torch.float32)
        size = self.input_size
        if resize_images and (x.shape[2] != size or x.shape[3] != size):
            x = F.interpolate(x, size=[size, size], mode="bilinear", align_corners=False)
        features = self.features((x - 128) / 128)
        if return_features:
            return features
        if no_output_bias:
            return F.linear(features, self.fc.weight)
        return self.fc(features)


def _mismatch(state: Mapping[str, object], expected: Mapping[str, torch.Tensor]) -> str:
    """'' when ``state`` fits ``expected`` (``num_batches_tracked`` may be absent), else what is wrong."""
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    for keys, what in ((missing, "missing"), (unexpected, "unexpected")):
        if keys:
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            return f"{what} key '{keys[0]}'{more}"
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            return f"'{key}' is a {type(value).__name__}, not a tensor"
        if value.shape != expected[key].shape:
            return f"'{key}' has shape {list(value.shape)}, expected {list(expected[key].shape)}"
    return ""


def load_pytorch_fid_inception(path: str) -> FIDInceptionV3:
    """pytorch-fid's ``pt_inception-2015-12-05-*.pth`` as an eval-mode FIDInceptionV3 without gradients.

    Read with ``torch.load(weights_only=True)`` (tensors only, no code); keys and shapes must
    match exactly, else one MetricError line names the file and the first difference.
    """
    def fail(reason: str) -> MetricError:
        return MetricError(f"{path}: not pytorch-fid's Inception state dict ({reason}); "
                           "expected pt_inception-2015-12-05-6726825d.pth")

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many kinds (pickle, zip, OS errors) for a bad file
        raise fail(f"torch.load(weights_only=True) failed: {type(err).__name__}") from None
    if not isinstance(state, Mapping):
        raise fail(f"it holds a {type(state).__name__}, not a state dict")
    net = FIDInceptionV3()
    expected = net.state_dict()
    problem = _mismatch(state, expected)
    if problem:
        raise fail(problem)
    # Files saved before torch 0.4.1 lack the batch-norm counters, which do nothing in eval mode.
    full = {key: state[key] if key in state else expected[key] for key in expected}
    net.load_state_dict(full, strict=True)
    return net.eval().requires_grad_(False)
