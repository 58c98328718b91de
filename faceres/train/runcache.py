"""The run cache: finished runs and checkpoints under ``$FACERES_CACHE/runs/<fingerprint>``.

A run's fingerprint (faceres.train.checkpoint) hashes its effective parameters, its training images, its
process count and the training code: an identical run is copied instead of trained again (another arm, an
earlier experiment, a job on another node), and an interrupted one resumes from its checkpoint.

The training images are the one costly part (every byte is read: ~30 GB for FFHQ at 512 px), so they are
hashed once per arm, by the process that looks the run up (:func:`finished_run`); the digest is handed on to
the training processes it launches (``faceres train --data-digest``), which only hash the cheap rest.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceres.config.arms import Arm
from faceres.config.schema import Config
from faceres.config.loader import to_flat_dict
from faceres.models.build import ModelConfig
from faceres.core.cache import cache_root
from faceres.core.files import atomic_directory
from faceres.train.checkpoint import fingerprint_inputs
from faceres.train.outputs import SUMMARY_FILE
from faceres.train.precision import resolve_precisions
from faceres.train.data import FaceImages

log = logging.getLogger(__name__)


def model_config(config: Config, arm: Arm) -> ModelConfig:
    return ModelConfig(
        resolution=config.resolution,
        skips=arm.skips,
        width=config.scale.width,
        skip_mode=config.train.skip_mode,
        mapping_lr_multiplier=config.train.mapping_lr_multiplier,
    )


def run_settings(config: Config, arm: Arm, world_size: int) -> dict[str, Any]:
    """Everything that determines the trained weights (the fingerprint's settings); `auto` precisions as the
    training device resolves them."""
    config = resolve_precisions(config)
    return {
        "arm": {"skips": arm.skips, "alpha": arm.alpha, "aug": arm.aug},
        "model": model_config(config, arm).to_dict(),
        "train": to_flat_dict(config.train),
        "bfr": to_flat_dict(config.degrade.bfr.at_resolution(config.resolution)),
        "batch": config.scale.batch,  # the global batch
        "epochs": config.scale.epochs,
        "r1_gamma": config.scale.r1_gamma,
        "deterministic": config.scale.deterministic,
        "precision": config.scale.precision,
        "perceptual_precision": config.scale.perceptual_precision,
        "channels_last": config.scale.channels_last,
        "world_size": world_size,
        "seed": config.seed,
    }


def run_directory(fingerprint_: str) -> Path:
    return cache_root() / "runs" / fingerprint_


@dataclass(frozen=True)
class RunIdentity:
    """A training run's fingerprint and what it hashed (stored in its checkpoints)."""

    key: str
    inputs: dict[str, Any]

    @property
    def data_digest(self) -> str:
        return self.inputs["data"]


def run_identity(config: Config, arm: Arm, data_digest: str, processes: int) -> RunIdentity:
    """`arm`'s training with `processes` training processes on the images of `data_digest` (see checkpoint.py)."""
    return RunIdentity(*fingerprint_inputs(run_settings(config, arm, processes), data_digest))


def copy_run(source: Path, out_dir: Path) -> None:
    """A finished run's files into out_dir, replacing it whole: a kill never leaves a partial copy."""
    with atomic_directory(out_dir) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / SUMMARY_FILE).read_text())


def reuse_finished_run(arm: Arm, key: str, out_dir: Path) -> dict:
    """Copy the finished run `key` to out_dir; its summary, marked reused."""
    copy_run(run_directory(key) / "final", out_dir)
    summary = read_summary(out_dir)
    log.info(f"train {arm.name}: identical run {key} already trained; reused its result")
    return summary | {"reused": True}


def finished_run(config: Config, arm: Arm, data_dir: str | Path, processes: int) -> tuple[RunIdentity, bool]:
    """(`arm`'s run with `processes` processes, whether that run is finished in the run cache): lets a head node
    without GPUs pick up arms trained elsewhere (README, "Arms in parallel") without launching anything. Hashes
    the training images: the one place that does, per arm and node."""
    identity = run_identity(config, arm, FaceImages(data_dir, "train").digest(), processes)
    return identity, is_finished(identity.key)


def is_finished(key: str) -> bool:
    return (run_directory(key) / "final" / SUMMARY_FILE).is_file()
