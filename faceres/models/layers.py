"""Pure-PyTorch building blocks shared by the generator and the discriminator.

The ops follow StyleGAN2 (Karras et al. 2020) as in NVIDIA's stylegan2-ada-pytorch reference ops, re-written
here without compiled extensions so that the same code runs on CPU and GPU:

- *Equalized learning rate*: weights are stored as N(0, 1) and scaled by 1/sqrt(fan_in) at run time, so Adam
  updates every layer at the same relative speed.
- Leaky ReLU with slope 0.2, multiplied by sqrt(2) so that activations keep unit variance.
- Modulated convolution with demodulation, per-layer noise injection with a learned strength, ToRGB.
- Minibatch standard deviation (discriminator) and non-parameterized attention pooling (encoder).

Parameters are initialised from an explicit ``torch.Generator`` (see :func:`initialize_parameters`); nothing
here draws from torch's global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faceres.core.devices import autocast_off
from faceres.core.errors import ConfigError
from faceres.models.architecture import require_int

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps unit variance through lrelu(0.2), as StyleGAN2's bias_act 'lrelu'
ACTIVATIONS = ("linear", "lrelu")
NOISE_MODES = ("random", "const", "none")
RESIDUAL_GAIN = math.sqrt(0.5)  # a sum of two unit-variance branches, scaled back to unit variance


def assert_shape(tensor: torch.Tensor, shape: Sequence[int | None], name: str = "tensor") -> None:
    """Raise ValueError unless ``tensor`` has ``shape`` (``None`` matches any size of that dimension)."""
    expected = "[" + ", ".join("*" if size is None else str(size) for size in shape) + "]"
    if tensor.ndim != len(shape) or any(
        want is not None and int(got) != want for got, want in zip(tensor.shape, shape)
    ):
        raise ValueError(f"{name}: expected shape {expected}, got {list(tensor.shape)}")


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """Apply ``activation`` ('linear' or 'lrelu' with slope 0.2 and gain sqrt(2))."""
    if activation == "linear":
        return x
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x upsampling (align_corners=False).

    Its weights (3/4, 1/4) are the separable [1, 3, 3, 1] low-pass filter that StyleGAN2 applies after
    zero-stuffing, with replicated instead of zero-padded borders.
    """
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class SeededModule(nn.Module):
    """A layer whose parameters and buffers are drawn from an explicit ``torch.Generator``.

    Each layer initialises itself from a generator seeded 0 so that a stand-alone layer is deterministic;
    :func:`initialize_parameters` re-draws a whole network from one seeded stream.
    """

    def reset_parameters(self, generator: torch.Generator) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _initialize(self) -> None:
        self.reset_parameters(torch.Generator().manual_seed(0))


def _normal_(tensor: torch.Tensor, std: float, generator: torch.Generator) -> None:
    # A network built on the meta device (for parameter counting) has nothing to draw.
    if tensor.is_meta:
        return
    with torch.no_grad():
        if tensor.device == generator.device:
            tensor.normal_(0.0, std, generator=generator)
        else:
            tensor.copy_(torch.randn(tensor.shape, generator=generator, device=generator.device) * std)


def initialize_parameters(module: nn.Module, seed: int) -> torch.Generator:
    """Re-initialise every :class:`SeededModule` inside ``module`` from one generator seeded ``seed``.

    The draw order is ``module.modules()`` order, so the same architecture and seed always give the same
    weights, independently of torch's global RNG. Returns the generator, advanced past the parameters.
    """
    generator = torch.Generator().manual_seed(int(seed))
    for layer in module.modules():
        if isinstance(layer, SeededModule):
            layer.reset_parameters(generator)
    return generator


class EqualizedLinear(SeededModule):
    """Fully connected layer with equalized learning rate and an optional learning-rate multiplier."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}: allowed {ACTIVATIONS}")
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.lr_multiplier = float(lr_multiplier)
        self.bias_init = float(bias_init)
        self.weight_gain = self.lr_multiplier / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self._initialize()

    def reset_parameters(self, generator: torch.Generator) -> None:
        # Stored values are divided by the multiplier so that the effective initial layer is the same.
        _normal_(self.weight, 1.0 / self.lr_multiplier, generator)
        if self.bias is not None and not self.bias.is_meta:
            with torch.no_grad():
                self.bias.fill_(self.bias_init / self.lr_multiplier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.in_features], "EqualizedLinear input")
        bias = self.bias * self.lr_multiplier if self.bias is not None else None
        return activate(F.linear(x, self.weight * self.weight_gain, bias), self.activation)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, activation={self.activation}, lr_multiplier={self.lr_multiplier}"


class EqualizedConv2d(SeededModule):
    """2-D convolution ('same' padding, optional stride) with equalized learning rate."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        bias: bool = True,
        activation: str = "linear",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}: allowed {ACTIVATIONS}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.activation = activation
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self._initialize()

    def reset_parameters(self, generator: torch.Generator) -> None:
        _normal_(self.weight, 1.0, generator)
        if self.bias is not None and not self.bias.is_meta:
            with torch.no_grad():
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, None, None], "EqualizedConv2d input")
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, stride=self.stride, padding=self.kernel_size // 2)
        return activate(x, self.activation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"activation={self.activation}"
        )


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 / ||w'_{n,o}||_2 for the modulated weights w'[n,o,i,:,:] = w[o,i,:,:] * s[n,i]; shape [N, O].

    Computed as sum_i s[n,i]^2 * sum_kk w[o,i]^2, which never materialises the per-sample weights; in float32
    also under bf16 autocast (a sum over hundreds of channels).
    """
    with autocast_off(weight.device.type):
        return (styles.float().square() @ weight.float().square().sum(dim=(2, 3)).t() + eps).rsqrt()


def modulate_weights(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True) -> torch.Tensor:
    """Per-sample modulated (and optionally demodulated) weights, shape [N, O, I, kh, kw]."""
    batch, in_channels = styles.shape
    assert_shape(weight, [None, in_channels, None, None], "modulated conv weight")
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, in_channels, 1, 1)
    if demodulate:
        w = w * demodulation_coefficients(weight, styles).reshape(batch, -1, 1, 1, 1)
    return w


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    fused: bool = True,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution ('same' padding, stride 1) of x [N, I, H, W] with weight [O, I, k, k].

    ``fused=True`` builds per-sample weights and runs one grouped convolution (groups = N); ``fused=False``
    scales the activations before and after a shared convolution instead. Both compute the same function;
    which is faster depends on batch size and device.
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert_shape(x, [batch, in_channels, None, None], "modulated conv input")
    assert_shape(styles, [batch, in_channels], "modulated conv styles")
    padding = kh // 2
    if fused:
        w = modulate_weights(weight, styles, demodulate).reshape(batch * out_channels, in_channels, kh, kw)
        y = F.conv2d(x.reshape(1, batch * in_channels, *x.shape[2:]), w, padding=padding, groups=batch)
        return y.reshape(batch, out_channels, *y.shape[2:])
    y = F.conv2d(x * styles.reshape(batch, in_channels, 1, 1), weight, padding=padding)
    if demodulate:
        # computed in float32, applied in the activations' dtype (stylegan2-ada's dcoefs.to(x.dtype)): a float32
        # factor would promote every bf16 activation after it to float32 (twice the memory and bandwidth)
        y = y * demodulation_coefficients(weight, styles).to(y.dtype).reshape(batch, out_channels, 1, 1)
    return y


class StyleLayer(SeededModule):
    """One StyleGAN2 style block: modulated 3x3 conv + demodulation + noise injection + bias + lrelu.

    Noise has shape [N, 1, R, R] (one map shared by all channels), scaled by a learned per-layer strength that
    starts at 0 as in StyleGAN2. ``noise_mode``: 'random' adds ``noise``, the [N, R*R] float32 standard normals
    the generator drew for this layer (one draw per forward for all layers: :meth:`Generator.forward`); 'const'
    uses this layer's fixed buffer (deterministic evaluation); 'none' adds nothing.
    """

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.noise_strength = nn.Parameter(torch.empty([]))
        self.register_buffer("noise_const", torch.empty(resolution, resolution))
        self._initialize()

    def reset_parameters(self, generator: torch.Generator) -> None:
        _normal_(self.weight, 1.0, generator)
        _normal_(self.noise_const, 1.0, generator)
        if not self.bias.is_meta:
            with torch.no_grad():
                self.bias.zero_()
                self.noise_strength.zero_()

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        *,
        noise_mode: str,
        noise: torch.Tensor | None = None,
        fused: bool,
    ) -> torch.Tensor:
        res = self.resolution
        assert_shape(x, [None, self.in_channels, res, res], f"StyleLayer@{res} input")
        x = modulated_conv2d(x, self.weight, self.affine(w), demodulate=True, fused=fused)
        if noise_mode == "random":
            assert noise is not None, "random mode: the generator draws this layer's noise"
            assert_shape(noise, [x.shape[0], res * res], f"StyleLayer@{res} noise")
            # drawn in float32 whatever x's dtype, so a key gives the same noise at every training precision
            x = x + (noise.reshape(-1, 1, res, res) * self.noise_strength).to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        elif noise_mode != "none":
            raise ValueError(f"noise_mode={noise_mode!r}: allowed {NOISE_MODES}")
        # noise and bias in the activations' dtype (stylegan2-ada's bias.to(x.dtype)): under bf16 autocast a
        # float32 term would promote the layer's output, and every activation after it, to float32
        return activate(x + self.bias.to(x.dtype).reshape(1, -1, 1, 1), "lrelu")


# The std of ToRGB's stored weights at initialization (StyleGAN2: 1). The decoder sums one ToRGB image per
# resolution, so at 1 the untrained generator outputs the sum of five unit-scale random images: std 0.7-1.1
# and a mean from -1.0 to +0.2 depending on the seed, at 64 px. A restorer then spends its first hundreds of
# steps unlearning that, and how long depends on the seed: measured on CelebA (64 px, 2,000 training faces,
# 253 steps, the noaug arm), held-out LPIPS 0.424 / 0.515 / 0.383 for seeds 0 / 1 / 2 at std 1, against
# 0.360 / 0.358 at 0.1 for seeds 0 / 1 (the degraded input: 0.46). At 0.1 the first image is near mid-grey
# (std <= 0.11); the equalized gain and Adam's per-element steps are unchanged, so the weights grow from there.
TORGB_INIT_STD = 0.1


class ToRGB(SeededModule):
    """Modulated 1x1 convolution to RGB without demodulation (StyleGAN2's ToRGB), plus bias.

    Weights start at std ``init_std`` (:data:`TORGB_INIT_STD`, not StyleGAN2's 1: see there), bias at 0.
    """

    def __init__(self, in_channels: int, w_dim: int, image_channels: int = 3, *, init_std: float = TORGB_INIT_STD):
        super().__init__()
        assert init_std > 0, init_std
        self.in_channels = in_channels
        self.init_std = float(init_std)
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.empty(image_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(image_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self._initialize()

    def reset_parameters(self, generator: torch.Generator) -> None:
        _normal_(self.weight, self.init_std, generator)
        if not self.bias.is_meta:
            with torch.no_grad():
                self.bias.zero_()

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused: bool) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # no demodulation, so equalize through the styles
        y = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return y + self.bias.to(y.dtype).reshape(1, -1, 1, 1)


class ResBlock(nn.Module):
    """Encoder/discriminator residual block: 3x3 conv (same size) -> 3x3 conv stride 2, plus a shortcut.

    The shortcut is 2x2 average pooling followed by a 1x1 conv (no bias): unlike a strided 1x1 conv it sees
    every input pixel. Output = (main + shortcut) * sqrt(1/2).
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.conv0 = EqualizedConv2d(in_channels, out_channels, 3, activation="lrelu")
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3, stride=2, activation="lrelu")
        self.shortcut = EqualizedConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        """Output at res/2; with `return_hidden`, (output, the full-size feature after the first conv)."""
        res = self.resolution
        assert_shape(x, [None, self.in_channels, res, res], f"ResBlock@{res} input")
        shortcut = self.shortcut(F.avg_pool2d(x, 2))
        hidden = self.conv0(x)
        y = (self.conv1(hidden) + shortcut) * RESIDUAL_GAIN
        assert_shape(y, [x.shape[0], self.out_channels, res // 2, res // 2], f"ResBlock@{res} output")
        return (y, hidden) if return_hidden else y


class AttentionPooling(nn.Module):
    """Non-parameterized attention pooling of a feature map [N, C, H, W] into a vector [N, C].

    Spec decision: the query is the mean feature m = mean_p x_p; weights a = softmax_p(<x_p, m> / sqrt(C));
    output sum_p a_p x_p. No learned weights, and invariant to any permutation of the spatial positions.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, None, None, None], "AttentionPooling input")
        tokens = x.flatten(2)  # [N, C, P]
        query = tokens.mean(dim=2)  # [N, C]
        scores = torch.einsum("nc,ncp->np", query, tokens) / math.sqrt(x.shape[1])
        return torch.einsum("np,ncp->nc", scores.softmax(dim=1), tokens)


class MinibatchStdDev(nn.Module):
    """StyleGAN minibatch standard deviation layer: appends ``num_channels`` feature maps.

    The batch is split into groups of ``min(group_size, N)`` samples; sample i belongs to group i mod (N/G)
    (StyleGAN's strided layout). The channels are split into ``num_channels`` slices; for each group and slice
    the appended value is the mean over (channels, pixels) of the per-position standard deviation across the
    group (population std, eps 1e-8 inside the sqrt), broadcast over H x W.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        require_int("mbstd_group_size", group_size, 1, 1024)
        require_int("mbstd_num_channels", num_channels, 1, 16)
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = min(self.group_size, n)
        slices = self.num_channels
        if n % group:
            raise ConfigError(
                f"batch size {n} is not divisible by the discriminator's mbstd_group_size={self.group_size}: "
                "use a batch size that is a multiple of it (drop the last incomplete batch)"
            )
        if c % slices:
            raise ValueError(f"MinibatchStdDev: {c} channels cannot be split into {slices} slices")
        # statistics in float32 also under bf16 autocast (a variance of near-equal bf16 values is mostly noise)
        y = x.float().reshape(group, n // group, slices, c // slices, h, w)
        y = (y.var(dim=0, correction=0) + 1e-8).sqrt()  # [n/G, F, c, H, W]
        y = y.mean(dim=(2, 3, 4)).reshape(n // group, slices, 1, 1)
        y = y.repeat(group, 1, h, w).to(x.dtype)  # row i of the batch gets group i mod (n/G)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
