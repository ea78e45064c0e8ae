"""The StyleGAN2 generator and discriminator (Karras et al., "Analyzing and Improving the Image
Quality of StyleGAN", CVPR 2020), laid out so that official StyleGAN2-ADA checkpoints load as they
are: class names, constructor and forward keywords and state_dict keys follow that release.

Three ideas recur throughout:

* Equalised learning rate. Parameters are stored at unit scale (N(0, 1) weights) and multiplied by
  He's constant 1/sqrt(fan_in) on every call. Adam's steps do not depend on a parameter's scale, so
  every layer then moves at the same speed relative to its effective weights; ``lr_multiplier``
  slows a layer down by shrinking the stored weight and growing the run-time gain to match.
* Style modulation. An affine map of w gives one scale per input channel of each generator
  convolution; demodulation then divides every output channel by the standard deviation it would
  have for unit-variance input. That replaces StyleGAN1's AdaIN, which normalised every feature map
  by its measured mean and variance; the generator learned to smuggle magnitudes past it in sharp
  spikes, the "droplet" artefacts.
* Mixed precision. Blocks flagged ``use_fp16`` (the ``num_fp16_res`` finest resolutions) compute in
  the run's reduced-precision type (``torch_utils.precision``): float16 on CUDA, bfloat16 on a CPU
  whose bf16 units pay, float32 otherwise and by default on the CPU. Everything else (the mapping
  network, styles and demodulation coefficients, the 4x4 block, D's epilogue) stays in float32.
"""

import math
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch

from ..torch_utils import misc, persistence, precision
from ..torch_utils.ops import bias_act, conv2d_resample, fma, upfirdn2d

_BINOMIAL_1331 = [1, 3, 3, 1]  # taps of the separable low-pass used for every 2x resampling
_ARCHITECTURES = ("orig", "skip", "resnet")
_NOISE_MODES = ("random", "const", "none")
_HALF_DTYPES = (torch.float16, torch.bfloat16)
# Two unit-variance branches that are summed are each scaled by sqrt(1/2), so the sum keeps unit variance.
_RESNET_GAIN = math.sqrt(0.5)


# --- small shared pieces -------------------------------------------------------------------------

def _check_maps(t: torch.Tensor, channels: int, size: int) -> None:
    """Fail unless ``t`` is a batch of ``channels`` square maps of side ``size``."""
    misc.assert_shape(t, [None, channels, size, size])


def _check_rows(t: torch.Tensor, width: int) -> None:
    """Fail unless ``t`` is a batch of vectors of length ``width``."""
    misc.assert_shape(t, [None, width])


def _check_ws(ws: torch.Tensor, count: int, w_dim: int) -> None:
    """Fail unless ``ws`` holds ``count`` latents of length ``w_dim`` per sample."""
    misc.assert_shape(ws, [None, count, w_dim])


def _he_gain(fan_in: int) -> float:
    """He's constant: N(0, 1) weights times this keep unit-variance inputs at unit variance."""
    return 1.0 / math.sqrt(fan_in)


def _activation_gain(activation: str) -> float:
    """The gain that brings an activation's output back to unit variance (sqrt 2 after a ReLU)."""
    return bias_act.activation_funcs[activation].def_gain


def _same_padding(kernel_size: int) -> int:
    """Padding that keeps an odd kernel's output the size of its input."""
    return kernel_size // 2


def _scaled_clamp(conv_clamp: Optional[float], gain: float) -> Optional[float]:
    """Clamp limit for an output scaled by ``gain``; it scales too, so the limit means the same thing."""
    return None if conv_clamp is None else conv_clamp * gain


def _style_affine(w_dim: int, in_channels: int) -> "FullyConnectedLayer":
    """w -> one style per input channel; the bias starts at 1, so styles start near 1 (little modulation)."""
    return FullyConnectedLayer(w_dim, in_channels, bias_init=1)


def _unit_conv_weight(out_channels: int, in_channels: int, kernel_size: int, channels_last: bool) -> torch.Tensor:
    """A fresh N(0, 1) kernel (the equalised-lr storage scale), laid out NHWC if asked for."""
    kernel = torch.randn(out_channels, in_channels, kernel_size, kernel_size)
    return kernel.to(memory_format=torch.channels_last) if channels_last else kernel


def _log2_resolution(img_resolution: int) -> int:
    exponent = int(img_resolution).bit_length() - 1
    if img_resolution < 4 or img_resolution != 1 << exponent:
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    return exponent


def _channel_widths(resolutions: Sequence[int], channel_base: int, channel_max: int) -> Dict[int, int]:
    """Feature maps at each resolution: halved for every doubling of the side, never above channel_max."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


def _lowest_fp16_resolution(resolution_log2: int, num_fp16_res: int) -> int:
    """Blocks at this resolution and above use float16: the ``num_fp16_res`` largest, never 4x4."""
    return max(8, 2 ** (resolution_log2 - num_fp16_res + 1))


def _block_dtype(use_fp16: bool, force_fp32: bool, device: torch.device) -> torch.dtype:
    """The reduced-precision type for a block marked fp16, unless the caller forces float32.

    Which type that is comes from the precision scope (``torch_utils.precision``): float16 or
    bfloat16 when a run chose one, and outside any scope float16 on CUDA, float32 elsewhere.
    """
    if force_fp32 or not use_fp16:
        return torch.float32
    return precision.reduced_dtype(device)


def _block_layout(channels_last: bool, force_fp32: bool, device: torch.device, dtype: torch.dtype) -> torch.memory_format:
    """Activation layout of a block.

    NHWC where the release uses it (fp16 blocks with ``fp16_channels_last``), for CPU inference, and
    for reduced-precision blocks on the CPU: oneDNN's forward convolutions, transposed ones above all,
    are markedly faster in NHWC, and so are all its bfloat16 kernels (the FIR filters' strided views
    too), while its float32 backward passes are slower, so float32 CPU training stays NCHW. The layout
    never changes the numbers.
    """
    on_cpu = device.type == "cpu"
    cpu_inference = on_cpu and not torch.is_grad_enabled()
    cpu_half = on_cpu and dtype != torch.float32
    if cpu_inference or cpu_half or (channels_last and not force_fp32):
        return torch.channels_last
    return torch.contiguous_format


def _prefer_fused(training: bool, dtype: torch.dtype, x: torch.Tensor) -> bool:
    """Per-sample kernels (fused modconv) win for inference on a GPU; a CPU prefers one shared convolution."""
    if x.device.type != "cuda" or training:
        return False
    return dtype == torch.float32 or int(x.shape[0]) == 1


# --- modulated convolution ---------------------------------------------------------------------

def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Rescale ``x`` to unit mean square along ``dim``; applied to z and to the label embedding."""
    mean_square = x.square().mean(dim, keepdim=True)
    return x * torch.rsqrt(mean_square + eps)


def _demodulation_scales(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """[N, O]: one over the expected standard deviation of each output channel, per sample.

    That is rsqrt(sum over i, kh, kw of (weight[o, i] * styles[n, i])^2 + 1e-8). Summing the squared
    kernel over its taps first turns the sum into one [N, I] x [I, O] product, so no [N, O, I, kh, kw]
    tensor is built on the unfused path.
    """
    tap_energy = weight.square().sum(dim=(2, 3))  # [O, I]
    return torch.rsqrt(torch.mm(styles.square(), tap_energy.t()) + 1e-8)


def _scale_and_add_noise(y: torch.Tensor, scales: Optional[torch.Tensor], noise: Optional[torch.Tensor]) -> torch.Tensor:
    """``y * scales + noise``, with per-(sample, channel) ``scales`` [N, O]; either may be None."""
    if scales is None:
        return y if noise is None else y + noise.to(y.dtype)
    per_map = scales.to(y.dtype).reshape(*scales.shape, 1, 1)
    return y * per_map if noise is None else fma.fma(y, per_map, noise.to(y.dtype))


def modulated_conv2d(
    x: torch.Tensor,  # activations, [N, I, H, W]
    weight: torch.Tensor,  # kernel shared by the whole batch, [O, I, kh, kw]
    styles: torch.Tensor,  # one scale per sample and input channel, [N, I]
    noise: Optional[torch.Tensor] = None,  # added to the result, broadcast from [N, 1 or O, H', W']
    up: int = 1,  # upsample the input by this factor first (transposed convolution)
    down: int = 1,  # downsample the result by this factor
    padding: int = 0,  # zero padding, counted at the upsampled size
    resample_filter: Optional[torch.Tensor] = None,  # FIR low-pass for up/down, from upfirdn2d.setup_filter
    demodulate: bool = True,  # give every output channel unit expected variance
    flip_weight: bool = True,  # True cross-correlates like F.conv2d; False is a true convolution
    fused_modconv: bool = True,  # True: one grouped conv with per-sample kernels; False: scale x instead
) -> torch.Tensor:
    """Convolve each sample with the shared kernel scaled per input channel by that sample's style.

    The two implementations give the same result, since conv(x, w * s) * d == conv(x * s, w) * d:
    the fused one builds a kernel per sample and runs the batch as groups of one convolution (good
    for small GPU batches); the other scales the activations and runs one shared convolution (good
    on CPUs and for large batches).
    """
    n = x.shape[0]
    c_out, c_in, k_h, k_w = weight.shape
    misc.assert_shape(x, [n, c_in, None, None])
    misc.assert_shape(styles, [n, c_in])

    if demodulate and x.dtype in _HALF_DTYPES:
        # Demodulation cancels any scale that is common to a whole output channel of the kernel or to
        # all styles of a sample, so normalising both by their largest magnitude costs nothing and
        # keeps the intermediate products inside the half-precision range.
        largest_tap = weight.abs().amax(dim=(1, 2, 3), keepdim=True)
        weight = weight * (1 / math.sqrt(c_in * k_h * k_w) / largest_tap)
        styles = styles / styles.abs().amax(dim=1, keepdim=True)

    demod = _demodulation_scales(weight, styles) if demodulate else None
    resample = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)

    if not fused_modconv:
        scaled_x = x * styles.to(x.dtype).reshape(n, c_in, 1, 1)
        y = conv2d_resample.conv2d_resample(scaled_x, weight.to(x.dtype), **resample)
        return _scale_and_add_noise(y, demod, noise)

    kernels = weight.unsqueeze(0) * styles.reshape(n, 1, c_in, 1, 1)  # [N, O, I, kh, kw]
    if demod is not None:
        kernels = kernels * demod.reshape(n, c_out, 1, 1, 1)
    kernels = kernels.reshape(n * c_out, c_in, k_h, k_w).to(x.dtype)
    batch_as_groups = x.reshape(1, n * c_in, x.shape[2], x.shape[3])
    y = conv2d_resample.conv2d_resample(batch_as_groups, kernels, groups=n, **resample)
    return _scale_and_add_noise(y.reshape(n, c_out, y.shape[2], y.shape[3]), None, noise)


# --- plain layers --------------------------------------------------------------------------------

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate.

    The stored weight is N(0, 1) / lr_multiplier and is multiplied by lr_multiplier / sqrt(in_features)
    when used, so the layer starts at He initialisation while Adam, whose steps ignore scale, moves it
    ``lr_multiplier`` times as fast relative to its size. The mapping network uses 0.01, which keeps W
    changing slowly compared with the synthesis layers.
    """

    def __init__(
        self,
        in_features: int,  # length of each input vector
        out_features: int,  # length of each output vector
        bias: bool = True,  # learn a bias, added before the activation
        activation: str = "linear",  # nonlinearity, a key of bias_act.activation_funcs
        lr_multiplier: float = 1,  # relative learning speed of this layer (see the class docstring)
        bias_init: float = 0,  # starting value of every bias entry (the style affines start at 1)
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = float(lr_multiplier)
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        initial_bias = torch.full((out_features,), float(bias_init), dtype=torch.float32)
        self.bias = torch.nn.Parameter(initial_bias) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        matrix = self.weight.to(x.dtype) * self.weight_gain
        offset = None
        if self.bias is not None:
            offset = self.bias.to(x.dtype)
            if self.bias_gain != 1:
                offset = offset * self.bias_gain
        if offset is not None and self.activation == "linear":
            return torch.addmm(offset.unsqueeze(0), x, matrix.t())  # bias folded into the product
        return bias_act.bias_act(torch.matmul(x, matrix.t()), offset, act=self.activation)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, activation={self.activation}"


@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    """Unmodulated convolution with equalised learning rate, optional FIR resampling, bias,
    activation and clamping: the discriminator's building block and the generator's resnet shortcut.

    ``trainable=False`` keeps weight and bias as buffers rather than parameters. That is how Freeze-D
    holds the first discriminator layers of a transferred network fixed with unchanged state_dict keys.
    """

    def __init__(
        self,
        in_channels: int,  # feature maps read
        out_channels: int,  # feature maps produced
        kernel_size: int,  # side of the square kernel; odd sizes keep the map size
        bias: bool = True,  # learn one bias per output channel
        activation: str = "linear",  # nonlinearity, a key of bias_act.activation_funcs
        up: int = 1,  # upsample by this factor (transposed convolution, then low-pass)
        down: int = 1,  # downsample by this factor (low-pass, then strided convolution)
        resample_filter: Sequence[float] = _BINOMIAL_1331,  # 1-D taps of the resampling low-pass
        conv_clamp: Optional[float] = None,  # bound |output| by this (keeps float16 finite); None = unbounded
        channels_last: bool = False,  # store the kernel NHWC, to match NHWC activations
        trainable: bool = True,  # False = weight and bias are frozen buffers (Freeze-D)
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = _same_padding(kernel_size)
        self.weight_gain = _he_gain(in_channels * kernel_size * kernel_size)
        self.act_gain = _activation_gain(activation)
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))

        kernel = _unit_conv_weight(out_channels, in_channels, kernel_size, channels_last)
        offset = torch.zeros(out_channels) if bias else None
        if trainable:
            self.register_parameter("weight", torch.nn.Parameter(kernel))
            self.register_parameter("bias", None if offset is None else torch.nn.Parameter(offset))
        else:
            self.register_buffer("weight", kernel)
            self.register_buffer("bias", offset)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        kernel = (self.weight * self.weight_gain).to(x.dtype)
        # Transposed convolutions (up > 1) take the kernel unflipped, as the checkpoints expect.
        y = conv2d_resample.conv2d_resample(x, kernel, f=self.resample_filter, up=self.up, down=self.down,
                                            padding=self.padding, flip_weight=self.up == 1)
        offset = None if self.bias is None else self.bias.to(x.dtype)
        return bias_act.bias_act(y, offset, act=self.activation, gain=self.act_gain * gain,
                                 clamp=_scaled_clamp(self.conv_clamp, gain))

    def extra_repr(self) -> str:
        return (f"{self.in_channels} -> {self.out_channels}, activation={self.activation}, "
                f"up={self.up}, down={self.down}")


# --- generator -----------------------------------------------------------------------------------

@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """MLP from the input latent z (and an optional label c) to the intermediate latent w.

    z is normalised to unit mean square; a label is embedded by a linear layer, normalised the same
    way and concatenated with z. The dense layers learn at ``lr_multiplier`` (0.01) of the synthesis
    speed (the StyleGAN paper found mapping layers at the full rate unstable).

    While training, the network keeps an exponential moving average of the w it produces (``w_avg``).
    It is the centre of W: the truncation trick moves samples towards it, ``w_avg + psi * (w - w_avg)``,
    trading variety for typicality when generating. The discriminator reuses this class without z to
    embed labels (``num_ws=None``, ``w_avg_beta=None``: no average).
    """

    def __init__(
        self,
        z_dim: int,  # length of the input latent z; 0 = no z input
        c_dim: int,  # length of the label vector c; 0 = no label input
        w_dim: int,  # length of the produced w
        num_ws: Optional[int],  # copies of w returned as [N, num_ws, w_dim]; None = return [N, w_dim]
        num_layers: int = 8,  # dense layers between the input and w
        embed_features: Optional[int] = None,  # width of the label embedding; None = w_dim
        layer_features: Optional[int] = None,  # width of the hidden layers; None = w_dim
        activation: str = "lrelu",  # nonlinearity of every dense layer
        lr_multiplier: float = 0.01,  # relative learning speed of the dense layers
        w_avg_beta: Optional[float] = 0.995,  # per-step decay of the w_avg average; None = keep no average
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        label_width = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        hidden_width = w_dim if layer_features is None else layer_features
        widths = [z_dim + label_width] + [hidden_width] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, label_width)
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            dense = FullyConnectedLayer(fan_in, fan_out, activation=activation, lr_multiplier=lr_multiplier)
            self.add_module(f"fc{i}", dense)
        if w_avg_beta is not None and num_ws is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def _normalised_input(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            _check_rows(z, self.z_dim)
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            _check_rows(c, self.c_dim)
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def _truncate(self, ws: torch.Tensor, psi: float, cutoff: Optional[int]) -> torch.Tensor:
        if self.w_avg_beta is None:
            raise ValueError("truncation_psi != 1 needs w_avg, which this mapping network does not keep")
        if cutoff is None or self.num_ws is None:
            return torch.lerp(self.w_avg, ws, psi)
        # Only the first `cutoff` entries (the coarse resolutions) move towards the average.
        coarse = torch.lerp(self.w_avg, ws[:, :cutoff], psi)
        return torch.cat([coarse, ws[:, cutoff:]], dim=1)

    def forward(
        self,
        z: Optional[torch.Tensor],
        c: Optional[torch.Tensor],
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        skip_w_avg_update: bool = False,
    ) -> torch.Tensor:
        w = self._normalised_input(z, c)
        for i in range(self.num_layers):
            w = getattr(self, f"fc{i}")(w)

        if self.training and self.w_avg_beta is not None and not skip_w_avg_update:
            batch_mean = w.detach().mean(dim=0)
            self.w_avg.copy_(torch.lerp(batch_mean, self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            w = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            w = self._truncate(w, truncation_psi, truncation_cutoff)
        return w

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """One convolution of the generator: modulated by w, demodulated, then noise, bias and activation.

    An affine map turns w into one scale per input channel (the style); its bias starts at 1, so a
    fresh layer is close to an ordinary convolution. Demodulation divides each output channel by the
    standard deviation it would have for unit-variance input, so styles cannot compound from layer
    to layer. Per-pixel Gaussian noise with a learned strength gives the generator a source of
    stochastic detail (hair, grain) that w need not encode; ``noise_const`` is a fixed draw per layer, used by
    ``noise_mode='const'`` for repeatable images.
    """

    def __init__(
        self,
        in_channels: int,  # feature maps entering the layer
        out_channels: int,  # feature maps leaving the layer
        w_dim: int,  # length of the w that drives the style
        resolution: int,  # side of the output maps (and of noise_const)
        kernel_size: int = 3,  # side of the square kernel
        up: int = 1,  # 2 = upsample the input first (the first convolution of a block)
        use_noise: bool = True,  # add per-pixel noise of learned strength
        activation: str = "lrelu",  # nonlinearity after the bias
        resample_filter: Sequence[float] = _BINOMIAL_1331,  # 1-D taps of the upsampling low-pass
        conv_clamp: Optional[float] = None,  # bound |output| by this; None = unbounded
        channels_last: bool = False,  # store the kernel NHWC
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.padding = _same_padding(kernel_size)
        self.act_gain = _activation_gain(activation)
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))

        self.affine = _style_affine(w_dim, in_channels)
        self.weight = torch.nn.Parameter(_unit_conv_weight(out_channels, in_channels, kernel_size, channels_last))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = torch.nn.Parameter(torch.zeros(()))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))

    def _noise(self, batch: int, device: torch.device, noise_mode: str) -> Optional[torch.Tensor]:
        if not self.use_noise or noise_mode == "none":
            return None
        if noise_mode == "const":
            return self.noise_const * self.noise_strength
        fresh = torch.randn(batch, 1, self.resolution, self.resolution, device=device)
        return fresh * self.noise_strength

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True, gain: float = 1
    ) -> torch.Tensor:
        if noise_mode not in _NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(_NOISE_MODES)}; got '{noise_mode}'")
        _check_maps(x, self.in_channels, self.resolution // self.up)
        y = modulated_conv2d(x, self.weight, self.affine(w), noise=self._noise(x.shape[0], x.device, noise_mode),
                             up=self.up, padding=self.padding, resample_filter=self.resample_filter,
                             flip_weight=self.up == 1, fused_modconv=fused_modconv)
        return bias_act.bias_act(y, self.bias.to(y.dtype), act=self.activation, gain=self.act_gain * gain,
                                 clamp=_scaled_clamp(self.conv_clamp, gain))

    def extra_repr(self) -> str:
        return (f"{self.in_channels} -> {self.out_channels}, resolution={self.resolution}, "
                f"up={self.up}, activation={self.activation}")


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution from features to image channels, without demodulation.

    Its output is colour, whose magnitude should follow w, so only modulation applies. The He
    constant scales the styles rather than the kernel, which is the same product.
    """

    def __init__(
        self,
        in_channels: int,  # feature maps read
        out_channels: int,  # image channels produced
        w_dim: int,  # length of the w that drives the style
        kernel_size: int = 1,  # side of the square kernel (no padding is applied)
        conv_clamp: Optional[float] = None,  # bound |output| by this; None = unbounded
        channels_last: bool = False,  # store the kernel NHWC
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_clamp = conv_clamp
        self.affine = _style_affine(w_dim, in_channels)
        self.weight = torch.nn.Parameter(_unit_conv_weight(out_channels, in_channels, kernel_size, channels_last))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = _he_gain(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        gained_styles = self.weight_gain * self.affine(w)
        y = modulated_conv2d(x, self.weight, gained_styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(y, self.bias.to(y.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}"


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    """One resolution of the generator: (2x upsampling and) two modulated convolutions, and RGB.

    The first block starts from a learned 4x4 constant instead of an input. ``architecture`` sets how
    resolutions connect (StyleGAN2 paper, section 4.1): 'orig' is a plain stack and only the last
    block emits an image; 'skip' (the default) has every block emit RGB and sums the upsampled
    contributions, which lets the coarse resolutions settle first; 'resnet' adds an upsampled 1x1
    shortcut around the two convolutions. A block uses ``num_conv + num_torgb`` entries of ws; its
    ToRGB shares a w with the next block's first convolution.
    """

    def __init__(
        self,
        in_channels: int,  # feature maps from the previous block; 0 = first block (starts from `const`)
        out_channels: int,  # feature maps this block produces
        w_dim: int,  # length of each w
        resolution: int,  # side of this block's output
        img_channels: int,  # channels of the produced image (3 = RGB, 4 = RGBA, ...)
        is_last: bool,  # the final block emits an image whatever the architecture
        architecture: str = "skip",  # 'orig', 'skip' or 'resnet' (see the class docstring)
        resample_filter: Sequence[float] = _BINOMIAL_1331,  # 1-D taps for upsampling features and image
        conv_clamp: Optional[float] = None,  # bound |output| of every convolution by this; None = unbounded
        use_fp16: bool = False,  # compute in the run's reduced precision (float16 on CUDA by default)
        fp16_channels_last: bool = False,  # NHWC activations and kernels when computing in float16
        **layer_kwargs,  # handed to both SynthesisLayers (use_noise, activation, kernel_size, ...)
    ):
        if architecture not in _ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(_ARCHITECTURES)}; got '{architecture}'")
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

        layer_opts = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp,
                          channels_last=self.channels_last, **layer_kwargs)
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter, **layer_opts)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_opts)
        self.num_conv = 1 if in_channels == 0 else 2

        emits_rgb = is_last or architecture == "skip"
        if emits_rgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
        self.num_torgb = 1 if emits_rgb else 0
        if architecture == "resnet" and in_channels != 0:
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, up=2, resample_filter=resample_filter,
                                    bias=False, channels_last=self.channels_last)

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
        **layer_kwargs,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        _check_ws(ws, self.num_conv + self.num_torgb, self.w_dim)
        per_layer_w = ws.unbind(dim=1)
        dtype = _block_dtype(self.use_fp16, force_fp32, ws.device)
        layout = _block_layout(self.channels_last, force_fp32, ws.device, dtype)

        first_block = self.in_channels == 0
        if first_block:
            start = self.const.to(dtype=dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = start.to(memory_format=layout)
        else:
            _check_maps(x, self.in_channels, self.resolution // 2)
            x = x.to(dtype=dtype, memory_format=layout)
        if fused_modconv is None:
            fused_modconv = _prefer_fused(self.training, dtype, x)
        conv_opts = dict(fused_modconv=fused_modconv, **layer_kwargs)

        if first_block:
            x = self.conv1(x, per_layer_w[0], **conv_opts)
        else:
            residual = self.architecture == "resnet"
            h = self.conv0(x, per_layer_w[0], **conv_opts)
            h = self.conv1(h, per_layer_w[1], gain=_RESNET_GAIN if residual else 1, **conv_opts)
            x = self.skip(x, gain=_RESNET_GAIN) + h if residual else h

        if img is not None:
            _check_maps(img, self.img_channels, self.resolution // 2)
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.num_torgb:
            rgb = self.torgb(x, per_layer_w[self.num_conv], fused_modconv=fused_modconv).float().contiguous()
            img = rgb if img is None else img + rgb
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """Generator body: blocks ``b4, b8, ..., b<img_resolution>`` turning ws [N, num_ws, w_dim] into an image.

    Channels at each resolution are channel_base / resolution, capped at channel_max, so the wide coarse
    blocks and the many-pixel fine ones cost about the same. ``num_ws`` is one w per convolution plus
    one for the final ToRGB; giving different entries different w is style mixing.
    """

    def __init__(
        self,
        w_dim: int,  # length of each w
        img_resolution: int,  # side of the output image, a power of two >= 4
        img_channels: int,  # channels of the output image
        channel_base: int = 32768,  # resolution r gets channel_base // r feature maps ...
        channel_max: int = 512,  # ... but never more than this
        num_fp16_res: int = 0,  # this many of the finest resolutions use reduced precision (never 4x4)
        **block_kwargs,  # handed to every SynthesisBlock
    ):
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = _log2_resolution(img_resolution)
        self.img_channels = img_channels
        self.block_resolutions = [4 << i for i in range(self.img_resolution_log2 - 1)]
        width = _channel_widths(self.block_resolutions, channel_base, channel_max)
        lowest_fp16 = _lowest_fp16_resolution(self.img_resolution_log2, num_fp16_res)

        blocks = []
        for res in self.block_resolutions:
            block = SynthesisBlock(0 if res == 4 else width[res // 2], width[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=res == img_resolution,
                                   use_fp16=res >= lowest_fp16, **block_kwargs)
            self.add_module(f"b{res}", block)
            blocks.append(block)
        self.num_ws = sum(block.num_conv for block in blocks) + blocks[-1].num_torgb

    def _blocks(self) -> Iterator["SynthesisBlock"]:
        return (getattr(self, f"b{res}") for res in self.block_resolutions)

    def forward(self, ws: torch.Tensor, **block_kwargs) -> torch.Tensor:
        _check_ws(ws, self.num_ws, self.w_dim)
        ws = ws.float()
        x = img = None
        first = 0
        for block in self._blocks():
            used = block.num_conv + block.num_torgb
            x, img = block(x, img, ws[:, first:first + used], **block_kwargs)
            first += block.num_conv  # the ToRGB's w is also the next block's first w
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"


@persistence.persistent_class
class Generator(torch.nn.Module):
    """z (and label c) to image: a MappingNetwork feeding a SynthesisNetwork.

    The halves are exposed as ``mapping`` and ``synthesis`` because style mixing, path-length
    regularisation, projection and truncation all work in W, between the two.
    """

    def __init__(
        self,
        z_dim: int,  # length of the input latent z
        c_dim: int,  # length of the label vector; 0 = unconditional
        w_dim: int,  # length of the intermediate latent w
        img_resolution: int,  # side of the output image
        img_channels: int,  # channels of the output image
        mapping_kwargs: Optional[dict] = None,  # more MappingNetwork arguments (num_layers, ...)
        synthesis_kwargs: Optional[dict] = None,  # more SynthesisNetwork arguments (channel_base, ...)
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.synthesis.num_ws,
                                      **(mapping_kwargs or {}))

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor],
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        **synthesis_kwargs,
    ) -> torch.Tensor:
        latents = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(latents, **synthesis_kwargs)


# --- discriminator -------------------------------------------------------------------------------

@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator: two 3x3 convolutions, the second halving the resolution.

    'orig' and 'resnet' read the image only in the first (finest) block, through a 1x1 ``fromrgb``;
    'skip' also feeds a downsampled copy of the image into every block. 'resnet' (the default) adds a
    downsampled 1x1 shortcut, both branches scaled by sqrt(1/2). ``first_layer_idx`` numbers this
    block's layers within the whole discriminator, so that Freeze-D (``freeze_layers``, for transfer
    learning) can freeze the first layers counted from the image.
    """

    def __init__(
        self,
        in_channels: int,  # feature maps from the previous block; 0 = first block (reads the image)
        tmp_channels: int,  # feature maps between the two convolutions
        out_channels: int,  # feature maps handed to the next block
        resolution: int,  # side of this block's input
        img_channels: int,  # channels of the judged image
        first_layer_idx: int,  # D layers before this block (for freeze_layers)
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet' (see the class docstring)
        activation: str = "lrelu",  # nonlinearity of every convolution
        resample_filter: Sequence[float] = _BINOMIAL_1331,  # 1-D taps for downsampling features and image
        conv_clamp: Optional[float] = None,  # bound |output| of every convolution by this; None = unbounded
        use_fp16: bool = False,  # compute in the run's reduced precision (float16 on CUDA by default)
        fp16_channels_last: bool = False,  # NHWC activations and kernels when computing in float16
        freeze_layers: int = 0,  # Freeze-D: this many layers of D, from the image on, are frozen buffers
    ):
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 or tmp_channels ({tmp_channels}); got {in_channels}")
        if architecture not in _ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(_ARCHITECTURES)}; got '{architecture}'")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))

        residual = architecture == "resnet"
        self.num_layers = (1 if self._reads_image() else 0) + 2 + (1 if residual else 0)
        # Layers are numbered in creation order; the ones below freeze_layers are frozen.
        trainable = iter([self.first_layer_idx + i >= freeze_layers for i in range(self.num_layers)])
        layer_opts = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if self._reads_image():
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=next(trainable), **layer_opts)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=next(trainable), **layer_opts)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2, resample_filter=resample_filter,
                                 trainable=next(trainable), **layer_opts)
        if residual:
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, down=2, resample_filter=resample_filter,
                                    bias=False, trainable=next(trainable), channels_last=self.channels_last)

    def _reads_image(self) -> bool:
        return self.in_channels == 0 or self.architecture == "skip"

    def forward(
        self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], force_fp32: bool = False
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        device = (img if x is None else x).device
        dtype = _block_dtype(self.use_fp16, force_fp32, device)
        layout = _block_layout(self.channels_last, force_fp32, device, dtype)
        if x is not None:
            _check_maps(x, self.in_channels, self.resolution)
            x = x.to(dtype=dtype, memory_format=layout)

        if self._reads_image():
            _check_maps(img, self.img_channels, self.resolution)
            img = img.to(dtype=dtype, memory_format=layout)
            from_image = self.fromrgb(img)
            x = from_image if x is None else x + from_image
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            h = self.conv1(self.conv0(x), gain=_RESNET_GAIN)
            x = self.skip(x, gain=_RESNET_GAIN) + h
        else:
            x = self.conv1(self.conv0(x))
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Appends the standard deviation of the features across small groups of samples as extra channels.

    A generator that collapses to a few outputs yields groups with little spread; showing that
    statistic to the discriminator lets it penalise the collapse (Karras et al. 2018, "Progressive
    Growing of GANs"). Samples n/G apart form a group (sample i with i + n/G, i + 2n/G, ...).
    """

    def __init__(
        self,
        group_size: Optional[int],  # samples per group; None = the whole minibatch
        num_channels: int = 1,  # feature groups, each giving one appended channel
    ):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        members = n if self.group_size is None else min(self.group_size, n)
        if n % members:
            raise ValueError(f"minibatch size {n} is not divisible by the mbstd group size {members}")
        groups, feats = n // members, self.num_channels
        stacked = x.reshape(members, groups, feats, c // feats, h, w)
        spread = stacked - stacked.mean(dim=0)
        std = torch.sqrt(spread.square().mean(dim=0) + 1e-8)  # [groups, feats, c / feats, h, w]
        per_group = std.mean(dim=(2, 3, 4))  # [groups, feats]
        maps = per_group.reshape(groups, feats, 1, 1).repeat(members, 1, h, w)
        return torch.cat([x, maps], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 end of the discriminator: minibatch-std, a 3x3 convolution, two dense layers, a score.

    With labels, the last dense layer produces ``cmap_dim`` features instead of one score, and the
    score is their dot product with the embedded label (a projection discriminator, Miyato & Koyama
    2018), scaled by 1/sqrt(cmap_dim) so that its size does not depend on the embedding width.
    """

    def __init__(
        self,
        in_channels: int,  # feature maps arriving at 4x4
        cmap_dim: int,  # width of the label embedding the score projects onto; 0 = unconditional
        resolution: int,  # side of the incoming maps
        img_channels: int,  # channels of the judged image (read by 'skip')
        architecture: str = "resnet",  # 'skip' also adds the 4x4 image through a 1x1 fromrgb
        mbstd_group_size: Optional[int] = 4,  # samples per minibatch-std group; None = the whole batch
        mbstd_num_channels: int = 1,  # minibatch-std channels appended; 0 = no minibatch-std layer
        activation: str = "lrelu",  # nonlinearity of the convolution and the hidden dense layer
        conv_clamp: Optional[float] = None,  # bound |output| of the convolution by this; None = unbounded
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        if mbstd_num_channels > 0:
            self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
        else:
            self.mbstd = None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution * resolution, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(
        self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor], force_fp32: bool = False
    ) -> torch.Tensor:
        _check_maps(x, self.in_channels, self.resolution)
        h = x.float().contiguous()
        if self.architecture == "skip":
            _check_maps(img, self.img_channels, self.resolution)
            h = h + self.fromrgb(img.float())
        if self.mbstd is not None:
            h = self.mbstd(h)
        h = self.fc(self.conv(h).flatten(start_dim=1))
        score = self.out(h)
        if self.cmap_dim == 0:
            return score
        _check_rows(cmap, self.cmap_dim)
        return torch.sum(score * cmap, dim=1, keepdim=True) * _he_gain(self.cmap_dim)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """Image (and label) to one realness logit per sample.

    Blocks ``b<img_resolution>, ..., b8`` halve the resolution down to 4x4, where the epilogue ``b4``
    scores the features. A label is embedded by a MappingNetwork without z (``mapping``) and enters
    only at the end, through the epilogue's projection.
    """

    def __init__(
        self,
        c_dim: int,  # length of the label vector; 0 = unconditional
        img_resolution: int,  # side of the judged image, a power of two >= 4
        img_channels: int,  # channels of the judged image
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet' (see DiscriminatorBlock)
        channel_base: int = 32768,  # resolution r gets channel_base // r feature maps ...
        channel_max: int = 512,  # ... but never more than this
        num_fp16_res: int = 0,  # this many of the finest resolutions use reduced precision (never 4x4)
        conv_clamp: Optional[float] = None,  # bound |output| of every convolution by this; None = unbounded
        cmap_dim: Optional[int] = None,  # width of the label embedding; None = the channels at 4x4
        block_kwargs: Optional[dict] = None,  # more DiscriminatorBlock arguments (freeze_layers, ...)
        mapping_kwargs: Optional[dict] = None,  # more MappingNetwork arguments for the label embedding
        epilogue_kwargs: Optional[dict] = None,  # more DiscriminatorEpilogue arguments (mbstd_group_size, ...)
    ):
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = _log2_resolution(img_resolution)
        self.img_channels = img_channels
        self.block_resolutions = [img_resolution >> i for i in range(self.img_resolution_log2 - 2)]
        width = _channel_widths(self.block_resolutions + [4], channel_base, channel_max)
        lowest_fp16 = _lowest_fp16_resolution(self.img_resolution_log2, num_fp16_res)
        if c_dim == 0:
            cmap_dim = 0
        elif cmap_dim is None:
            cmap_dim = width[4]

        shared = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layers_so_far = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(0 if res == img_resolution else width[res], width[res], width[res // 2],
                                       resolution=res, first_layer_idx=layers_so_far, use_fp16=res >= lowest_fp16,
                                       **(block_kwargs or {}), **shared)
            self.add_module(f"b{res}", block)
            layers_so_far += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(c_dim=c_dim, z_dim=0, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(width[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}), **shared)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor], **block_kwargs) -> torch.Tensor:
        _check_maps(img, self.img_channels, self.img_resolution)
        x = None
        for block in (getattr(self, f"b{res}") for res in self.block_resolutions):
            x, img = block(x, img, **block_kwargs)
        label_embedding = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, label_embedding)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
