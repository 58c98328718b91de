"""Image folders for evaluation: listing, pairing restorations with ground truth, batched loading, features.

Every unreadable image becomes a one-line :class:`DataError` naming the file, also when it is read in a
DataLoader worker (the worker returns the message instead of raising, so no traceback is wrapped around it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn.functional import adaptive_avg_pool2d
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from faceres.core.errors import ConfigError, DataError
from faceres.core.imageio import list_images, read_rgb

# dlib's face-recognition ResNet reads 150x150 aligned chips; used when the embedder does not say.
DEFAULT_IDENTITY_INPUT_SIZE = 150
_NAMES_SHOWN = 5

ImageSource = str | os.PathLike | Sequence[str | os.PathLike]


def resolve_images(images: ImageSource) -> list[Path]:
    """A folder's images, or the given list of paths as Paths."""
    if isinstance(images, (str, os.PathLike)):
        return list_images(images)
    paths = [Path(p) for p in images]
    if not paths:
        raise DataError("the list of images is empty")
    return paths


def _by_stem(paths: list[Path], folder: Path) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise DataError(f"{folder} holds two images named {path.stem!r} ({stems[path.stem].name}, {path.name})")
        stems[path.stem] = path
    return stems


def _shown(names: Sequence[str]) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > _NAMES_SHOWN else ""
    return ", ".join(names[:_NAMES_SHOWN]) + more


def pair_images(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """(name, restored, ground truth) triples matched by file name without extension, sorted by name.

    Restorations are often saved as PNG next to JPEG ground truth, hence the match ignores the extension.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    pred, gt = _by_stem(list_images(pred_dir), pred_dir), _by_stem(list_images(gt_dir), gt_dir)
    only_pred, only_gt = sorted(pred.keys() - gt.keys()), sorted(gt.keys() - pred.keys())
    if only_pred or only_gt:
        parts = []
        if only_pred:
            parts.append(f"{len(only_pred)} only in {pred_dir} ({_shown(only_pred)})")
        if only_gt:
            parts.append(f"{len(only_gt)} only in {gt_dir} ({_shown(only_gt)})")
        raise DataError(f"restored and ground-truth folders must hold the same image names: {'; '.join(parts)}")
    return [(name, pred[name], gt[name]) for name in sorted(pred)]


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """HxWx3 uint8 RGB array of an image file (grey and RGBA are converted, as pytorch-fid does)."""
    return read_rgb(path, convert=True)


class _LoadedFiles(Dataset):
    """Loads the files of item i (one path or a tuple of paths) and applies ``transform`` to their arrays.

    Items are (index, first path, result, error message); a failure is reported, not raised, so the main
    process can raise a clean DataError.
    """

    def __init__(self, items: Sequence[Path | tuple[Path, ...]], transform: Callable):
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        paths = item if isinstance(item, tuple) else (item,)
        try:
            arrays = [load_rgb(p) for p in paths]
        except DataError as error:
            return index, str(paths[0]), None, str(error)
        try:
            return index, str(paths[0]), self.transform(*arrays), None
        except DataError as error:
            return index, str(paths[0]), None, f"{' vs '.join(map(str, paths))}: {error}"


def _collate(samples):
    """Stacks a batch; returns (indices, batch) or raises DataError for unreadable or unequal-size images."""
    for _, _, _, error in samples:
        if error is not None:
            raise DataError(error)
    first_path, first = samples[0][1], samples[0][2]
    for _, path, result, _ in samples[1:]:
        for a, b in zip(_parts(first), _parts(result)):
            if tuple(np.shape(a)) != tuple(np.shape(b)):
                raise DataError(
                    f"{path} has shape {tuple(np.shape(b))} but {first_path} has {tuple(np.shape(a))}; "
                    "one set's images must share one size"
                )
    indices = [s[0] for s in samples]
    return indices, torch.utils.data.default_collate([s[2] for s in samples])


def _parts(value) -> list:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, tuple) else [value]


def iterate_batches(
    items: Sequence[Path | tuple[Path, ...]],
    transform: Callable,
    *,
    batch_size: int,
    num_workers: int = 0,
    desc: str = "images",
    progress: bool = True,
) -> Iterator[tuple[list[int], object]]:
    """Yields (item indices, collated ``transform`` outputs) in order, with a tqdm bar counting images."""
    if batch_size < 1 or num_workers < 0:
        raise ConfigError(f"batch_size = {batch_size}, num_workers = {num_workers}: allowed: batch_size >= 1, num_workers >= 0")
    dataset = _LoadedFiles(items, transform)
    # Workers only load; collation (which raises our errors) runs here, where a DataError stays one line
    # instead of being re-raised wrapped in a worker traceback.
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=list)
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress) as bar:
        for batch in loader:
            indices, data = _collate(batch)
            yield indices, data
            bar.update(len(indices))


def to_unit_tensor(image: np.ndarray) -> torch.Tensor:
    """3xHxW float32 in [0, 1] from HxWx3 uint8 (torchvision's ToTensor, which pytorch-fid uses)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


@torch.no_grad()
def inception_activations(
    images: ImageSource,
    model: nn.Module,
    *,
    batch_size: int = 50,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """N x dims float64 activations of pytorch-fid's ``InceptionV3`` (built with one output block).

    The model resizes to 299x299 itself (``resize_input``, pytorch-fid's own bilinear resize) and maps
    [0, 1] inputs to [-1, 1]; we feed [0, 1] tensors exactly as ``pytorch_fid.fid_score`` does.
    """
    paths = resolve_images(images)
    model = model.eval().to(device)
    out: np.ndarray | None = None
    for indices, batch in iterate_batches(paths, to_unit_tensor, batch_size=batch_size, num_workers=num_workers,
                                          desc="Inception features", progress=progress):
        pred = model(batch.to(device))
        pred = pred[0] if isinstance(pred, (list, tuple)) else pred
        if pred.ndim == 4 and pred.shape[2:] != (1, 1):
            pred = adaptive_avg_pool2d(pred, output_size=(1, 1))
        pred = pred.reshape(pred.shape[0], -1).cpu().numpy()
        if out is None:
            out = np.empty((len(paths), pred.shape[1]))
        out[indices] = pred
    return out


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 resized to size x size with PIL's antialiased bicubic filter (unchanged if already so)."""
    if image.shape[:2] == (size, size):
        return image
    return np.array(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


class _ResizeTo:
    """Picklable transform for DataLoader workers."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return resize_square(image, self.size)


def _over_identity_batches(paths: list[Path], size: int, apply: Callable, what: str, *, batch_size: int,
                           num_workers: int, progress: bool) -> np.ndarray:
    """N x D rows of ``apply(indices, N x S x S x 3 uint8 batch)`` over the images resized to ``size``."""
    out: np.ndarray | None = None
    for indices, batch in iterate_batches(paths, _ResizeTo(size), batch_size=batch_size, num_workers=num_workers,
                                          desc=what, progress=progress):
        rows = np.asarray(apply(indices, batch.numpy()), dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] != len(indices):
            raise DataError(f"the identity embedder returned shape {rows.shape} for a batch of {len(indices)} faces")
        if out is None:
            out = np.empty((len(paths), rows.shape[1]))
        out[indices] = rows
    return out


def _identity_size(embedder, input_size: int | None) -> int:
    return int(input_size or getattr(embedder, "input_size", None) or DEFAULT_IDENTITY_INPUT_SIZE)


def identity_landmarks(
    images: ImageSource,
    embedder,
    *,
    input_size: int | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """N x 11: the embedder's 5 landmarks (x, y) per face at its input size, and 1.0 where detection fell back.

    Found once on the ground truth, they cut the chips of every restoration of that image
    (:func:`identity_embeddings`' ``landmarks``)."""
    paths = resolve_images(images)
    return _over_identity_batches(paths, _identity_size(embedder, input_size), lambda _, batch: embedder.landmarks(batch),
                                  "face landmarks", batch_size=batch_size, num_workers=num_workers, progress=progress)


def identity_embeddings(
    images: ImageSource,
    embedder: Callable[..., np.ndarray],
    *,
    landmarks: np.ndarray | None = None,
    input_size: int | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """N x D float64 identity embeddings of aligned face crops.

    ``embedder`` maps an N x S x S x 3 uint8 batch to N x D features; S is ``input_size``, else the
    embedder's ``input_size`` attribute, else 150 (dlib's face chip). ``landmarks`` (N x 11, row i for image
    i, from :func:`identity_landmarks`) are passed on to cut the chips; None lets the embedder find its own.
    """
    paths = resolve_images(images)
    if landmarks is not None and landmarks.shape[0] != len(paths):
        raise DataError(f"{landmarks.shape[0]} landmark rows for {len(paths)} images")

    def apply(indices, batch):
        return embedder(batch) if landmarks is None else embedder(batch, landmarks[indices])

    return _over_identity_batches(paths, _identity_size(embedder, input_size), apply, "identity features",
                                  batch_size=batch_size, num_workers=num_workers, progress=progress)
