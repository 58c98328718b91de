"""The generator file, models/<arm>/generator.pt: written by training, read by restoration; one format.

A dict loadable with ``weights_only=True``: ``format``, ``model_config`` (:class:`ModelConfig` as a dict, which
rebuilds the architecture), ``state_dict`` (the EMA or raw weights), plus what the trainer records about the run
(``ema``, ``arm``, ``fingerprint``, ``step``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from faceres.core.errors import FaceresError
from faceres.core.files import load_torch, save_torch
from faceres.models.generator import Generator
from faceres.models.build import ModelConfig, generator_from_config

GENERATOR_FORMAT = 1


def save_generator(path: str | Path, generator: nn.Module, model_config: ModelConfig, **run: object) -> None:
    save_torch({"format": GENERATOR_FORMAT, "model_config": model_config.to_dict(),
                "state_dict": generator.state_dict(), **run}, path)


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """A generator saved by :func:`save_generator`, in eval mode without gradients, on `device`."""
    state = load_torch(path, map_location=device)
    if "model_config" not in state or "state_dict" not in state:
        raise FaceresError(f"{path}: not a faceres generator file (expected keys model_config, state_dict)")
    generator = generator_from_config(ModelConfig(**state["model_config"]))
    generator.load_state_dict(state["state_dict"])
    return generator.to(device).eval().requires_grad_(False)
