"""The restoration generator: ResBlock encoder -> attention pooling -> mapping MLP -> StyleGAN2 decoder.

Images are float tensors [N, 3, R, R] with values in [-1, 1] (R a power of two in 16..512). The output is not
clamped (StyleGAN2 does not clamp either); training pulls it into [-1, 1], clamp before saving.

Decoder (spec Table 5), one StyleBlock per resolution r = 8, 16, ..., R:

    x = upsample2x(x)                     # bilinear, see layers.upsample2x
    x = skip_merge(x, encoder_feature[r]) # only at the first ``skips`` nodes
    x = StyleLayer(x, w)                  # modulated 3x3 conv C_{r/2} -> C_r, noise, bias, lrelu
    x = StyleLayer(x, w)                  # modulated 3x3 conv C_r -> C_r, noise, bias, lrelu
    img = upsample2x(img) + ToRGB(x, w)   # StyleGAN2 'skip' output architecture

The decoder starts from the encoder's 4x4 map (no learned constant). Upsampling is bilinear followed by a
3x3 conv rather than StyleGAN2's transposed conv + FIR blur: it is the same [1, 3, 3, 1] filter, and it leaves
an r x r decoder feature *before* the resolution's first style layer, which is where the spec puts the skip.
Every style layer is modulated by the same w = mapping(pooled encoder vector).
"""

from __future__ import annotations

import torch
from torch import nn

from faceres.core import streams
from faceres.core.seeds import key_of
from faceres.models.architecture import (
    BOTTLENECK_RESOLUTION,
    DEFAULT_SKIPS,
    IMAGE_CHANNELS,
    Architecture,
    require_int,
    require_number,
    validate_skip_mode,
    validate_skips,
)
from faceres.models.encoder import Encoder
from faceres.models.layers import (
    NOISE_MODES,
    RESIDUAL_GAIN,
    EqualizedConv2d,
    EqualizedLinear,
    StyleLayer,
    ToRGB,
    assert_shape,
    initialize_parameters,
    upsample2x,
)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit root-mean-square (StyleGAN's input normalization of the mapping network)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """Pooled encoder vector -> style w: RMS normalization, then ``num_layers`` equalized linear + lrelu.

    ``lr_multiplier`` (StyleGAN2: 0.01) slows the mapping layers' learning relative to the rest.
    """

    def __init__(self, dim: int, num_layers: int = 2, lr_multiplier: float = 0.01):
        super().__init__()
        self.dim = dim
        self.layers = nn.Sequential(
            *[
                EqualizedLinear(dim, dim, activation="lrelu", lr_multiplier=lr_multiplier)
                for _ in range(num_layers)
            ]
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        assert_shape(pooled, [None, self.dim], "mapping input")
        return self.layers(normalize_2nd_moment(pooled))


class SkipMerge(nn.Module):
    """Merge an encoder feature into the (upsampled) decoder feature of the same resolution.

    'add' (default): (x + conv1x1(e)) * sqrt(1/2); the 1x1 conv matches the encoder's channel count to the
    decoder's, which differ at most nodes (e.g. 32 vs 64 at 256x256). 'concat': conv1x1([x, e]) back to
    the decoder's channel count.
    """

    def __init__(self, encoder_channels: int, decoder_channels: int, resolution: int, mode: str = "add"):
        super().__init__()
        self.mode = validate_skip_mode(mode)
        self.encoder_channels, self.decoder_channels, self.resolution = encoder_channels, decoder_channels, resolution
        in_channels = encoder_channels + (decoder_channels if mode == "concat" else 0)
        self.project = EqualizedConv2d(in_channels, decoder_channels, 1)

    def forward(self, x: torch.Tensor, encoder_feature: torch.Tensor) -> torch.Tensor:
        res = self.resolution
        assert_shape(x, [None, self.decoder_channels, res, res], f"decoder feature@{res}")
        assert_shape(encoder_feature, [x.shape[0], self.encoder_channels, res, res], f"skip feature@{res}")
        if self.mode == "add":
            return (x + self.project(encoder_feature)) * RESIDUAL_GAIN
        return self.project(torch.cat([x, encoder_feature], dim=1))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, resolution={self.resolution}"


class StyleBlock(nn.Module):
    """Decoder block at ``resolution``: upsample, optional skip merge, two style layers, ToRGB."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, skip: SkipMerge | None = None
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.skip = skip
        self.conv0 = StyleLayer(in_channels, out_channels, w_dim, resolution)
        self.conv1 = StyleLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, w_dim, IMAGE_CHANNELS)

    def forward(
        self,
        x: torch.Tensor,
        img: torch.Tensor | None,
        w: torch.Tensor,
        encoder_feature: torch.Tensor | None,
        *,
        noise_mode: str,
        noise: tuple[torch.Tensor, torch.Tensor] | None,
        fused: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``noise``: the two style layers' [N, R*R] normals in random mode, else None."""
        res = self.resolution
        assert_shape(x, [None, self.in_channels, res // 2, res // 2], f"StyleBlock@{res} input")
        x = upsample2x(x)
        if self.skip is not None:
            x = self.skip(x, encoder_feature)
        noise0, noise1 = noise if noise is not None else (None, None)
        x = self.conv0(x, w, noise_mode=noise_mode, noise=noise0, fused=fused)
        x = self.conv1(x, w, noise_mode=noise_mode, noise=noise1, fused=fused)
        # The image path stays float32 under bf16 autocast (stylegan2-ada's img): bf16 would round the skip sum
        # of every resolution's RGB and the output to 8 bits of mantissa (~0.5 grey level).
        rgb = self.torgb(x, w, fused=fused).float()
        img = rgb if img is None else upsample2x(img) + rgb
        assert_shape(x, [None, self.out_channels, res, res], f"StyleBlock@{res} output")
        assert_shape(img, [x.shape[0], IMAGE_CHANNELS, res, res], f"StyleBlock@{res} image")
        return x, img


class Decoder(nn.Module):
    """StyleBlocks 8 -> ... -> R from the encoder's 4x4 map; skip merges at the first ``skips`` nodes."""

    def __init__(self, arch: Architecture, w_dim: int, skips: int, skip_mode: str = "add"):
        super().__init__()
        self.arch = arch
        self.skip_resolutions = arch.skip_nodes[: validate_skips(skips, arch.resolution)]
        blocks = {}
        for res in arch.decoder_resolutions:
            in_channels = arch.decoder_channels(res // 2)
            skip = None
            if res in self.skip_resolutions:
                skip = SkipMerge(arch.skip_channels(res), in_channels, res, skip_mode)
            blocks[f"b{res}"] = StyleBlock(in_channels, arch.decoder_channels(res), w_dim, res, skip)
        self.blocks = nn.ModuleDict(blocks)
        # the noise inputs' sizes, style layer by style layer (two per block): one draw per forward covers all
        self.noise_sizes = tuple(block.resolution**2 for block in self.blocks.values() for _ in range(2))

    def forward(
        self,
        bottleneck: torch.Tensor,
        w: torch.Tensor,
        encoder_features: dict[int, torch.Tensor],
        *,
        noise_mode: str,
        noise: torch.Tensor | None,
        fused: bool,
    ) -> torch.Tensor:
        """``noise``: [N, sum(noise_sizes)] float32 normals in random mode (split here, layer by layer), else None."""
        fields = None if noise is None else torch.split(noise, self.noise_sizes, dim=1)
        x, img = bottleneck, None
        for index, block in enumerate(self.blocks.values()):
            feature = encoder_features[block.resolution] if block.skip is not None else None
            pair = None if fields is None else fields[2 * index: 2 * index + 2]
            x, img = block(x, img, w, feature, noise_mode=noise_mode, noise=pair, fused=fused)
        return img


class Generator(nn.Module):
    """Restoration generator: ``G(image, noise_mode="random", noise_keys=None) -> restored``.

    Args:
        arch: resolution and channel widths.
        skips: number of encoder -> decoder skip connections, counted from 8x8 (0..len(arch.skip_nodes)).
        skip_mode: 'add' (default) or 'concat', see :class:`SkipMerge`.
        mapping_layers: depth of the mapping MLP from the pooled vector to w.
        mapping_lr_multiplier: learning-rate multiplier of the mapping MLP (StyleGAN2's 0.01).
        seed: parameters and the const-noise buffers are drawn from a generator seeded with it.
        noise_seed: seeds this module's own noise stream, used in 'random' mode when no noise keys are passed;
            None draws it from the ``seed`` stream after the parameters.
    """

    def __init__(
        self,
        arch: Architecture,
        skips: int = DEFAULT_SKIPS,
        *,
        skip_mode: str = "add",
        mapping_layers: int = 2,
        mapping_lr_multiplier: float = 0.01,
        seed: int = 0,
        noise_seed: int | None = None,
    ):
        super().__init__()
        require_int("mapping_layers", mapping_layers, 1, 8)
        require_number("mapping_lr_multiplier", mapping_lr_multiplier, 0.0, 1.0)
        self.arch = arch
        self.skips = validate_skips(skips, arch.resolution)
        self.skip_mode = validate_skip_mode(skip_mode)
        self.w_dim = arch.bottleneck_channels
        self.encoder = Encoder(arch)
        self.mapping = MappingNetwork(self.w_dim, mapping_layers, mapping_lr_multiplier)
        self.decoder = Decoder(arch, self.w_dim, skips, skip_mode)
        init_stream = initialize_parameters(self, seed)
        if noise_seed is None:
            noise_seed = int(torch.randint(0, 2**62, (), generator=init_stream, device="cpu"))
        self.seed_noise(noise_seed)

    @property
    def skip_resolutions(self) -> tuple[int, ...]:
        return self.decoder.skip_resolutions

    def seed_noise(self, seed: int) -> None:
        """Restart this module's own noise stream (used when ``forward`` gets no noise keys) from ``seed``."""
        self.noise_seed = int(seed)
        self._noise_calls = 0

    def forward(
        self,
        image: torch.Tensor,
        noise_mode: str = "random",
        noise_keys: torch.Tensor | None = None,
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        """Restore ``image`` [N, 3, R, R] in [-1, 1]; returns [N, 3, R, R] (unclamped).

        noise_mode: 'random' draws fresh noise from each sample's stream: ``noise_keys`` (N,) int64 on the
        image's device (:mod:`faceres.core.streams`; a sample's noise depends on its key only, not on its batch),
        or, if None, this module's own stream (advanced by every call); 'const' uses fixed per-layer noise
        (deterministic); 'none' disables noise.
        fused_modconv: grouped-conv modulation (True) or activation scaling (False); None picks fused in eval
        mode or for batch 1, like stylegan2-ada-pytorch.
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode={noise_mode!r}: allowed {NOISE_MODES}")
        if noise_mode == "random":
            if noise_keys is None:
                base = key_of("generator-noise", self.noise_seed, self._noise_calls)
                self._noise_calls += 1
                noise_keys = streams.keys_for(base, torch.arange(image.shape[0], device=image.device))
            elif noise_keys.device != image.device or noise_keys.shape != (image.shape[0],):
                raise ValueError(
                    f"noise_keys: {tuple(noise_keys.shape)} on {noise_keys.device}: allowed: one int64 key per "
                    f"image, on the image's device ({image.device})"
                )
        noise = None
        if noise_mode == "random":  # every layer's noise in one draw (the hashing is per value; calls add launches)
            noise = streams.normal(noise_keys, (sum(self.decoder.noise_sizes),))
        if fused_modconv is None:
            fused_modconv = (not self.training) or image.shape[0] == 1
        features, pooled = self.encoder(image)
        w = self.mapping(pooled)
        bottleneck = features[BOTTLENECK_RESOLUTION]
        img = self.decoder(bottleneck, w, features, noise_mode=noise_mode, noise=noise, fused=fused_modconv)
        assert_shape(img, list(image.shape), "restored image")
        return img
