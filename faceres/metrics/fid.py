"""FID, following pytorch-fid's chain: Inception activations -> (mu, sigma) -> Frechet distance.

The Inception network is pytorch-fid's; the Frechet distance is its formula, computed with symmetric
eigendecompositions instead of a general matrix square root (see :func:`frechet_distance`).

Statistics of an image set are cached on disk under a key made of the files' names and contents and the
Inception weights and the code that computes them, so the ground-truth statistics are computed once however many restorations are scored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from faceres.core import imports
from faceres.core.errors import DataError
from faceres.core.files import atomic_write, sha256_file
from faceres.metrics.images import ImageSource, inception_activations, resolve_images

log = logging.getLogger(__name__)

# Below the feature dimension the covariance is singular; FID is then biased and unstable.
MIN_RELIABLE_FID_IMAGES = 2048
_CACHE_FORMAT = "faceres-fid-stats-v1"
# The code that turns image files into cached statistics and features: loading, resizing and normalization
# (metrics/images.py), the statistics (here), the identity embedder and its alignment (metrics/identity.py),
# and everything they import (image decoding, the networks' construction in weights/). The digest of that
# import closure is part of every cache key: an edit anywhere in it recomputes.
FEATURE_CODE = ("faceres.metrics.images", "faceres.metrics.fid", "faceres.metrics.identity")
FEATURE_NEUTRAL = ("faceres.core.console", "faceres.core.errors", "faceres.core.cache")


class UnreliableMetricWarning(UserWarning):
    """A metric was computed on too few samples to be trusted."""


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of an image set's activations (pytorch-fid's ``mu``, ``sigma``)."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def activation_statistics(activations: np.ndarray, *, name: str = "image set") -> GaussianStats:
    """``np.mean`` and ``np.cov(rowvar=False)`` of N x dims activations, as pytorch-fid computes them."""
    activations = np.asarray(activations, dtype=np.float64)
    if activations.ndim != 2 or activations.shape[0] < 2:
        raise DataError(f"FID needs at least 2 images in {name}, got {activations.shape[0] if activations.ndim else 0}")
    return GaussianStats(mu=activations.mean(axis=0), sigma=np.cov(activations, rowvar=False), n=activations.shape[0])


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)), pytorch-fid's formula; warns below 2,048 images.

    pytorch-fid's ``calculate_frechet_distance`` takes the general matrix square root of S_a S_b (SciPy's
    Schur-based ``sqrtm``: 20-28 s for 2048 x 2048 on 2 cores, once per evaluated task). Only its trace enters
    the distance, and for covariances (symmetric PSD) S_a S_b is similar to the symmetric PSD matrix
    S_a^(1/2) S_b S_a^(1/2), so that trace is the sum of the square roots of that matrix's eigenvalues: two
    symmetric eigendecompositions, ~3 s. Same value (tested against pytorch-fid: 1e-14 relative with full-rank
    covariances, 1e-7 with singular ones, where pytorch-fid adds an eps offset); bench/fid_distance.py times both.
    """
    if a.mu.shape != b.mu.shape:
        raise DataError(f"FID statistics differ in dimension: {a.mu.shape[0]} vs {b.mu.shape[0]}")
    n = min(a.n, b.n)
    if n < MIN_RELIABLE_FID_IMAGES:
        message = (f"FID computed from {n} images, fewer than {MIN_RELIABLE_FID_IMAGES}: the covariance is singular "
                   "and the FID is biased upwards; compare it only with FIDs of equally many images")
        warnings.warn(message, UnreliableMetricWarning, stacklevel=2)  # Python shows it once per place: not logged too
    sigma_a, sigma_b = np.asarray(a.sigma, np.float64), np.asarray(b.sigma, np.float64)
    if not (np.isfinite(sigma_a).all() and np.isfinite(sigma_b).all()):
        raise DataError("FID could not be computed: non-finite covariance (degenerate activations?)")
    eigenvalues, eigenvectors = np.linalg.eigh((sigma_a + sigma_a.T) / 2)
    root_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T
    middle = root_a @ sigma_b @ root_a
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_covmean)


def content_key(paths: list[Path]) -> str:
    """Hash of an image set: the sorted (file name, file content) pairs; independent of the folder's location."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(f"{path.name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def model_key(model: nn.Module) -> str:
    """Hash of a network's parameters and buffers (names, dtypes, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def network_key(model: nn.Module) -> str:
    """What a network's outputs depend on, for cache keys: the ``cache_key`` its loader derived from the verified
    weights file (faceres.weights: the FID Inception), else a hash of its parameters and buffers (~0.1 s for the
    Inception, which an evaluate stage would otherwise pay three times per task)."""
    return getattr(model, "cache_key", None) or model_key(model)


def _cache_path(cache_dir: Path, paths: list[Path], model: nn.Module) -> Path:
    key = hashlib.sha256(f"{_CACHE_FORMAT}\0{content_key(paths)}\0{network_key(model)}\0{_code_key()}".encode())
    key = key.hexdigest()
    return cache_dir / f"{key[:40]}.npz"


def _read_cache(path: Path) -> GaussianStats | None:
    try:
        with np.load(path) as data:
            return GaussianStats(mu=data["mu"], sigma=data["sigma"], n=int(data["n"]))
    except (OSError, KeyError, ValueError) as error:
        log.warning("ignoring unreadable FID statistics cache %s (%s); recomputing", path, error)
        return None


def _code_key() -> str:
    return imports.code_digest(FEATURE_CODE, FEATURE_NEUTRAL)


def _atomic_savez(path: Path, **arrays) -> None:
    with atomic_write(path) as handle:  # concurrent evaluations never read half a file
        np.savez(handle, **arrays)


def image_set_statistics(
    images: ImageSource,
    model: nn.Module,
    *,
    cache_dir: str | os.PathLike | None = None,
    activations: np.ndarray | None = None,
    name: str | None = None,
    **loader_options,
) -> GaussianStats:
    """(mu, sigma) of an image set's Inception activations, from the cache when ``cache_dir`` holds them.

    ``activations``: already computed activations of exactly these images (skips the forward pass).
    ``loader_options``: batch_size, num_workers, device, progress (see ``inception_activations``).
    """
    paths = resolve_images(images)
    name = name or (str(images) if isinstance(images, (str, os.PathLike)) else f"{len(paths)} images")
    cache_file = _cache_path(Path(cache_dir), paths, model) if cache_dir is not None else None
    if cache_file is not None and cache_file.is_file():
        cached = _read_cache(cache_file)
        if cached is not None:
            log.info("FID statistics of %s read from %s", name, cache_file)
            return cached
    if activations is None:
        activations = inception_activations(paths, model, **loader_options)
    stats = activation_statistics(activations, name=name)
    if cache_file is not None:
        _atomic_savez(cache_file, mu=stats.mu, sigma=stats.sigma, n=stats.n)
    return stats


def fid_between(
    images_a: ImageSource,
    images_b: ImageSource,
    model: nn.Module,
    *,
    cache_dir: str | os.PathLike | None = None,
    **loader_options,
) -> float:
    """FID between two image sets (folders or path lists) with the given pytorch-fid ``InceptionV3``."""
    stats = [image_set_statistics(images, model, cache_dir=cache_dir, **loader_options) for images in (images_a, images_b)]
    return frechet_distance(*stats)


def cached_features(
    paths: list[Path], network_key: str | None, compute: Callable[[], np.ndarray], cache_dir: str | os.PathLike | None
) -> np.ndarray:
    """An image set's N x D features (rows in ``paths`` order), read from ``cache_dir`` when it holds them for
    these files' names and contents and this network (``network_key``), else computed and stored.

    Every evaluate stage scores its restorations against the same ground-truth test set; its Inception and
    identity features (~15 s per stage on 2 cores at 40 images) are computed once. No key or no cache dir: computed.
    """
    if cache_dir is None or network_key is None:
        return compute()
    key = hashlib.sha256(f"{_CACHE_FORMAT}-features\0{content_key(paths)}\0{network_key}\0{_code_key()}".encode())
    key = key.hexdigest()
    cache_file = Path(cache_dir) / f"features-{key[:40]}.npz"
    names = [p.name for p in paths]
    if cache_file.is_file():
        try:
            with np.load(cache_file) as data:
                rows = {name: i for i, name in enumerate(data["names"].tolist())}
                if set(rows) == set(names):
                    return data["features"][[rows[name] for name in names]]
        except (OSError, KeyError, ValueError) as error:
            log.warning("ignoring unreadable feature cache %s (%s); recomputing", cache_file, error)
    features = compute()
    _atomic_savez(cache_file, names=np.array(names), features=features)
    return features
