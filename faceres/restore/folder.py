"""Restoration: run a trained generator over a folder of degraded (or any aligned) face images.

Outputs keep the input file names (as PNG), so restored and ground-truth folders pair by name (inputs whose
names differ only in their extension, x.jpg and x.png, are written as x.jpg.png and x.png.png: no result
replaces another); the output folder may not be, or lie inside, the input folder (no input is overwritten,
:func:`check_out_apart`). Noise is
constant by default (deterministic); `noise_seeds` restores every input once per seed with random noise from
a stream keyed by (seed, image name), for the spread of the stochastic model (appendix C.2, Figure 10).
Restoration runs in batches on the generator's device (the profile's: ``profiles.<p>.gpus > 0`` -> CUDA), in
IEEE float32 (TF32 off, whatever the process set for training).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from faceres.core.devices import float32_matmuls, host_tensor
from faceres.core.errors import DataError
from faceres.core.imageio import list_images, read_rgb, write_png
from faceres.models.generator import Generator
from faceres.core.seeds import key_of


def output_stems(files: list[Path]) -> list[str]:
    """The output name (without .png) of each input: its stem, or its whole file name where stems collide
    (x.jpg and x.png -> x.jpg, x.png), so no two inputs of one folder write the same file."""
    names = [file.stem for file in files]
    while True:
        counts = Counter(names)
        repeated = [i for i, name in enumerate(names) if counts[name] > 1 and name != files[i].name]
        if not repeated:
            return names
        for i in repeated:  # file names are unique within a folder, so this ends with every name distinct
            names[i] = files[i].name


def check_out_apart(inputs: str | Path, out_dir: str | Path, also_writes: tuple[str, ...] = ()) -> None:
    """A DataError unless outputs cannot replace an input: `out_dir` is not the input folder (a folder `inputs`,
    or a photo's folder) and does not lie inside a folder `inputs`, and no subfolder `also_writes` of `out_dir`
    is the input folder. (Only a folder's own images are read, so an output folder below it is never read
    back; it is refused so that results never mix with the originals.)"""
    inputs, out_dir = Path(inputs), Path(out_dir)
    input_dir = (inputs if inputs.is_dir() else inputs.parent).resolve()
    out = out_dir.resolve()
    if out == input_dir or (inputs.is_dir() and input_dir in out.parents):
        where = "is" if out == input_dir else "is inside"
        raise DataError(f"output folder {out_dir} {where} the input folder {input_dir}; allowed: an output folder "
                        "outside it (restore never writes beside the originals, so none can be overwritten)")
    for sub in also_writes:
        if out / sub == input_dir:
            raise DataError(f"input {inputs}: restore writes its {sub} into that folder ({out_dir / sub}); "
                            "allowed: inputs outside it (choose another output folder)")


def _load_batch(files: list[Path], resolution: int) -> torch.Tensor:
    arrays = []
    for file in files:
        pixels = read_rgb(file)
        if pixels.shape[:2] != (resolution, resolution):
            raise DataError(
                f"{file}: {pixels.shape[1]}x{pixels.shape[0]} px; allowed: {resolution}x{resolution} "
                "(the generator's resolution; prepare the images at that size first)"
            )
        arrays.append(pixels.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays))


@torch.no_grad()
@float32_matmuls()  # IEEE float32 on CUDA too (cuDNN's convolutions default to TF32): metrics do not depend on it
def restore_pixels(generator: Generator, images: torch.Tensor, noise_seed: int | None = None,
                   names: list[str] | None = None) -> np.ndarray:
    """N x 3 x R x R uint8 (host) -> N x R x R x 3 uint8 restorations, one forward pass on the generator's
    device; `noise_seed` None = constant noise, else one noise stream per image keyed by (seed, its name)."""
    assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3, (images.dtype, images.shape)
    device = next(generator.parameters()).device
    inputs = images.to(device=device, dtype=torch.float32) / 127.5 - 1
    if noise_seed is None:
        outputs = generator(inputs, noise_mode="const")
    else:
        # One noise stream per image, keyed by (seed, file name): an image's sample does not depend on its
        # batch neighbours, and the batch is still one forward pass.
        assert names is not None and len(names) == len(images)
        keys = host_tensor([key_of("restore", noise_seed, name) for name in names], device)
        outputs = generator(inputs, noise_mode="random", noise_keys=keys)
    return ((outputs.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def restore_folder(
    generator: Generator,
    input_dir: str | Path,
    out_dir: str | Path,
    *,
    noise_seed: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> list[Path]:
    """Restore every image of `input_dir` into `out_dir/<stem>.png` (:func:`output_stems`); noise_seed None =
    constant noise."""
    files = list_images(input_dir)
    check_out_apart(input_dir, out_dir)
    out_dir = Path(out_dir)
    stems = dict(zip(files, output_stems(files)))
    resolution = generator.arch.resolution
    written = []
    batches = range(0, len(files), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"restore -> {out_dir}", unit="batch", leave=False)
    for start in batches:
        chunk = files[start : start + batch_size]
        pixels = restore_pixels(generator, _load_batch(chunk, resolution), noise_seed, [f.name for f in chunk])
        for file, image in zip(chunk, pixels):
            target = out_dir / f"{stems[file]}.png"
            write_png(target, image)
            written.append(target)
    return written


def restore_with_seeds(
    generator: Generator, input_dir: str | Path, out_dir: str | Path, noise_seeds: int, **kwargs
) -> dict[int, Path]:
    """`out_dir/seed<k>/` for k = 0..noise_seeds-1: one stochastic restoration of every input per seed."""
    folders = {}
    for seed in range(noise_seeds):
        folder = Path(out_dir) / f"seed{seed}"
        restore_folder(generator, input_dir, folder, noise_seed=seed, **kwargs)
        folders[seed] = folder
    return folders
