"""StyleGAN2 generator and discriminator with the official constructor arguments,
forward signatures and state_dict keys, so official checkpoints load unchanged.

Layers use *equalised learning rate*: weights are stored as N(0, 1) and scaled
at run time by ``1/sqrt(fan_in)`` (times ``lr_multiplier``), which gives every
layer the same effective learning rate under Adam.
"""

import math
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

from ..torch_utils import misc, persistence
from ..torch_utils.ops import bias_act, conv2d_resample, fma, upfirdn2d

DEFAULT_RESAMPLE_FILTER = [1, 3, 3, 1]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (used on z and label embeddings)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """[N, O] factors that give each modulated output channel unit expected variance.

    Equals ``rsqrt(sum((weight * style)^2))`` per sample and output channel, computed
    as one small matrix product instead of materialising per-sample weights.
    """
    weight_energy = weight.square().sum(dim=[2, 3])  # [O, I]
    return (styles.square() @ weight_energy.t() + 1e-8).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,  # Input activations: [batch_size, in_channels, in_height, in_width].
    weight: torch.Tensor,  # Shared weights: [out_channels, in_channels, kernel_height, kernel_width].
    styles: torch.Tensor,  # Per-sample modulation: [batch_size, in_channels].
    noise: Optional[torch.Tensor] = None,  # Optional noise added to the output: [batch_size, 1|out_channels, H, W].
    up: int = 1,  # Integer upsampling factor.
    down: int = 1,  # Integer downsampling factor.
    padding: int = 0,  # Padding with respect to the upsampled image.
    resample_filter: Optional[torch.Tensor] = None,  # Low-pass filter from upfirdn2d.setup_filter().
    demodulate: bool = True,  # Normalise each output channel to unit expected variance?
    flip_weight: bool = True,  # False = convolution, True = correlation (matches torch.nn.functional.conv2d).
    fused_modconv: bool = True,  # One grouped convolution with per-sample weights (True) or scale the activations (False)?
) -> torch.Tensor:
    """Convolve each sample with ``weight`` scaled per input channel by its style, then demodulate.

    Both implementations compute the same thing: conv(x, w * s) * d == conv(x * s, w) * d.
    The fused one builds per-sample weights (fast for small batches on GPUs); the
    other runs one big shared convolution (fast on CPUs and for large batches).
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels, kh, kw])
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    misc.assert_shape(styles, [batch_size, in_channels])

    if x.dtype in (torch.float16, torch.bfloat16) and demodulate:
        # Demodulation makes the result invariant to these scales; they only keep
        # the intermediate products inside the half-precision range.
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = _demodulation_coefficients(weight, styles) if demodulate else None

    if not fused_modconv:
        x = x * styles.to(x.dtype)[:, :, None, None]
        x = conv2d_resample.conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if dcoefs is not None and noise is not None:
            return fma.fma(x, dcoefs.to(x.dtype)[:, :, None, None], noise.to(x.dtype))
        if dcoefs is not None:
            return x * dcoefs.to(x.dtype)[:, :, None, None]
        return x + noise.to(x.dtype) if noise is not None else x

    w = weight[None] * styles[:, None, :, None, None]  # [N, O, I, kh, kw]
    if dcoefs is not None:
        w = w * dcoefs[:, :, None, None, None]
    x = x.reshape(1, batch_size * in_channels, *x.shape[2:])
    w = w.reshape(batch_size * out_channels, in_channels, kh, kw).to(x.dtype)
    x = conv2d_resample.conv2d_resample(
        x, w, f=resample_filter, up=up, down=down, padding=padding, groups=batch_size, flip_weight=flip_weight
    )
    x = x.reshape(batch_size, out_channels, *x.shape[2:])
    return x + noise.to(x.dtype) if noise is not None else x


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(
        self,
        in_features: int,  # Number of input features.
        out_features: int,  # Number of output features.
        bias: bool = True,  # Apply an additive bias before the activation?
        activation: str = "linear",  # Activation function: 'relu', 'lrelu', etc.
        lr_multiplier: float = 1,  # Learning rate multiplier (equalised learning rate).
        bias_init: float = 0,  # Initial value of the bias.
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        kernel_size: int,  # Width and height of the convolution kernel.
        bias: bool = True,  # Apply an additive bias before the activation?
        activation: str = "linear",  # Activation function: 'relu', 'lrelu', etc.
        up: int = 1,  # Integer upsampling factor.
        down: int = 1,  # Integer downsampling factor.
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,  # Low-pass filter applied when resampling.
        conv_clamp: Optional[float] = None,  # Clamp the output to +-X, None = disable clamping.
        channels_last: bool = False,  # Expect the input to have memory_format=channels_last?
        trainable: bool = True,  # Update the weights of this layer during training?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size**2))
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias) if bias is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample.conv2d_resample(
            x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
            padding=self.padding, flip_weight=(self.up == 1),
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
                f"up={self.up}, down={self.down}")


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(
        self,
        z_dim: int,  # Input latent (Z) dimensionality, 0 = no latent.
        c_dim: int,  # Conditioning label (C) dimensionality, 0 = no label.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        num_ws: Optional[int],  # Number of intermediate latents to output, None = do not broadcast.
        num_layers: int = 8,  # Number of mapping layers.
        embed_features: Optional[int] = None,  # Label embedding dimensionality, None = same as w_dim.
        layer_features: Optional[int] = None,  # Number of intermediate features, None = same as w_dim.
        activation: str = "lrelu",  # Activation function: 'relu', 'lrelu', etc.
        lr_multiplier: float = 0.01,  # Learning rate multiplier for the mapping layers.
        w_avg_beta: Optional[float] = 0.995,  # Decay for tracking the moving average of W during training, None = do not track.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: Optional[torch.Tensor],
        c: Optional[torch.Tensor],
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        skip_w_avg_update: bool = False,
    ) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            misc.assert_shape(z, [None, self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            misc.assert_shape(c, [None, self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs a mapping network that tracks w_avg")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        resolution: int,  # Resolution of this layer's output.
        kernel_size: int = 3,  # Convolution kernel size.
        up: int = 1,  # Integer upsampling factor.
        use_noise: bool = True,  # Enable per-pixel noise inputs?
        activation: str = "lrelu",  # Activation function: 'relu', 'lrelu', etc.
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,  # Low-pass filter applied when resampling.
        conv_clamp: Optional[float] = None,  # Clamp the output to +-X, None = disable clamping.
        channels_last: bool = False,  # Use channels_last format for the weights?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True, gain: float = 1
    ) -> torch.Tensor:
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got '{noise_mode}'")
        in_resolution = self.resolution // self.up
        misc.assert_shape(x, [None, self.in_channels, in_resolution, in_resolution])
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=(self.up == 1), fused_modconv=fused_modconv,
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"resolution={self.resolution}, up={self.up}, activation={self.activation}")


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output (image) channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        kernel_size: int = 1,  # Convolution kernel size.
        conv_clamp: Optional[float] = None,  # Clamp the output to +-X, None = disable clamping.
        channels_last: bool = False,  # Use channels_last format for the weights?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size**2))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}"


def _compute_dtype(use_fp16: bool, force_fp32: bool, device: torch.device) -> torch.dtype:
    """float16 only where asked for, not forced off, and on a GPU (CPU half convs are slow)."""
    return torch.float16 if use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32


def _activation_memory_format(channels_last: bool, force_fp32: bool, device: torch.device) -> torch.memory_format:
    """NHWC where the official code uses it (FP16 layers), and for inference on CPUs: oneDNN's forward
    convolutions, transposed ones especially, run markedly faster in NHWC there, but its backward
    passes run slower, so training stays NCHW. Numerics are unchanged."""
    if (device.type == "cpu" and not torch.is_grad_enabled()) or (channels_last and not force_fp32):
        return torch.channels_last
    return torch.contiguous_format


def _use_fused_modconv(training: bool, dtype: torch.dtype, x: torch.Tensor) -> bool:
    """Per-sample weights pay off for inference on GPUs; CPUs prefer one shared convolution."""
    if x.device.type != "cuda":
        return False
    return (not training) and (dtype == torch.float32 or int(x.shape[0]) == 1)


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    def __init__(
        self,
        in_channels: int,  # Number of input channels, 0 = first block.
        out_channels: int,  # Number of output channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Number of output color channels.
        is_last: bool,  # Is this the last block?
        architecture: str = "skip",  # Architecture: 'orig', 'skip', 'resnet'.
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,  # Low-pass filter applied when resampling.
        conv_clamp: Optional[float] = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
        use_fp16: bool = False,  # Use FP16 for this block?
        fp16_channels_last: bool = False,  # Use channels-last memory format with FP16?
        **layer_kwargs,  # Arguments for SynthesisLayer.
    ):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown synthesis architecture '{architecture}'")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                resample_filter=resample_filter, conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution,
            conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs,
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp, channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels, out_channels, kernel_size=1, bias=False, up=2,
                resample_filter=resample_filter, channels_last=self.channels_last,
            )

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
        **layer_kwargs,
    ):
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        w_iter: Iterator[torch.Tensor] = iter(ws.unbind(dim=1))
        dtype = _compute_dtype(self.use_fp16, force_fp32, ws.device)
        memory_format = _activation_memory_format(self.channels_last, force_fp32, ws.device)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = x.to(memory_format=memory_format)
        else:
            misc.assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2])
            x = x.to(dtype=dtype, memory_format=memory_format)
        if fused_modconv is None:
            fused_modconv = _use_fused_modconv(self.training, dtype, x)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            misc.assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


def _channels_per_resolution(resolutions: List[int], channel_base: int, channel_max: int) -> Dict[int, int]:
    """Feature maps per resolution: halve with every doubling of resolution, capped at channel_max."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


def _resolution_log2(img_resolution: int) -> int:
    log2 = int(np.log2(img_resolution))
    if img_resolution < 4 or img_resolution != 2**log2:
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    return log2


def _fp16_resolution(log2: int, num_fp16_res: int) -> int:
    """Lowest resolution run in FP16: the ``num_fp16_res`` highest ones, never below 8."""
    return max(2 ** (log2 + 1 - num_fp16_res), 8)


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(
        self,
        w_dim: int,  # Intermediate latent (W) dimensionality.
        img_resolution: int,  # Output image resolution.
        img_channels: int,  # Number of color channels.
        channel_base: int = 32768,  # Overall multiplier for the number of channels.
        channel_max: int = 512,  # Maximum number of channels in any layer.
        num_fp16_res: int = 0,  # Use FP16 for the N highest resolutions.
        **block_kwargs,  # Arguments for SynthesisBlock.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = _resolution_log2(img_resolution)
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = _channels_per_resolution(self.block_resolutions, channel_base, channel_max)
        fp16_resolution = _fp16_resolution(self.img_resolution_log2, num_fp16_res)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == self.img_resolution
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                img_channels=img_channels, is_last=is_last, use_fp16=(res >= fp16_resolution), **block_kwargs,
            )
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, **block_kwargs) -> torch.Tensor:
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            # Each block's ToRGB shares its w with the next block's first convolution.
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, **block_kwargs)
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"


@persistence.persistent_class
class Generator(torch.nn.Module):
    def __init__(
        self,
        z_dim: int,  # Input latent (Z) dimensionality.
        c_dim: int,  # Conditioning label (C) dimensionality.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        img_resolution: int,  # Output resolution.
        img_channels: int,  # Number of output color channels.
        mapping_kwargs: Optional[dict] = None,  # Arguments for MappingNetwork.
        synthesis_kwargs: Optional[dict] = None,  # Arguments for SynthesisNetwork.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {}))

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor],
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        **synthesis_kwargs,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    def __init__(
        self,
        in_channels: int,  # Number of input channels, 0 = first block.
        tmp_channels: int,  # Number of intermediate channels.
        out_channels: int,  # Number of output channels.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Number of input color channels.
        first_layer_idx: int,  # Index of the first layer.
        architecture: str = "resnet",  # Architecture: 'orig', 'skip', 'resnet'.
        activation: str = "lrelu",  # Activation function: 'relu', 'lrelu', etc.
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,  # Low-pass filter applied when resampling.
        conv_clamp: Optional[float] = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
        use_fp16: bool = False,  # Use FP16 for this block?
        fp16_channels_last: bool = False,  # Use channels-last memory format with FP16?
        freeze_layers: int = 0,  # Freeze-D: Number of layers to freeze.
    ):
        if in_channels not in (0, tmp_channels):
            raise ValueError("a discriminator block's input channels must be 0 or tmp_channels")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown discriminator architecture '{architecture}'")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))
        self.num_layers = 0

        def next_trainable() -> bool:
            # Freeze-D freezes the first `freeze_layers` layers counted across the whole D.
            trainable = self.first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return trainable

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=next_trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=next_trainable(), **common)
        self.conv1 = Conv2dLayer(
            tmp_channels, out_channels, kernel_size=3, down=2, trainable=next_trainable(),
            resample_filter=resample_filter, **common,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels, out_channels, kernel_size=1, bias=False, down=2, trainable=next_trainable(),
                resample_filter=resample_filter, channels_last=self.channels_last,
            )

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], force_fp32: bool = False):
        device = x.device if x is not None else img.device
        dtype = _compute_dtype(self.use_fp16, force_fp32, device)
        memory_format = _activation_memory_format(self.channels_last, force_fp32, device)

        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == "skip":
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    def __init__(
        self,
        group_size: Optional[int],  # Samples per statistics group, None = the whole minibatch.
        num_channels: int = 1,  # Number of feature groups, each giving one extra channel.
    ):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Append the per-group standard deviation of the features, so D can see a lack of variety."""
        n, c, h, w = x.shape
        group = min(self.group_size, n) if self.group_size is not None else n
        if n % group != 0:
            raise ValueError(f"minibatch size {n} is not divisible by the mbstd group size {group}")
        feats = self.num_channels
        # Group members are samples i, i + n/group, i + 2n/group, ... (dimension 0 below).
        y = x.reshape(group, -1, feats, c // feats, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [n/group, F, c/F, h, w]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, feats, 1, 1)
        y = y.repeat(group, 1, h, w)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        cmap_dim: int,  # Dimensionality of the mapped conditioning label, 0 = no label.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Number of input color channels.
        architecture: str = "resnet",  # Architecture: 'orig', 'skip', 'resnet'.
        mbstd_group_size: Optional[int] = 4,  # Group size for the minibatch standard deviation layer, None = entire minibatch.
        mbstd_num_channels: int = 1,  # Number of features for the minibatch standard deviation layer, 0 = disable.
        activation: str = "lrelu",  # Activation function: 'relu', 'lrelu', etc.
        conv_clamp: Optional[float] = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * (resolution**2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor], force_fp32: bool = False) -> torch.Tensor:
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            x = x + self.fromrgb(img.to(torch.float32))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            misc.assert_shape(cmap, [None, self.cmap_dim])
            # Projection discriminator: score = <features, label embedding> / sqrt(dim).
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    def __init__(
        self,
        c_dim: int,  # Conditioning label (C) dimensionality.
        img_resolution: int,  # Input resolution.
        img_channels: int,  # Number of input color channels.
        architecture: str = "resnet",  # Architecture: 'orig', 'skip', 'resnet'.
        channel_base: int = 32768,  # Overall multiplier for the number of channels.
        channel_max: int = 512,  # Maximum number of channels in any layer.
        num_fp16_res: int = 0,  # Use FP16 for the N highest resolutions.
        conv_clamp: Optional[float] = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
        cmap_dim: Optional[int] = None,  # Dimensionality of mapped conditioning label, None = default.
        block_kwargs: Optional[dict] = None,  # Arguments for DiscriminatorBlock.
        mapping_kwargs: Optional[dict] = None,  # Arguments for MappingNetwork.
        epilogue_kwargs: Optional[dict] = None,  # Arguments for DiscriminatorEpilogue.
    ):
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = _resolution_log2(img_resolution)
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = _channels_per_resolution(self.block_resolutions + [4], channel_base, channel_max)
        fp16_resolution = _fp16_resolution(self.img_resolution_log2, num_fp16_res)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0, channels[res], channels[res // 2], resolution=res,
                first_layer_idx=layer_idx, use_fp16=(res >= fp16_resolution), **(block_kwargs or {}), **common,
            )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}), **common)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor], **block_kwargs) -> torch.Tensor:
        misc.assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
