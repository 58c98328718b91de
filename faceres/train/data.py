"""Training batches: which images each step sees, on each rank, and their online degradations.

Everything random is a pure function of (seed, step, position in the global batch): the epoch's permutation,
each image's degradation parameters and noise field, its adversarial-augmentation draws and the generator's
noise inputs. So a resumed run sees exactly the batches an uninterrupted one would, and N processes sharing
the global batch B see the same images and degradations as one process with batch B (rank r takes positions
r, r+N, r+2N, ... of the global batch).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from faceres.config.schema import BFRConfig, Config
from faceres.data.prepare import read_manifest
from faceres.degrade.sampling import OnlineBFRParams, sample_online
from faceres.core.errors import ConfigError, DataError
from faceres.core.imageio import read_rgb
from faceres.core.seeds import key_of
from faceres.core.streams import keys_for, uniform


def seeded(*parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator seeded with :func:`faceres.core.streams.key_of` of `parts` (host-side draws: permutations)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(key_of(*parts))
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


def step_degradations(
    cfg: BFRConfig, seed: int, step: int, positions: torch.Tensor, size: tuple[int, int]
) -> OnlineBFRParams:
    """Each image's degradation parameters and noise field, drawn on `positions`' device from the image's own
    stream (seed, step, global position): no host work beyond one key, no transfer."""
    return sample_online(cfg, keys_for(key_of("degrade", seed, step), positions), size)


def mirrored(images: torch.Tensor, probability: float, seed: int, step: int, positions: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with ``probability``, drawn on the device per (seed, step, global position):
    the same images flip on any number of processes and on a replay."""
    if probability <= 0:
        return images
    flip = uniform(keys_for(key_of("hflip", seed, step), positions), 1, torch.float32)[:, 0] < probability
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def rank_batch(config: Config, world_size: int, group_size: int) -> int:
    """This process's share of the global batch ``profiles.<p>.batch``; a one-line error when it cannot be split."""
    batch, key = config.scale.batch, f"profiles.{config.profile}.batch"
    processes = max(world_size, 1)
    if batch % processes:
        raise ConfigError(
            f"{config.source_file}: {key} = {batch}: allowed: a global batch divisible by the {processes} "
            f"training processes (e.g. {processes * group_size})"
        )
    per_rank = batch // processes
    if per_rank % group_size:
        raise ConfigError(
            f"{config.source_file}: {key} = {batch}: {per_rank} per process over {processes} processes; allowed: "
            f"a per-process batch that is a multiple of the minibatch-std group of {group_size} (e.g. "
            f"{processes * group_size})"
        )
    return per_rank
