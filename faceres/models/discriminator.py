"""The discriminator: the encoder's ResBlock trunk with attention pooling replaced by a StyleGAN epilogue.

Epilogue on the 4x4 map (as StyleGAN2's DiscriminatorEpilogue): minibatch stddev (group size a parameter)
-> 3x3 conv + lrelu -> flatten -> linear + lrelu -> linear to one logit per image.
"""

from __future__ import annotations

import torch
from torch import nn

from faceres.models.architecture import BOTTLENECK_RESOLUTION, Architecture
from faceres.models.encoder import ResBlockTrunk
from faceres.models.layers import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, assert_shape, initialize_parameters


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, channels: int, mbstd_group_size: int = 4, mbstd_num_channels: int = 1):
        super().__init__()
        self.channels = channels
        res = BOTTLENECK_RESOLUTION
        self.mbstd = MinibatchStdDev(mbstd_group_size, mbstd_num_channels)
        self.conv = EqualizedConv2d(channels + mbstd_num_channels, channels, 3, activation="lrelu")
        self.fc = EqualizedLinear(channels * res * res, channels, activation="lrelu")
        self.out = EqualizedLinear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = BOTTLENECK_RESOLUTION
        assert_shape(x, [None, self.channels, res, res], "discriminator epilogue input")
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


class Discriminator(nn.Module):
    """``D(image) -> logits [N, 1]`` for images [N, 3, R, R] in [-1, 1].

    ``mbstd_group_size`` must divide the batch size (or exceed it: then the whole batch is one group).
    """

    def __init__(self, arch: Architecture, *, mbstd_group_size: int = 4, mbstd_num_channels: int = 1, seed: int = 0):
        super().__init__()
        self.arch = arch
        self.trunk = ResBlockTrunk(arch)
        self.epilogue = DiscriminatorEpilogue(arch.bottleneck_channels, mbstd_group_size, mbstd_num_channels)
        initialize_parameters(self, seed)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.epilogue(self.trunk(image)[BOTTLENECK_RESOLUTION])
        assert_shape(logits, [image.shape[0], 1], "logits")
        return logits
