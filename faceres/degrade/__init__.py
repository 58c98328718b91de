"""Synthetic degradation of aligned faces: replayable offline, batched and differentiable online.

Tasks (``faceres.config.TASKS``):

* ``bfr`` - GFPGAN-style blind degradation: Gaussian blur (isotropic, or anisotropic with probability
  ``anisotropic_prob``) -> downsample by ``scale`` -> Gaussian noise -> JPEG -> resize back.
* ``sr8`` / ``sr16`` - bicubic downsample by ``factor``; the model input is the LR upsampled back.

Offline (the ``degrade`` stage): :func:`degrade_batch` on uint8 batches, real libjpeg, one manifest row per
image; :func:`replay` re-creates any image bit-exactly from its row. Online (training and adversarial
augmentation): :func:`sample_online` -> :class:`OnlineBFRParams` tensors -> :func:`apply_bfr_tensor`
(differentiable JPEG), :func:`clamp_to_ranges` for the projection step of PGD.

Module map: ``ops`` (kernels, FFT blur, antialiased resize, noise), ``jpeg`` (real codec and torch model),
``sampling`` (seeds, draw order, records), ``pipeline`` (the pipelines).
"""

from faceres.degrade.jpeg import jpeg, jpeg_diff, jpeg_real_uint8, quant_tables
from faceres.degrade.ops import (
    add_noise,
    blur,
    blur_separable,
    gaussian_kernel_1d,
    gaussian_kernels,
    resize,
    scaled_size,
    to_float,
    to_uint8,
)
from faceres.degrade.pipeline import apply_bfr, apply_bfr_tensor, apply_sr, bfr_kernel, degrade_batch, replay
from faceres.degrade.sampling import (
    BFR_UNIFORMS,
    DEGRADE_VERSION,
    MANIFEST_FIELDS,
    BFRParams,
    OnlineBFRParams,
    SRParams,
    clamp_to_ranges,
    image_seed,
    make_generator,
    params_from_row,
    sample_bfr,
    sample_online,
    sr_params,
)

__all__ = [
    "BFR_UNIFORMS",
    "DEGRADE_VERSION",
    "MANIFEST_FIELDS",
    "BFRParams",
    "OnlineBFRParams",
    "SRParams",
    "add_noise",
    "apply_bfr",
    "apply_bfr_tensor",
    "apply_sr",
    "bfr_kernel",
    "blur",
    "blur_separable",
    "clamp_to_ranges",
    "degrade_batch",
    "gaussian_kernel_1d",
    "gaussian_kernels",
    "image_seed",
    "jpeg",
    "jpeg_diff",
    "jpeg_real_uint8",
    "make_generator",
    "params_from_row",
    "quant_tables",
    "replay",
    "resize",
    "sample_bfr",
    "sample_online",
    "scaled_size",
    "sr_params",
    "to_float",
    "to_uint8",
]
