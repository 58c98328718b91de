"""The run cache: finished runs and checkpoints under ``$FACERES_CACHE/runs/<fingerprint>``.

A run's fingerprint (faceres.train.checkpoint) hashes its effective parameters, its training images, its
process count and the training code: an identical run is copied instead of trained again (another arm, an
earlier experiment, a job on another node), and an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from typing import Any

from faceres.arms import Arm
from faceres.config import Config, to_flat_dict
from faceres.models import ModelConfig
from faceres.paths import cache_root
from faceres.train.checkpoint import SUMMARY_FILE, fingerprint
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
    """Everything that determines the trained weights (the fingerprint's settings)."""
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


def run_key(config: Config, arm: Arm, dataset: FaceImages, processes: int) -> str:
    """The fingerprint of `arm`'s training with `processes` training processes (see checkpoint.py)."""
    return fingerprint(run_settings(config, arm, processes), dataset.digest())


def reuse_finished_run(arm: Arm, key: str, out_dir: Path) -> dict:
    """Copy the finished run `key` to out_dir; its summary, marked reused."""
    final_dir = run_directory(key) / "final"
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.copytree(final_dir, out_dir)
    summary = json.loads((out_dir / SUMMARY_FILE).read_text())
    log.info(f"train {arm.name}: identical run {key} already trained; reused its result")
    return summary | {"reused": True}


def finished_run(config: Config, arm: Arm, data_dir: str | Path, processes: int) -> tuple[str, bool]:
    """(the key of `arm`'s run with `processes` processes, whether that run is finished in the run cache): lets a
    head node without GPUs pick up arms trained elsewhere (README, "Arms in parallel") without launching anything."""
    key = run_key(config, arm, FaceImages(data_dir, "train"), processes)
    return key, (run_directory(key) / "final" / SUMMARY_FILE).is_file()
