"""The one definition of the network's shape: channel tables keyed by resolution, and the skip nodes.

Every resolution and width derives from these tables (spec section 1, appendix Tables 4 and 5):

- Encoder (and discriminator trunk), output of the ResBlock that ends at resolution r:
  256:32, 128:64, 64:128, 32:256, 16:512, 8:512, 4:512. An input of R px runs the ResBlocks R -> R/2 -> ... -> 4,
  i.e. a smaller image drops the first (highest-resolution) blocks and keeps the 4x4 bottleneck.
- Decoder, output of the StyleBlock at resolution r: 8:512, 16:512, 32:512, 64:256, 128:128, 256:64, 512:32.
  Its input is the encoder's 4x4 map; it runs 8 -> ... -> R, so a smaller image drops the last blocks.
- Skip nodes 8, 16, 32, 64, 128, 256, counted from 8x8 (:func:`skip_nodes`, the one home of the rule;
  params.yaml's checks ask it). At 512 px these are
  ResBlock outputs. Smaller images keep the nodes 8..64 (spec section 1): below 512 px the node at the input
  resolution R is the first ResBlock's full-size feature (its first conv, before the stride): 4 nodes
  (8, 16, 32, 64) at 64 px, 2 (8, 16) at 16 px.
  ``skips`` = n takes the first n nodes; n larger than the nodes available is a ConfigError (clamping would
  silently turn different ablation arms into the same network).
- ``width`` multiplies every channel count (rounded, at least ``min_channels``); the image keeps 3 channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from faceres.core.errors import ConfigError

IMAGE_CHANNELS = 3
MIN_RESOLUTION = 16
MAX_RESOLUTION = 512
BOTTLENECK_RESOLUTION = 4
ENCODER_CHANNELS = {256: 32, 128: 64, 64: 128, 32: 256, 16: 512, 8: 512, 4: 512}
DECODER_CHANNELS = {8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32}
SKIP_MODES = ("add", "concat")
DEFAULT_SKIPS = 4
MAX_SKIPS = 6  # paper: skip nodes at 8, 16, 32, 64, 128, 256 px for 512 px images
MBSTD_GROUP = 4  # the discriminator's minibatch-std group (ModelConfig.mbstd_group_size; the per-process batch's unit)


def skip_nodes(resolution: int) -> list[int]:
    """Resolutions of the encoder->decoder skip nodes at an image resolution: 8 .. min(resolution, 256).

    At 512 px these are the paper's six nodes (8..256). Smaller images drop the first layers but keep the
    nodes 8..64 (spec section 1), so at resolution <= 256 the finest node is the full-resolution feature
    of the encoder's first (size-keeping) convolution: 64 px images have four nodes, 8..64.
    """
    finest = min(resolution, 2 ** (MAX_SKIPS + 2))
    return [2**e for e in range(3, int(math.log2(finest)) + 1)]


def skips_allowed(resolution: int) -> str:
    """The one wording of the skips rule (config, model constructor, arms that cannot run)."""
    nodes = skip_nodes(resolution)
    return (f"0..{len(nodes)} at resolution {resolution} (skip nodes {nodes[0]}..{nodes[-1]} px; "
            f"skips {MAX_SKIPS} needs resolution >= {2 ** (MAX_SKIPS + 2)})")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_int(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an integer (not a bool) in low..high, else raise a ConfigError naming it."""
    if not _is_int(value) or not low <= value <= high:
        raise ConfigError(f"{name} = {value!r}: allowed: an integer in {low}..{high}")
    return value


def require_number(name: str, value: object, low_exclusive: float, high: float) -> float:
    """Return ``value`` as float if it is a real number in (low_exclusive, high], else raise a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low_exclusive < value <= high:
        raise ConfigError(f"{name} = {value!r}: allowed: a number in ({low_exclusive}, {high}]")
    return float(value)


def validate_resolution(resolution: object) -> int:
    allowed = [2**k for k in range(int(math.log2(MIN_RESOLUTION)), int(math.log2(MAX_RESOLUTION)) + 1)]
    if not _is_int(resolution) or resolution not in allowed:
        raise ConfigError(f"resolution = {resolution!r}: allowed: one of {allowed}")
    return resolution


def skip_nodes_at(resolution: int) -> tuple[int, ...]:
    """The skip nodes that exist for an input of ``resolution`` px (8 .. min(resolution, 256))."""
    return tuple(skip_nodes(validate_resolution(resolution)))


def validate_skips(skips: object, resolution: int) -> int:
    available = len(skip_nodes_at(resolution))
    if not _is_int(skips) or not 0 <= skips <= available:
        raise ConfigError(f"skips = {skips!r}: allowed: {skips_allowed(resolution)}")
    return skips


def validate_skip_mode(skip_mode: object) -> str:
    if skip_mode not in SKIP_MODES:
        raise ConfigError(f"skip_mode = {skip_mode!r}: allowed: one of {list(SKIP_MODES)}")
    return skip_mode  # type: ignore[return-value]


@dataclass(frozen=True)
class Architecture:
    """Channel counts of one (resolution, width) instance of the network. Validated on construction."""

    resolution: int = 512
    width: float = 1.0
    min_channels: int = 16

    def __post_init__(self) -> None:
        validate_resolution(self.resolution)
        require_number("width", self.width, 0.0, 4.0)
        require_int("min_channels", self.min_channels, 1, 512)

    def scaled(self, channels: int) -> int:
        return max(self.min_channels, int(round(channels * self.width)))

    @property
    def encoder_resolutions(self) -> tuple[int, ...]:
        """Input resolution of each encoder ResBlock, highest first (R, R/2, ..., 8)."""
        return tuple(self.resolution >> k for k in range(int(math.log2(self.resolution // BOTTLENECK_RESOLUTION))))

    @property
    def decoder_resolutions(self) -> tuple[int, ...]:
        """Output resolution of each decoder StyleBlock, lowest first (8, 16, ..., R)."""
        return tuple(reversed(self.encoder_resolutions))

    def encoder_channels(self, resolution: int) -> int:
        """Channels of the encoder feature map at ``resolution`` (3 for the input image itself)."""
        if resolution == self.resolution:
            return IMAGE_CHANNELS
        return self.scaled(ENCODER_CHANNELS[resolution])

    def skip_channels(self, resolution: int) -> int:
        """Channels of the encoder feature a skip takes at ``resolution``: at the input resolution that is the
        first ResBlock's full-size hidden feature, elsewhere the ResBlock output."""
        if resolution == self.resolution:
            return self.scaled(ENCODER_CHANNELS[resolution // 2])
        return self.encoder_channels(resolution)

    def decoder_channels(self, resolution: int) -> int:
        """Channels of the decoder feature map at ``resolution``; at 4x4 that is the encoder's bottleneck."""
        if resolution == BOTTLENECK_RESOLUTION:
            return self.bottleneck_channels
        return self.scaled(DECODER_CHANNELS[resolution])

    @property
    def bottleneck_channels(self) -> int:
        return self.scaled(ENCODER_CHANNELS[BOTTLENECK_RESOLUTION])

    @property
    def skip_nodes(self) -> tuple[int, ...]:
        return skip_nodes_at(self.resolution)
