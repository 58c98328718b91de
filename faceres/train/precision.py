"""Numeric precision of training, a profile setting (`profiles.<name>.precision`).

- ``fp32``: IEEE float32 everywhere. On CUDA this also turns off the TF32 convolutions cuDNN allows by default.
- ``tf32``: float32 tensors, but CUDA matmuls and cuDNN convolutions may round their inputs to TF32 (Ampere+).
- ``bf16``: TF32 as above, and the generator's and discriminator's forward passes run under bfloat16 autocast.

The VGG16 of the perceptual loss has its own switch, ``profiles.<name>.perceptual_precision``: it is 57% of a
cpu-profile step's FLOPs. On this project's CPU (AVX-512 BF16) bf16 with channels_last runs the generator's
forward + backward 1.7x faster than NCHW float32 (bench/README.md), hence ``auto`` in the CPU profiles.

Why bf16 and not fp16: bfloat16 keeps float32's exponent range, so no loss scaling is needed and neither
activations nor the R1 gradient penalty can overflow (stylegan2-ada-pytorch clamps its fp16 layers' outputs
for that reason). What stays float32 in every mode: the weights, Adam's moments and the EMA generator
(autocast casts copies, never the parameters); the online degradation (`apply_bfr_tensor` opts out of
autocast: blur kernels, JPEG tables); the generator's image path (each ToRGB output is cast to float32 and
summed over resolutions in float32, as stylegan2-ada keeps ``img``); network outputs before any loss; the
minibatch standard deviation, the demodulation coefficients, Gram matrices and every loss reduction.
Restoration and evaluation run in IEEE float32 with TF32 off on CUDA too (faceres.core.devices.float32_matmuls), so
reported metrics do not depend on the GPU or the training precision beyond the trained weights.

bf16 needs a GPU with native bfloat16: NVIDIA Ampere (A100, RTX 30xx) or later. On a V100 (the paper's GPUs)
bfloat16 is emulated and slow, and there is no fp16 path: set ``precision: fp32`` there. On a CPU, bf16 autocast
is only fast with AVX-512 BF16 / AMX. ``auto`` (both switches; the cpu and study profiles' value) picks bf16
where the training device has it natively and fp32 elsewhere (:func:`resolve_precisions`, applied once before a
run's fingerprint is taken: the resolved mode is part of it, so two machines that resolve differently train,
and cache, different runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from faceres.config.schema import Config, PrecisionMode
from faceres.core.errors import ConfigError
from faceres.core.devices import native_bf16


def resolve_precisions(config: Config, device: torch.device | None = None) -> Config:
    """`config` with the active profile's ``auto`` precisions replaced by what the training device runs
    natively: bf16 where it has bfloat16 arithmetic in hardware (:func:`faceres.core.devices.native_bf16`),
    else fp32. `device`: the training device; None: the profile's (CUDA when ``gpus`` > 0, else the CPU)."""
    scale = config.scale
    if "auto" not in (scale.precision, scale.perceptual_precision):
        return config
    device = device or torch.device("cuda" if scale.gpus > 0 else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"profiles.{config.profile}.precision = auto (or perceptual_precision): this machine has no CUDA device "
            f"to decide by; allowed here: bf16, tf32 or fp32")
    native = "bf16" if native_bf16(device) else "fp32"
    scale = dataclasses.replace(
        scale,
        precision=native if scale.precision == "auto" else scale.precision,
        perceptual_precision=native if scale.perceptual_precision == "auto" else scale.perceptual_precision,
    )
    return dataclasses.replace(config, profiles={**config.profiles, config.profile: scale})


@dataclass(frozen=True)
class Precision:
    mode: PrecisionMode  # validated with the rest of the config (faceres/config/schema.py), resolved (not auto)
    device: torch.device

    def __post_init__(self) -> None:
        assert self.mode != "auto", "resolve_precisions(config, device) first"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.mode == "bf16" else None

    def configure(self) -> None:
        """Process-wide TF32 switches (they only affect CUDA kernels)."""
        fp32_precision = "ieee" if self.mode == "fp32" else "tf32"
        torch.backends.cuda.matmul.fp32_precision = fp32_precision
        torch.backends.cudnn.conv.fp32_precision = fp32_precision

    def autocast(self) -> contextlib.AbstractContextManager:
        """The region in which network forward passes run at the training precision."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)
