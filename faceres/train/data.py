"""Training batches: which images each step sees, on each rank, and their online degradations.

Everything random is a pure function of (seed, step, position in the global batch): the epoch's permutation,
each image's degradation parameters and its adversarial-augmentation draws. So a resumed run sees exactly the
batches an uninterrupted one would, and N processes with per-rank batch b see the same images and degradations
as one process with batch N*b (rank r takes positions r, r+N, r+2N, ... of the global batch).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from faceres.config import BFRConfig
from faceres.data.prepare import read_manifest
from faceres.degrade.sampling import OnlineBFRParams, sample_online
from faceres.errors import DataError
from faceres.imageio import read_rgb


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from its parts, stable across machines and Python versions."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seeded(*parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(derived_seed(*parts))
    return generator


class FaceImages(Dataset):
    """The prepared images of one split as (index, uint8 (3, H, W)) pairs."""

    def __init__(self, data_dir: str | Path, split: str = "train"):
        self.data_dir = Path(data_dir)
        self.manifest = read_manifest(self.data_dir, split)
        if self.manifest.empty:
            raise DataError(f"{self.data_dir}: no usable {split} images in the manifest")

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        pixels = read_rgb(self.data_dir / self.manifest["file"].iloc[index])
        return index, torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def digest(self) -> str:
        """sha256 of the manifest rows and image bytes: part of a training run's fingerprint."""
        digest = hashlib.sha256()
        for row in self.manifest.itertuples():
            digest.update(f"{row.image_id}|{row.identity}|".encode())
            digest.update((self.data_dir / row.file).read_bytes())
        return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """Which dataset indices a step uses: a seeded permutation per epoch, cut into global batches."""

    num_images: int
    global_batch: int
    seed: int

    def __post_init__(self) -> None:
        if self.num_images < self.global_batch:
            raise DataError(
                f"{self.num_images} training images are fewer than one global batch of {self.global_batch}; "
                "lower profiles.<profile>.batch or add images"
            )

    @property
    def steps_per_epoch(self) -> int:
        return self.num_images // self.global_batch  # the last partial batch is dropped, as DDP does

    def global_indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.steps_per_epoch)
        permutation = torch.randperm(self.num_images, generator=seeded("epoch", self.seed, epoch))
        return permutation[position * self.global_batch : (position + 1) * self.global_batch]

    def rank_positions(self, rank: int, world_size: int) -> list[int]:
        return list(range(rank, self.global_batch, world_size))


class StepBatchSampler(Sampler[list[int]]):
    """Yields each step's dataset indices for one rank, from `start_step` on (resume-aware)."""

    def __init__(self, plan: StepPlan, start_step: int, total_steps: int, rank: int, world_size: int):
        self.plan, self.start_step, self.total_steps = plan, start_step, total_steps
        self.positions = plan.rank_positions(rank, world_size)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            indices = self.plan.global_indices(step)
            yield [int(indices[p]) for p in self.positions]

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)


def cat_params(parts: list[OnlineBFRParams]) -> OnlineBFRParams:
    """Concatenate per-image parameter batches (same kernel size and noise-field size)."""
    fields = {}
    for field in dataclasses.fields(OnlineBFRParams):
        values = [getattr(p, field.name) for p in parts]
        fields[field.name] = values[0] if field.name == "kernel_size" else torch.cat(values)
    return OnlineBFRParams(**fields)


def step_degradations(
    cfg: BFRConfig, seed: int, step: int, positions: list[int], size: tuple[int, int]
) -> OnlineBFRParams:
    """Each image's degradation parameters, drawn from its own generator (seed, step, global position)."""
    return cat_params(
        [sample_online(cfg, 1, seeded("degrade", seed, step, position), size) for position in positions]
    )
