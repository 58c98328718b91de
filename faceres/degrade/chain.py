"""The degradation pipelines: offline (uint8, real JPEG, replayable) and online (tensors, differentiable).

BFR, per image (GFPGAN's order):  blur -> downsample by `scale` (bilinear, antialiased) -> + noise ->
JPEG -> resize back (bilinear) to the original size. SR: downsample by `factor` (bicubic, antialiased) = the
LR image; the LR upsampled back (bicubic) = the model input at full size.

Offline (:func:`degrade_batch`, :func:`replay`): each image is processed on its own - one code path for a
batch, a single image and a replay, so the uint8 outputs are identical whatever the batch.
Online (:func:`apply_bfr_tensor`): parameter tensors, one batched FFT blur, then per image (sizes differ).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from faceres.config.schema import TASKS, BFRConfig, SRConfig, check_task
from faceres.degrade.jpeg import JpegMode, Rounding, check_quality, jpeg, jpeg_diff, jpeg_real_uint8
from faceres.degrade.ops import (
    add_noise,
    blur,
    blur_separable,
    check_images,
    gaussian_kernel_1d,
    gaussian_kernels,
    resize,
    resize_batched,
    scaled_size,
    to_float,
    to_uint8,
)
from faceres.degrade.sampling import (
    BFR_UNIFORMS,
    BFRParams,
    OnlineBFRParams,
    SRParams,
    image_seed,
    make_generator,
    params_from_row,
    sample_bfr,
    sr_params,
)
from faceres.core.devices import autocast_off, float32_matmuls
from faceres.core.errors import ConfigError, DataError

NoiseSource = Callable[[int, int], torch.Tensor]


def _degrade_tail(
    blurred: torch.Tensor,
    scale: torch.Tensor | float,
    noise_for: NoiseSource,
    noise_sigma: torch.Tensor | float,
    quality: torch.Tensor | float,
    jpeg_mode: JpegMode,
    rounding: Rounding = "ste",
) -> torch.Tensor:
    """One blurred image (1, 3, H, W) -> downsample, noise, JPEG, resize back.

    "diff": float in [0, 1], differentiable. "real": uint8, not differentiable.
    """
    height, width = blurred.shape[-2:]
    scale_value = float(scale.detach()) if isinstance(scale, torch.Tensor) else float(scale)
    size = (scaled_size(height, scale_value), scaled_size(width, scale_value))
    small = resize(blurred, size, scale, "bilinear")
    small = add_noise(small, noise_sigma, noise_for(*size)).clamp(0.0, 1.0)
    if jpeg_mode == "real":
        # the codec's 8-bit output is resized as 8-bit data (torch's uint8 kernel: CPU only, and fast)
        decoded = jpeg_real_uint8(to_uint8(small)[0].cpu(), int(round(float(quality))))
        return resize(decoded[None], (height, width), 1.0 / scale_value, "bilinear").to(blurred.device)
    small = jpeg(small, quality, jpeg_mode, rounding=rounding)
    return resize(small, (height, width), 1.0 / scale, "bilinear").clamp(0.0, 1.0)


def _as_float(images: torch.Tensor) -> torch.Tensor:
    return to_float(images) if images.dtype == torch.uint8 else images


def _kernel_1d(params: BFRParams) -> torch.Tensor:
    sigma = torch.tensor([params.sigma_x], dtype=torch.float64)
    return gaussian_kernel_1d(sigma, params.kernel_size)[0].to(torch.float32)


def bfr_kernel(params: BFRParams) -> torch.Tensor:
    """The (k, k) float32 blur kernel of one record, computed in float64 (reproducible to the bit).

    Isotropic kernels are outer(g, g) of the 1D Gaussian g that the separable blur applies.
    """
    if params.kernel == "iso":
        g = _kernel_1d(params)
        return torch.outer(g, g)
    as64 = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    kernel = gaussian_kernels(as64(params.sigma_x), as64(params.sigma_y), as64(params.theta), params.kernel_size)
    return kernel[0].to(torch.float32)


def _blur_record(image: torch.Tensor, params: BFRParams) -> torch.Tensor:
    """Isotropic: two separable passes with the 1D Gaussian; anisotropic: the FFT convolution."""
    if params.kernel == "iso":
        return blur_separable(image, _kernel_1d(params).to(image.device))
    return blur(image, bfr_kernel(params).to(image.device))


def apply_bfr(
    images: torch.Tensor,
    params_list: Sequence[BFRParams],
    noise_generators: Sequence[torch.Generator],
    jpeg: JpegMode = "real",
) -> torch.Tensor:
    """Degrade (B, 3, H, W) float images in [0, 1] with one record and one generator per image.

    Each generator must stand where :func:`sample_bfr` left it: the noise field is its next draw,
    ``torch.randn(3, lr_height, lr_width)`` (float32, CPU, then moved to the images' device).
    """
    check_images(images)
    if not len(params_list) == len(noise_generators) == images.shape[0]:
        raise ValueError(
            f"apply_bfr: {images.shape[0]} images, {len(params_list)} records, {len(noise_generators)} generators"
        )
    out = []
    for image, params, generator in zip(images, params_list, noise_generators):
        out.append(_as_float(_bfr_one(image[None], params, generator, jpeg)))
    return torch.cat(out)


def _bfr_one(image: torch.Tensor, params: BFRParams, generator: torch.Generator, jpeg_mode: JpegMode) -> torch.Tensor:
    height, width = image.shape[-2:]
    if (params.height, params.width) != (height, width):
        raise DataError(
            f"image {params.image_id}: {height}x{width} px but its record says {params.height}x{params.width}"
        )

    def noise_for(h: int, w: int) -> torch.Tensor:
        if (h, w) != (params.lr_height, params.lr_width):
            raise DataError(
                f"image {params.image_id}: low-resolution size {h}x{w} differs from its record's "
                f"{params.lr_height}x{params.lr_width}"
            )
        return torch.randn(3, h, w, generator=generator, dtype=torch.float32).to(image.device)

    blurred = _blur_record(image, params)
    return _degrade_tail(blurred, params.scale, noise_for, params.noise_sigma, params.jpeg_quality, jpeg_mode)


def apply_sr(images: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) float -> (LR (B, 3, H/f, W/f), LR upsampled back to (H, W)), bicubic both ways.

    Both are rounded to 8-bit levels (the LR is what an SR dataset stores; the model input is made from it).
    """
    height, width = images.shape[-2:]
    if height % factor or width % factor:
        raise DataError(f"sr: {height}x{width} px is not divisible by the factor {factor}")
    small = resize(images, (height // factor, width // factor), float(factor), "bicubic")
    small = to_float(to_uint8(small)).to(images.dtype)
    up = resize(small, (height, width), 1.0 / factor, "bicubic")
    return small, to_float(to_uint8(up)).to(images.dtype)


# --------------------------------------------------------------------------------------------------------
# Offline: uint8 in, uint8 out, manifest rows


def _check_task_cfg(task: str, task_cfg: BFRConfig | SRConfig) -> None:
    check_task(task)
    wanted = BFRConfig if task == "bfr" else SRConfig
    if not isinstance(task_cfg, wanted):
        raise ConfigError(f"degrade.{task}: got a {type(task_cfg).__name__}: allowed: a {wanted.__name__}")


def degrade_batch(
    images_uint8: torch.Tensor,
    image_ids: Sequence[str],
    task: str,
    task_cfg: BFRConfig | SRConfig,
    global_seed: int,
    resolution: int,
) -> tuple[torch.Tensor, list[torch.Tensor] | None, list[dict]]:
    """Degrade a batch of aligned faces for `task`; every image is replayable from its manifest row.

    images_uint8: (B, 3, resolution, resolution) uint8 RGB. `task_cfg` is the task's config as defined at
    512 px; bfr scales it with ``at_resolution(resolution)``. Returns the model inputs (B, 3, H, W) uint8, the
    SR low-resolution images (a list of (3, H/f, W/f) uint8; None for bfr) and one manifest row per image.
    """
    _check_task_cfg(task, task_cfg)
    check_images(images_uint8, "images_uint8", torch.uint8)
    ids = [str(i) for i in image_ids]
    if len(ids) != images_uint8.shape[0]:
        raise DataError(f"degrade: {images_uint8.shape[0]} images but {len(ids)} image ids")
    if len(set(ids)) != len(ids):
        raise DataError("degrade: image ids must be unique within a batch (each id seeds its own degradation)")
    height, width = images_uint8.shape[-2:]
    if (height, width) != (resolution, resolution):
        raise DataError(f"degrade: images are {height}x{width} px: allowed: {resolution}x{resolution} (resolution)")
    cfg = task_cfg.at_resolution(resolution) if isinstance(task_cfg, BFRConfig) else task_cfg
    records: list[BFRParams | SRParams] = []
    for image_id in ids:
        seed = image_seed(global_seed, task, image_id)
        if task == "bfr":
            records.append(sample_bfr(cfg, make_generator(seed), image_id=image_id, seed=seed, size=(height, width)))
        else:
            records.append(sr_params(task, cfg, image_id, seed, (height, width)))
    outputs = [_run(image, record) for image, record in zip(images_uint8, records)]
    inputs = torch.stack([model_input for model_input, _ in outputs]).contiguous()
    lrs = None if task == "bfr" else [lr.contiguous() for _, lr in outputs]
    return inputs, lrs, [record.to_row() for record in records]


def _run(image_uint8: torch.Tensor, record: BFRParams | SRParams) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One (3, H, W) uint8 image and its record -> (model input uint8, SR LR uint8 or None)."""
    image = to_float(image_uint8[None])
    if isinstance(record, SRParams):
        if (record.height, record.width) != tuple(image.shape[-2:]):
            raise DataError(
                f"image {record.image_id}: {tuple(image.shape[-2:])} px but its record says "
                f"{record.height}x{record.width}"
            )
        small, up = apply_sr(image, record.factor)
        return to_uint8(up)[0], to_uint8(small)[0]
    check_quality(record.jpeg_quality, f"image {record.image_id}: jpeg_quality")
    generator = make_generator(record.seed)
    torch.rand(BFR_UNIFORMS, generator=generator, dtype=torch.float64)  # the parameter draws precede the noise
    return _bfr_one(image, record, generator, "real")[0], None


def replay(row: dict, image_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Re-synthesize one image from its manifest row alone: (model input (3, H, W) uint8, SR LR or None).

    Bit-identical to what :func:`degrade_batch` produced for it (same torch build and CPU).
    """
    record = params_from_row(row)
    if image_uint8.ndim == 3:
        image_uint8 = image_uint8[None]
    check_images(image_uint8, f"image {record.image_id}", torch.uint8)
    if image_uint8.shape[0] != 1:
        raise DataError(f"replay: one image expected, got a batch of {image_uint8.shape[0]}")
    return _run(image_uint8[0], record)


# --------------------------------------------------------------------------------------------------------
# Online: parameter tensors, differentiable


def apply_bfr_tensor(
    images: torch.Tensor,
    params: OnlineBFRParams,
    jpeg: JpegMode = "diff",
    rounding: Rounding = "ste",
) -> torch.Tensor:
    """Degrade (B, 3, H, W) float images with a batch of parameter tensors; differentiable with "diff".

    Gradients reach the images and every continuous parameter (sigma_x, sigma_y, theta, scale, noise_sigma,
    jpeg_quality). The parameters must be on the images' device. Runs in true float32 whatever the caller set:
    outside autocast (blur kernels and JPEG tables must not be rounded to bfloat16) and with TF32 off (a TF32
    matmul keeps 10 mantissa bits, which flips the codec model's rounding decisions), both restored after.

    "diff" is batched and sync-free: each image's low-resolution size round(H / scale) is device data (PGD and
    the worst-of-K choice move the scale on the device), so every image is degraded on a fixed canvas as large
    as the smallest scale allows, with its content in the top-left corner (:func:`_degrade_canvas`). "real"
    (libjpeg on the CPU, not differentiable) goes image by image through the offline code and reads the
    parameters back to the host: for tests and comparisons, not for the training step.
    """
    with autocast_off(images.device.type), float32_matmuls():
        check_images(images)
        if len(params) != images.shape[0]:
            raise ValueError(f"apply_bfr_tensor: {images.shape[0]} images but {len(params)} parameter sets")
        if jpeg == "diff":
            return _degrade_canvas(images, params, rounding)
        return _degrade_each(images, params, jpeg, rounding)


def _blur_online(images: torch.Tensor, params: OnlineBFRParams) -> torch.Tensor:
    aniso = params.anisotropic
    sigma_x = params.sigma_x
    sigma_y = torch.where(aniso, params.sigma_y, sigma_x)
    theta = torch.where(aniso, params.theta, torch.zeros_like(sigma_x))
    kernels = gaussian_kernels(sigma_x, sigma_y, theta, params.kernel_size).to(images.dtype)
    return blur(images, kernels)


def _degrade_canvas(images: torch.Tensor, params: OnlineBFRParams, rounding: Rounding) -> torch.Tensor:
    """blur -> downsample -> noise -> JPEG -> resize back for the whole batch at once.

    Image b's low-resolution content is the top-left round(H / scale_b) x round(W / scale_b) of a canvas the
    size of the noise field (rounded up to whole 16x16 JPEG blocks); outside it the canvas replicates the
    content's edge, as libjpeg pads, and the resize back reads only the content. Same operations as the
    offline path image by image (tests/test_degrade.py compares them), with device-side sizes.
    """
    batch, _, height, width = images.shape
    noise = params.noise.to(images.dtype)
    canvas = (-(-noise.shape[-2] // 16) * 16, -(-noise.shape[-1] // 16) * 16)
    scale = params.scale
    with torch.no_grad():  # sizes are integers: no gradient through them (nor on the host path)
        scale64 = scale.detach().to(torch.float64)
        lr_h = torch.round(height / scale64).clamp(min=1).to(torch.int64)
        lr_w = torch.round(width / scale64).clamp(min=1).to(torch.int64)
    # A scale below the range the noise field was drawn for would not fit the canvas (its content is cut):
    # PGD projects with clamp_to_ranges; checking here would read the scales back to the host.
    assert noise.shape[0] == batch, f"apply_bfr_tensor: {noise.shape[0]} noise fields for {batch} images"
    unchanged = (lr_h == height, lr_w == width)  # a scale that rounds to the same size: no resampling
    small = resize_batched(_blur_online(images, params), canvas, scale, "bilinear", unchanged=unchanged)
    noise = F.pad(noise, (0, canvas[1] - noise.shape[-1], 0, canvas[0] - noise.shape[-2]))
    small = (small + (params.noise_sigma.to(images.dtype) / 255.0).reshape(-1, 1, 1, 1) * noise).clamp(0.0, 1.0)
    small = jpeg_diff(small, params.jpeg_quality, rounding=rounding, extent=(lr_h, lr_w))
    restored = resize_batched(small, (height, width), 1.0 / scale, "bilinear", extent=(lr_h, lr_w), unchanged=unchanged)
    return restored.clamp(0.0, 1.0)


def _degrade_each(images: torch.Tensor, params: OnlineBFRParams, jpeg: JpegMode, rounding: Rounding) -> torch.Tensor:
    """The offline code path, one image at a time, with the parameters read back to the host."""
    blurred = _blur_online(images, params)
    noise = params.noise.to(device=images.device, dtype=images.dtype)
    out = []
    for i in range(images.shape[0]):

        def noise_for(h: int, w: int, i: int = i) -> torch.Tensor:
            if h > noise.shape[-2] or w > noise.shape[-1]:
                raise ValueError(
                    f"apply_bfr_tensor: scale {float(params.scale[i].detach()):.4g} is below the range the noise "
                    "field was drawn for; project the parameters with clamp_to_ranges first"
                )
            return noise[i, :, :h, :w]

        degraded = _degrade_tail(
            blurred[i : i + 1], params.scale[i], noise_for, params.noise_sigma[i], params.jpeg_quality[i], jpeg,
            rounding,
        )
        out.append(_as_float(degraded).to(images.dtype))
    return torch.cat(out)


__all__ = ["TASKS", "apply_bfr", "apply_bfr_tensor", "apply_sr", "bfr_kernel", "degrade_batch", "replay"]
