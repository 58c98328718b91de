"""Full-reference pixel metrics: PSNR and SSIM on RGB images in the 0-255 range, computed in float64.

Conventions follow BasicSR (the face-restoration community's evaluation code), which in turn matches
scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``:

- optional border crop of ``crop_border`` pixels on every side, before anything else;
- optional luma-only evaluation: Y of ITU-R BT.601 YCbCr, range [16, 235] (BasicSR's ``to_y_channel``);
- SSIM: Wang et al. (2004), 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, statistics over the
  'valid' window positions only, averaged over the SSIM map and then over channels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from faceres.errors import DataError

DATA_RANGE = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
# ITU-R BT.601 luma for RGB in [0, 255]: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
_BT601_Y = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma (range 16-235) of an HxWx3 RGB image in 0-255, as float64 HxWx1."""
    return (np.asarray(image, dtype=np.float64) @ _BT601_Y + 16.0)[..., None]


def _prepare(image: np.ndarray, crop_border: int, y_channel: bool) -> np.ndarray:
    """Float64 HxWxC view after the border crop and, if asked, the Y conversion."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise DataError(f"expected an HxWx3 (or HxW) image, got shape {image.shape}")
    if crop_border:
        if min(image.shape[:2]) <= 2 * crop_border:
            raise DataError(f"crop_border={crop_border} leaves nothing of a {image.shape[0]}x{image.shape[1]} image")
        image = image[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        if image.shape[2] != 3:
            raise DataError("y_channel=True needs RGB images (3 channels)")
        return rgb_to_y(image)
    return image.astype(np.float64)


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if np.shape(pred) != np.shape(target):
        raise DataError(f"image sizes differ: {np.shape(pred)} vs {np.shape(target)}; PSNR/SSIM need equal sizes")


def psnr(pred: np.ndarray, target: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB of two RGB images in 0-255; ``inf`` for identical images."""
    _check_pair(pred, target)
    a, b = _prepare(pred, crop_border, y_channel), _prepare(target, crop_border, y_channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(DATA_RANGE**2 / mse))


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps; SSIM's 2-D window is their outer product (separable)."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def _filter_valid(channel: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of an HxW float64 array with the window taps x taps."""
    rows = sliding_window_view(channel, taps.size, axis=0) @ taps
    return sliding_window_view(rows, taps.size, axis=1) @ taps


def _ssim_channel(a: np.ndarray, b: np.ndarray, taps: np.ndarray) -> float:
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    mu_a, mu_b = _filter_valid(a, taps), _filter_valid(b, taps)
    var_a = _filter_valid(a * a, taps) - mu_a**2
    var_b = _filter_valid(b * b, taps) - mu_b**2
    cov = _filter_valid(a * b, taps) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(pred: np.ndarray, target: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Structural similarity of two RGB images in 0-255 (mean of the per-channel SSIM)."""
    _check_pair(pred, target)
    a, b = _prepare(pred, crop_border, y_channel), _prepare(target, crop_border, y_channel)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise DataError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {a.shape[0]}x{a.shape[1]}")
    taps = gaussian_window_1d()
    return float(np.mean([_ssim_channel(a[..., c], b[..., c], taps) for c in range(a.shape[2])]))
