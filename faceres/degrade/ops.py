"""Differentiable image operations of the degradation model, in plain PyTorch.

Images are float tensors ``(B, C, H, W)`` in [0, 1]. Every op is device-agnostic and differentiable in the
image and in its continuous parameters (blur sigmas and angle, resize scale, noise level), so the online
adversarial augmentation can ascend them; the offline stage runs the very same code, one image at a time.

* :func:`gaussian_kernels` - isotropic / anisotropic (rotated) Gaussian kernels, BasicSR's convention.
* :func:`blur` - per-image kernels, reflect (``BORDER_REFLECT_101``) padding, as an FFT convolution: a
  41x41 kernel at 512 px is ~1700 MACs per pixel directly, a few FFT passes do it in O(log N).
  :func:`blur_separable` - the same for isotropic kernels as two banded matmul passes (faster on CPU).
* :func:`resize` - separable antialiased resampling (bilinear = triangle filter, bicubic = Keys a=-0.5,
  the filters of PIL and of ``F.interpolate(..., antialias=True)``) with an explicit, continuous scale
  factor: the output *size* is the rounded ``in / scale``, the sample positions and the filter width follow
  the scale itself, so the output is differentiable in the scale (:func:`resize_reference`).
* :func:`add_noise`, :func:`to_float`, :func:`to_uint8`.

Over 400 lines, one idea: the differentiable ops of the degradation model; blur and resize each come in the
form with host sizes (offline, one image) and the batched form with device-side sizes (training).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F

from faceres.core.errors import DataError

ResizeKind = Literal["bilinear", "bicubic"]
_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}  # filter half-width at scale 1


def check_images(images: torch.Tensor, name: str = "images", dtype: torch.dtype | None = None) -> None:
    """One-line DataError unless `images` is a (B, 3, H, W) tensor (of `dtype`, or floating if None)."""
    if not isinstance(images, torch.Tensor):
        raise DataError(f"{name}: expected a torch.Tensor of shape (B, 3, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise DataError(f"{name}: shape {tuple(images.shape)}: allowed: (B, 3, H, W) RGB batches")
    if dtype is not None and images.dtype != dtype:
        raise DataError(f"{name}: dtype {images.dtype}: allowed: {dtype}")
    if dtype is None and not images.is_floating_point():
        raise DataError(f"{name}: dtype {images.dtype}: allowed: a floating dtype with values in [0, 1]")


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]."""
    return images_uint8.to(torch.float32).div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8, rounding half to even after clamping (no gradient)."""
    return images.detach().mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


# --------------------------------------------------------------------------------------------------------
# Blur


def gaussian_kernels(
    sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, kernel_size: int
) -> torch.Tensor:
    """(B,) sigmas along the rotated axes and angle (radians) -> (B, k, k) kernels summing to 1.

    k(x, y) ~ exp(-0.5 [x y] S^-1 [x y]^T), S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T, x the
    column offset, y the row offset (BasicSR ``bivariate_Gaussian``). Isotropic = sigma_y == sigma_x.
    Computed in the parameters' dtype (pass float64 for an exactly reproducible kernel).
    """
    sigma_x, sigma_y, theta = torch.atleast_1d(sigma_x), torch.atleast_1d(sigma_y), torch.atleast_1d(theta)
    half = kernel_size // 2
    ax = torch.arange(-half, half + 1, dtype=sigma_x.dtype, device=sigma_x.device)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    inv_x, inv_y = 1.0 / sigma_x[:, None, None] ** 2, 1.0 / sigma_y[:, None, None] ** 2
    # coordinates along the kernel's own axes: u = R^T [x y]
    u = cos * xx + sin * yy
    v = -sin * xx + cos * yy
    quad = u * u * inv_x + v * v * inv_y
    # shift the exponent so its maximum is 0: tiny sigmas give a delta, not 0/0
    logits = -0.5 * quad
    logits = logits - logits.amax(dim=(-2, -1), keepdim=True).detach()
    kernel = torch.exp(logits)
    return kernel / kernel.sum(dim=(-2, -1), keepdim=True)


_FFT_RADICES = (2, 3, 5, 7)


@lru_cache(maxsize=None)
def fft_size(n: int) -> int:
    """The smallest integer >= n whose only prime factors are 2, 3, 5, 7 (fast for pocketfft / MKL)."""
    m = n
    while True:
        rest = m
        for p in _FFT_RADICES:
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


def _dft_tables(n: int, half: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos / sin of 2 pi u a / n for u in [0, n), a in [-half, half]: (n, 2 half + 1) each."""
    u = torch.arange(n, dtype=torch.float64)[:, None]
    a = torch.arange(-half, half + 1, dtype=torch.float64)[None, :]
    angle = 2.0 * torch.pi * torch.remainder(u * a, n) / n  # reduce first: exact arguments
    return torch.cos(angle).to(dtype=dtype, device=device), torch.sin(angle).to(dtype=dtype, device=device)


_dft_tables_cached = lru_cache(maxsize=32)(_dft_tables)


@lru_cache(maxsize=64)
def device_constant(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small constant table (nested tuples) as a tensor on `device`, made once: a fresh ``torch.tensor(...,
    device=cuda)`` per call would be a blocking host-to-device copy in the training step."""
    return torch.tensor(values, dtype=dtype, device=device)


def clear_device_caches() -> None:
    """Forget the per-device constants (tests that build them on fake devices call this afterwards)."""
    device_constant.cache_clear()
    _dft_tables_cached.cache_clear()


def kernel_spectrum(kernels: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
    """DFT (nh, nw) of centro-symmetric (B, k, k) kernels centred at the origin: real, (B, nh, nw).

    K[u, v] = sum_ab k[a, b] cos(2 pi (u a / nh + v b / nw)) = [C_h S_h] [k C_w^T; -k S_w^T] (the sine part of
    the DFT vanishes by symmetry): small matmuls instead of an FFT of a mostly-zero plane; differentiable.
    """
    half = kernels.shape[-1] // 2
    cos_h, sin_h = _dft_tables_cached(nh, half, kernels.dtype, kernels.device)
    cos_w, sin_w = _dft_tables_cached(nw, half, kernels.dtype, kernels.device)
    right = torch.cat([kernels @ cos_w.T, -(kernels @ sin_w.T)], dim=-2)  # (B, 2k, nw)
    return torch.cat([cos_h, sin_h], dim=-1) @ right


def blur(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image of the batch with its own kernel; same size, reflect (BORDER_REFLECT_101) padding.

    images (B, C, H, W); kernels (B, k, k) or (k, k) for all, odd k, centro-symmetric (k[-a, -b] = k[a, b],
    true of every Gaussian, unchecked here: a check would read the kernels back to the host every call;
    tests/test_degrade.py checks gaussian_kernels), so convolution = cv2.filter2D's correlation. Evaluated as an FFT convolution of
    size N >= H + k - 1: with the image reflect-padded by k // 2 the circular wrap-around never reaches the
    kept window, so the result is the exact linear convolution. Channel pairs ride in one complex FFT (real
    and imaginary parts blur independently under a real spectrum); an odd last channel takes a real FFT.
    """
    if kernels.ndim == 2:
        kernels = kernels[None]
    b, c, h, w = images.shape
    k = kernels.shape[-1]
    if kernels.ndim != 3 or kernels.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"blur kernels must be (B, k, k) with an odd k, got {tuple(kernels.shape)}")
    if kernels.shape[0] not in (1, b):
        raise ValueError(f"blur: {kernels.shape[0]} kernels for a batch of {b} images")
    pad = k // 2
    if pad >= min(h, w):
        raise DataError(f"blur: a {k}x{k} kernel needs images larger than {pad} px, got {h}x{w}")
    if pad == 0:
        return images * kernels.reshape(-1, 1, 1, 1).to(images.dtype)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    nh, nw = fft_size(h + 2 * pad), fft_size(w + 2 * pad)
    spectrum = kernel_spectrum(kernels.to(images.dtype), nh, nw)[:, None]
    crop = (..., slice(pad, pad + h), slice(pad, pad + w))
    out = []
    if c >= 2:
        pairs = torch.complex(padded[:, 0 : c - 1 : 2], padded[:, 1:c:2])  # channels (2i, 2i + 1)
        paired = torch.fft.ifft2(torch.fft.fft2(pairs, s=(nh, nw)) * spectrum)[crop]
        out.append(torch.stack([paired.real, paired.imag], dim=2).flatten(1, 2))
    if c % 2:
        half_spectrum = spectrum[..., : nw // 2 + 1]
        last = torch.fft.rfft2(padded[:, c - 1 :], s=(nh, nw)) * half_spectrum
        out.append(torch.fft.irfft2(last, s=(nh, nw))[crop])
    return torch.cat(out, dim=1) if len(out) > 1 else out[0]


def gaussian_kernel_1d(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B,) sigmas -> (B, k) normalized 1D Gaussians; the isotropic 2D kernel is their outer product."""
    sigma = torch.atleast_1d(sigma)
    half = kernel_size // 2
    ax = torch.arange(-half, half + 1, dtype=sigma.dtype, device=sigma.device)
    kernel = torch.exp(-0.5 * (ax / sigma[:, None]) ** 2)
    return kernel / kernel.sum(dim=-1, keepdim=True)


_BAND_ROWS = 16  # output rows per banded block (measured fastest on CPU for k = 11..41)


def _banded_rows(x: torch.Tensor, band: torch.Tensor, out_rows: int) -> torch.Tensor:
    """x (R, N) -> (out_rows, N): row i = sum_t g[t] x[i + t], as block-Toeplitz matmuls.

    `band` is the (b, b + k - 1) Toeplitz block; the overlapping row windows are strided views, not copies.
    """
    x = x.contiguous()
    rows, cols = x.shape
    block, span = band.shape
    blocks = -(-out_rows // block)
    need = blocks * block + span - block
    if need > rows:
        x = torch.cat([x, x.new_zeros(need - rows, cols)])
    windows = x.as_strided((blocks, span, cols), (block * cols, cols, 1))
    return torch.matmul(band, windows).reshape(blocks * block, cols)[:out_rows]


def _toeplitz_block(kernel_1d: torch.Tensor, block: int) -> torch.Tensor:
    """(block, block + k - 1) with row i = the kernel placed at column i."""
    k = kernel_1d.shape[-1]
    device = kernel_1d.device
    index = torch.arange(block + k - 1, device=device)[None, :] - torch.arange(block, device=device)[:, None]
    inside = (index >= 0) & (index < k)
    return torch.where(inside, kernel_1d[index.clamp(0, k - 1)], kernel_1d.new_zeros(()))


def blur_separable(images: torch.Tensor, kernels_1d: torch.Tensor) -> torch.Tensor:
    """:func:`blur` with the separable kernels outer(g, g), g (B, k) or (k,) symmetric: a vertical then a
    horizontal 1D pass, each as block-Toeplitz matmuls (~5x faster than the FFT on CPU at 512 px, k = 41).
    """
    if kernels_1d.ndim == 1:
        kernels_1d = kernels_1d[None]
    b, c, h, w = images.shape
    k = kernels_1d.shape[-1]
    if kernels_1d.ndim != 2 or k % 2 == 0 or kernels_1d.shape[0] not in (1, b):
        raise ValueError(f"blur_separable: kernels (B, k), odd k, for {b} images; got {tuple(kernels_1d.shape)}")
    pad = k // 2
    if pad >= min(h, w):
        raise DataError(f"blur: a {k}x{k} kernel needs images larger than {pad} px, got {h}x{w}")
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    kernels_1d = kernels_1d.to(images.dtype)
    out = []
    for i in range(b):
        band = _toeplitz_block(kernels_1d[i if kernels_1d.shape[0] > 1 else 0], _BAND_ROWS)
        # the horizontal pass is the vertical one on the transpose (g is symmetric and shared by both)
        channels = [_banded_rows(_banded_rows(plane, band, h).T, band, w).T for plane in padded[i]]
        out.append(torch.stack(channels))
    return torch.stack(out)


# --------------------------------------------------------------------------------------------------------
# Resize


def _filter(kind: str, t: torch.Tensor) -> torch.Tensor:
    t = t.abs()
    if kind == "bilinear":
        return (1.0 - t).clamp(min=0.0)
    a = -0.5  # Keys cubic as in PIL and torch's antialiased bicubic
    t2, t3 = t * t, t * t * t
    near = (a + 2.0) * t3 - (a + 3.0) * t2 + 1.0
    far = a * t3 - 5.0 * a * t2 + 8.0 * a * t - 4.0 * a
    return torch.where(t < 1.0, near, torch.where(t < 2.0, far, torch.zeros_like(t)))


def resample_matrices(
    in_size: int,
    out_size: int,
    scale: torch.Tensor,
    kind: ResizeKind,
    in_extent: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image dense resampling matrices (B, out_size, in_size) in float64 for (B,) scales on their device.

    The filter of :func:`resize` (PIL's and ``F.interpolate(antialias=True)``'s): row i samples around c_i = (i + 0.5) *
    scale - 0.5 with the filter stretched by max(scale, 1), and is renormalized over the input pixels it
    reaches. `in_extent` (B,) limits image b's input to its first in_extent[b] pixels (an image in the top-left
    corner of a larger canvas); rows that reach no input pixel (canvas rows past the image) are zero. Sizes
    stay host values and the scales device data, so a batch of differently scaled images is one batched
    matmul with no host synchronisation, differentiable in the scales.
    """
    scale = scale.to(torch.float64).reshape(-1, 1, 1)
    device = scale.device
    centers = (torch.arange(out_size, dtype=torch.float64, device=device)[None, :, None] + 0.5) * scale - 0.5
    taps = torch.arange(in_size, dtype=torch.float64, device=device)[None, None, :]
    weights = _filter(kind, (taps - centers) / scale.clamp(min=1.0))
    if in_extent is not None:
        weights = torch.where(taps < in_extent.to(torch.float64).reshape(-1, 1, 1), weights, 0.0)
    return weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-300)


def resize_batched(
    images: torch.Tensor,
    size: tuple[int, int],
    scale: torch.Tensor,
    kind: ResizeKind = "bilinear",
    extent: tuple[torch.Tensor, torch.Tensor] | None = None,
    unchanged: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """:func:`resize` of (B, C, H, W) with one (B,) scale per image (input px per output px, on the images'
    device, may require grad) onto a fixed (h, w) grid; `extent` = (heights, widths) (B,) of each image's
    content in the top-left corner of its canvas (None: the whole image).

    `unchanged` = (B,) bools per axis: images whose content keeps its size along that axis are copied, not
    resampled, as torch's resize kernel (and so :func:`resize`) does whatever the scale when the sizes agree.
    """
    h_extent, w_extent = extent if extent is not None else (None, None)
    matrices = []
    for axis, (size_in, size_out, limit) in enumerate(
        ((images.shape[-2], size[0], h_extent), (images.shape[-1], size[1], w_extent))
    ):
        weights = resample_matrices(size_in, size_out, scale, kind, limit)
        if unchanged is not None:
            copy = torch.eye(size_out, size_in, dtype=weights.dtype, device=weights.device)
            weights = torch.where(unchanged[axis].reshape(-1, 1, 1), copy, weights)
        matrices.append(weights.to(images.dtype))
    rows, cols = matrices
    return rows[:, None] @ images @ cols[:, None].transpose(-1, -2)


def replicate_beyond(images: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) with rows >= heights[b] and columns >= widths[b] replaced by image b's last valid row and
    column: edge replication of each image's top-left content, as libjpeg pads to whole blocks."""
    b, c, h, w = images.shape
    device = images.device
    rows = torch.minimum(torch.arange(h, device=device)[None], heights.reshape(-1, 1) - 1)
    cols = torch.minimum(torch.arange(w, device=device)[None], widths.reshape(-1, 1) - 1)
    images = images.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    return images.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def resize_reference(
    images: torch.Tensor, size: tuple[int, int], scale_y: torch.Tensor, scale_x: torch.Tensor, kind: ResizeKind
) -> torch.Tensor:
    """:func:`resize` written out with :func:`resample_matrices` (one matmul per axis), differentiable in the
    scales; slower than torch's kernel on CPU, so :func:`resize` only uses it for d/d(scale)."""
    rows = resample_matrices(images.shape[-2], size[0], scale_y.reshape(1), kind)[0].to(images.dtype)
    cols = resample_matrices(images.shape[-1], size[1], scale_x.reshape(1), kind)[0].to(images.dtype)
    return rows @ images @ cols.T


class _ScaleGradient(torch.autograd.Function):
    """Identity on the resized images that adds d(out)/d(scale), evaluated with :func:`resize_reference`."""

    @staticmethod
    def forward(ctx, resized, source, scale_y, scale_x, kind):
        ctx.save_for_backward(source, scale_y, scale_x)
        ctx.kind = kind
        return resized.view_as(resized)

    @staticmethod
    def backward(ctx, grad):
        source, scale_y, scale_x = ctx.saved_tensors
        with torch.enable_grad():
            sy, sx = scale_y.detach().requires_grad_(), scale_x.detach().requires_grad_()
            out = resize_reference(source, tuple(grad.shape[-2:]), sy, sx, ctx.kind)
            grad_y, grad_x = torch.autograd.grad(out, (sy, sx), grad)
        grad_y = grad_y if ctx.needs_input_grad[2] else None
        grad_x = grad_x if ctx.needs_input_grad[3] else None
        return grad, None, grad_y, grad_x, None


_AA_OPS = {"bilinear": torch.ops.aten._upsample_bilinear2d_aa, "bicubic": torch.ops.aten._upsample_bicubic2d_aa}


def resize(
    images: torch.Tensor,
    size: tuple[int, int],
    scale: torch.Tensor | float | tuple[float, float] | None = None,
    kind: ResizeKind = "bilinear",
) -> torch.Tensor:
    """Antialiased separable resize of (B, C, H, W) to `size` = (h, w).

    `scale`: input pixels per output pixel (> 1 shrinks): a float, an (sy, sx) pair or a 0-dim tensor, which
    may require grad; None = (H / h, W / w), i.e. exactly ``F.interpolate(size=size, antialias=True)``.
    The forward pass is torch's antialiased kernel with the given scales (the sample positions
    (i + 0.5) * scale - 0.5 and the filter width follow `scale`, the grid has `size` points); the gradient
    w.r.t. a scale tensor comes from :func:`resize_reference`, the same filter written in torch.
    """
    if kind not in _SUPPORT:
        raise ValueError(f"resize kind {kind!r}: allowed: {', '.join(_SUPPORT)}")
    h, w = int(size[0]), int(size[1])
    if scale is None:
        return _AA_OPS[kind](images, [h, w], False, None, None)
    sy, sx = scale if isinstance(scale, tuple) else (scale, scale)
    value_y = float(sy.detach()) if isinstance(sy, torch.Tensor) else float(sy)
    value_x = float(sx.detach()) if isinstance(sx, torch.Tensor) else float(sx)
    out = _AA_OPS[kind](images, [h, w], False, 1.0 / value_y, 1.0 / value_x)
    if any(isinstance(v, torch.Tensor) and v.requires_grad for v in (sy, sx)):
        as_tensor = lambda v: torch.as_tensor(v, dtype=torch.float64, device=images.device)  # noqa: E731
        out = _ScaleGradient.apply(out, images.detach(), as_tensor(sy), as_tensor(sx), kind)
    return out


def scaled_size(size: int, scale: float) -> int:
    """round(size / scale), at least 1 px (Python's round: half to even)."""
    return max(1, int(round(size / scale)))


# --------------------------------------------------------------------------------------------------------
# Noise


def add_noise(images: torch.Tensor, sigma_255: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """images + sigma/255 * noise; `noise` is a standard normal field of the images' shape (or broadcastable)."""
    sigma = torch.as_tensor(sigma_255, dtype=images.dtype, device=images.device)
    return images + (sigma / 255.0) * noise.to(device=images.device, dtype=images.dtype)
