"""Build the networks from one typed, validated config; count parameters; print a model summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from faceres.core.errors import ConfigError
from faceres.models.architecture import (
    DEFAULT_SKIPS,
    MBSTD_GROUP,
    Architecture,
    require_int,
    require_number,
    validate_skip_mode,
    validate_skips,
)
from faceres.models.discriminator import Discriminator
from faceres.models.generator import Generator


@dataclass(frozen=True)
class ModelConfig:
    """Every architecture parameter of the generator and discriminator; validated on construction.

    resolution: image size, a power of two in 16..512.   skips: skip connections counted from 8x8.
    width: channel multiplier (channels = max(min_channels, round(width * table))).
    skip_mode: 'add' or 'concat'.   mapping_layers / mapping_lr_multiplier: the mapping MLP to the style w.
    mbstd_group_size / mbstd_num_channels: the discriminator's minibatch-stddev layer.
    """

    resolution: int = 512
    skips: int = DEFAULT_SKIPS
    width: float = 1.0
    min_channels: int = 16
    skip_mode: str = "add"
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    mbstd_group_size: int = MBSTD_GROUP
    mbstd_num_channels: int = 1

    def __post_init__(self) -> None:
        arch = self.architecture  # validates resolution, width, min_channels
        validate_skips(self.skips, arch.resolution)
        validate_skip_mode(self.skip_mode)
        require_int("mapping_layers", self.mapping_layers, 1, 8)
        require_number("mapping_lr_multiplier", self.mapping_lr_multiplier, 0.0, 1.0)
        require_int("mbstd_group_size", self.mbstd_group_size, 1, 1024)
        require_int("mbstd_num_channels", self.mbstd_num_channels, 1, 16)

    @property
    def architecture(self) -> Architecture:
        return Architecture(self.resolution, self.width, self.min_channels)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "model") -> ModelConfig:
        """Build from a params mapping; an unknown key is a ConfigError naming ``source`` and the key."""
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_generator(
    resolution: int, skips: int = DEFAULT_SKIPS, width: float = 1.0, *, seed: int = 0, **options: Any
) -> Generator:
    """The restoration generator; ``options`` are the other :class:`ModelConfig` fields."""
    return generator_from_config(ModelConfig(resolution=resolution, skips=skips, width=width, **options), seed=seed)


def build_discriminator(resolution: int, width: float = 1.0, *, seed: int = 0, **options: Any) -> Discriminator:
    """The discriminator; ``options`` are the other :class:`ModelConfig` fields (generator-only ones unused)."""
    config = ModelConfig(**{**options, "resolution": resolution, "width": width, "skips": 0})
    return discriminator_from_config(config, seed=seed)


def generator_from_config(config: ModelConfig, *, seed: int = 0) -> Generator:
    return Generator(
        config.architecture,
        config.skips,
        skip_mode=config.skip_mode,
        mapping_layers=config.mapping_layers,
        mapping_lr_multiplier=config.mapping_lr_multiplier,
        seed=seed,
    )


def discriminator_from_config(config: ModelConfig, *, seed: int = 0) -> Discriminator:
    return Discriminator(
        config.architecture,
        mbstd_group_size=config.mbstd_group_size,
        mbstd_num_channels=config.mbstd_num_channels,
        seed=seed,
    )


def build_models(config: ModelConfig, *, seed: int = 0) -> tuple[Generator, Discriminator]:
    """Generator and discriminator for ``config``; the discriminator is drawn from ``seed + 1``."""
    return generator_from_config(config, seed=seed), discriminator_from_config(config, seed=seed + 1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta_models(config: ModelConfig) -> tuple[Generator, Discriminator]:
    # Shapes only: the meta device allocates no memory and draws nothing.
    with torch.device("meta"):
        return generator_from_config(config), discriminator_from_config(config)


def parameter_counts(
    resolution: int = 512, width: float = 1.0, skips: int = DEFAULT_SKIPS, **options: Any
) -> dict[str, int]:
    """Parameter counts of the generator (and its parts) and the discriminator."""
    generator, discriminator = _meta_models(
        ModelConfig(resolution=resolution, width=width, skips=skips, **options)
    )
    skip_merges = sum(count_parameters(b.skip) for b in generator.decoder.blocks.values() if b.skip is not None)
    return {
        "generator": count_parameters(generator),
        "generator.encoder": count_parameters(generator.encoder),
        "generator.mapping": count_parameters(generator.mapping),
        "generator.decoder": count_parameters(generator.decoder),
        "generator.decoder.skip_merges": skip_merges,
        "discriminator": count_parameters(discriminator),
    }


def _shape(resolution: int, channels: int) -> str:
    return f"{resolution}x{resolution}x{channels}"


def model_summary(resolution: int = 512, width: float = 1.0, skips: int = DEFAULT_SKIPS, **options: Any) -> str:
    """A per-block table of output shapes and parameter counts of both networks (``faceres model-summary``)."""
    config = ModelConfig(resolution=resolution, width=width, skips=skips, **options)
    arch = config.architecture
    generator, discriminator = _meta_models(config)
    rows: list[tuple[str, str, str, int]] = []

    def trunk_rows(prefix: str, trunk: nn.Module) -> None:
        for block in trunk.blocks.values():
            res = block.resolution
            rows.append((f"{prefix}.b{res}", "ResBlock", _shape(res // 2, block.out_channels), count_parameters(block)))

    rows.append(("input", "image", _shape(arch.resolution, 3), 0))
    trunk_rows("encoder", generator.encoder.trunk)
    rows.append(("encoder.pool", "AttentionPooling", f"{arch.bottleneck_channels}", 0))
    rows.append(("mapping", f"{config.mapping_layers} x EqualizedLinear", f"{generator.w_dim}", count_parameters(generator.mapping)))
    for block in generator.decoder.blocks.values():
        res = block.resolution
        kind = "StyleBlock" + (f" + {block.skip.mode} skip" if block.skip is not None else "")
        rows.append((f"decoder.b{res}", kind, _shape(res, block.out_channels), count_parameters(block)))
    rows.append(("output", "ToRGB sum", _shape(arch.resolution, 3), 0))
    generator_rows = len(rows)
    trunk_rows("trunk", discriminator.trunk)
    epilogue = discriminator.epilogue
    rows.append(("epilogue", f"mbstd(group {config.mbstd_group_size}) + conv + fc", "1 logit", count_parameters(epilogue)))

    nodes = ",".join(str(r) for r in generator.skip_resolutions) or "none"
    lines = [
        f"faceres model: {arch.resolution} px, width {arch.width} (min {arch.min_channels} channels), "
        f"skips {config.skips} (nodes {nodes}, {config.skip_mode})",
        "",
        f"{'Generator':<18}{'layer':<30}{'output':>16}{'params':>14}",
    ]
    for index, (name, kind, shape, params) in enumerate(rows):
        if index == generator_rows:
            lines += [f"{'  total':<64}{count_parameters(generator):>14,}", "", f"{'Discriminator':<18}{'layer':<30}{'output':>16}{'params':>14}"]
        lines.append(f"  {name:<16}{kind:<30}{shape:>16}{params:>14,}")
    lines.append(f"{'  total':<64}{count_parameters(discriminator):>14,}")
    return "\n".join(lines)
