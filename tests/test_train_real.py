"""A short training run on real faces (the shared CelebA sample) restores held-out images: their L1 to the
ground truth falls clearly below the degraded inputs' own L1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceres.arms import find_arm
from faceres.data.prepare import prepare_dataset, read_manifest
from faceres.degrade.pipeline import degrade_batch
from faceres.imageio import read_rgb
from faceres.restore import load_generator
from faceres.train.distributed import init_distributed
from faceres.train.loop import train_arm
from tests.conftest import small_config


@pytest.mark.slow
def test_short_training_on_celeba_beats_the_degraded_input(celeba, tmp_path, monkeypatch):
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    config = small_config(**{
        "skips": 4, "data.source": "folder", "data.folder.train_dir": str(celeba / "images"),
        "data.folder.identities_csv": str(celeba / "identities.csv"), "data.folder.limit": 400,
        "data.test_fraction": 0.1, "profiles.cpu.width": 0.125, "profiles.cpu.batch": 8,
        "profiles.cpu.epochs": 2, "alpha": 0.0, "aug": False, "train.perceptual_weight": 0.0,
        "train.style_weight": 0.0, "train.noise_mode": "none", "train.log_every": 5,
    })
    prepare_dataset(config, tmp_path / "data", progress=False)
    summary = train_arm(config, find_arm(config, "main"), tmp_path / "data", tmp_path / "model",
                        vgg_features=None, ctx=init_distributed(), progress=False)
    assert summary["steps"] >= 80

    test = read_manifest(tmp_path / "data", "test")
    gt = torch.stack([torch.from_numpy(read_rgb(tmp_path / "data" / f).transpose(2, 0, 1).copy()) for f in test["file"]])
    degraded, _, _ = degrade_batch(gt, list(test["image_id"]), "bfr", config.degrade.bfr, config.seed, 64)
    generator = load_generator(tmp_path / "model" / "generator.pt")
    with torch.no_grad():
        restored = generator(degraded.float() / 127.5 - 1, noise_mode="const").clamp(-1, 1)
    target = gt.float() / 127.5 - 1
    l1_degraded = float((degraded.float() / 127.5 - 1 - target).abs().mean())
    l1_restored = float((restored - target).abs().mean())
    curve = summary["final"]
    print(f"\nheld-out L1: degraded {l1_degraded:.4f} -> restored {l1_restored:.4f}; train L1 at end {curve['g_l1']:.4f}")
    assert l1_restored < 0.85 * l1_degraded
