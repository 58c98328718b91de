"""Full-reference pixel metrics: PSNR and SSIM on RGB images in the 0-255 range, computed in float64 by
scikit-image, with the conventions of BasicSR (the face-restoration community's evaluation code):

- optional border crop of ``crop_border`` pixels on every side, before anything else;
- optional luma-only evaluation: Y of ITU-R BT.601 YCbCr, range [16, 235] (BasicSR's ``to_y_channel``);
- SSIM: Wang et al. (2004), 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, population
  statistics, averaged over the 'valid' window positions and then over channels - scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)``.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from faceres.core.errors import DataError

DATA_RANGE = 255.0
SSIM_WINDOW = 11  # what skimage's Gaussian window spans at sigma 1.5: 2 * int(3.5 * 1.5 + 0.5) + 1
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
    if np.array_equal(a, b):  # skimage divides by a zero MSE (a RuntimeWarning) to reach the same inf
        return float("inf")
    return float(peak_signal_noise_ratio(b, a, data_range=DATA_RANGE))


def ssim(pred: np.ndarray, target: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Structural similarity of two RGB images in 0-255 (mean of the per-channel SSIM)."""
    _check_pair(pred, target)
    a, b = _prepare(pred, crop_border, y_channel), _prepare(target, crop_border, y_channel)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise DataError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {a.shape[0]}x{a.shape[1]}")
    return float(structural_similarity(a, b, gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
                                       data_range=DATA_RANGE, channel_axis=2, K1=SSIM_K1, K2=SSIM_K2))
