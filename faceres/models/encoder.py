"""The ResBlock trunk shared by the generator's encoder and the discriminator, and the encoder itself."""

from __future__ import annotations

import torch
from torch import nn

from faceres.models.architecture import BOTTLENECK_RESOLUTION, IMAGE_CHANNELS, Architecture
from faceres.models.layers import AttentionPooling, ResBlock, assert_shape


class ResBlockTrunk(nn.Module):
    """Image [N, 3, R, R] -> ResBlocks R -> R/2 -> ... -> 4 (spec Table 4, truncated for R < 512).

    ``forward`` returns every block's output keyed by its resolution (R/2, ..., 8, 4), plus, keyed by R, the
    first block's full-size hidden feature (the skip node at the input resolution for R <= 256), so the
    generator can take its skip features and the discriminator its 4x4 map from the same code.
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        self.blocks = nn.ModuleDict(
            {
                f"b{res}": ResBlock(arch.encoder_channels(res), arch.encoder_channels(res // 2), res)
                for res in arch.encoder_resolutions
            }
        )

    def forward(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        res = self.arch.resolution
        assert_shape(image, [None, IMAGE_CHANNELS, res, res], "image")
        features: dict[int, torch.Tensor] = {}
        x = image
        for index, block in enumerate(self.blocks.values()):
            if index == 0:
                x, features[res] = block(x, return_hidden=True)
            else:
                x = block(x)
            features[block.resolution // 2] = x
        return features


class Encoder(nn.Module):
    """ResBlock trunk followed by non-parameterized attention pooling of the 4x4 map (spec Table 4)."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        self.trunk = ResBlockTrunk(arch)
        self.pool = AttentionPooling()

    def forward(self, image: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """Return (feature maps keyed by resolution, pooled vector [N, C_4])."""
        features = self.trunk(image)
        bottleneck = features[BOTTLENECK_RESOLUTION]
        c = self.arch.bottleneck_channels
        assert_shape(bottleneck, [image.shape[0], c, BOTTLENECK_RESOLUTION, BOTTLENECK_RESOLUTION], "bottleneck")
        pooled = self.pool(bottleneck)
        assert_shape(pooled, [image.shape[0], c], "pooled")
        return features, pooled
