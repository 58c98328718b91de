"""Networks of 'Rethinking Deep Face Restoration': the restoration generator and the discriminator.

Build them from a :class:`ModelConfig` (or :func:`build_generator` / :func:`build_discriminator`); images are
float tensors [N, 3, R, R] in [-1, 1].
"""

from faceres.models.architecture import SKIP_MODES, Architecture, skip_nodes_at
from faceres.models.discriminator import Discriminator
from faceres.models.generator import Generator
from faceres.models.layers import NOISE_MODES
from faceres.models.registry import (
    ModelConfig,
    build_discriminator,
    build_generator,
    build_models,
    count_parameters,
    discriminator_from_config,
    generator_from_config,
    model_summary,
    parameter_counts,
)

__all__ = [
    "NOISE_MODES",
    "SKIP_MODES",
    "Architecture",
    "Discriminator",
    "Generator",
    "ModelConfig",
    "build_discriminator",
    "build_generator",
    "build_models",
    "count_parameters",
    "discriminator_from_config",
    "generator_from_config",
    "model_summary",
    "parameter_counts",
    "skip_nodes_at",
]
