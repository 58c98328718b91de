"""Which device a stage runs on, moving host values there without a synchronisation, and the float32 regions.

``profiles.<name>.gpus > 0`` means CUDA for training (one process per GPU under torchrun), restoration and
evaluation; ``gpus: 0`` means the CPU even where CUDA exists. dlib's identity network always runs on the CPU
(dlib-bin is a CPU build).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

import torch

from faceres.core.errors import ConfigError


def check_gpus(wanted: int, setting: str) -> None:
    """One-line error, before any compute, when `wanted` GPUs (the value of `setting`, e.g. ``params.yaml:
    profiles.gpu.gpus``: :attr:`faceres.config.schema.Config.gpus_setting`) are more than this machine has."""
    if wanted == 0:
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available < wanted:
        raise ConfigError(
            f"{setting} = {wanted}: this machine has {available} CUDA device(s); allowed: at most {available} (0 = CPU)"
        )


def stage_device(wanted: int, setting: str) -> torch.device:
    """The device of a single-process stage (restore, evaluate): the first GPU when `wanted` > 0 (see check_gpus)."""
    check_gpus(wanted, setting)
    return torch.device("cuda" if wanted > 0 else "cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` does bfloat16 arithmetic in hardware: a CUDA GPU of compute capability 8.0 or later
    (Ampere+), or a CPU with AVX-512 BF16 or AMX-BF16 (read from /proc/cpuinfo: PyTorch exposes no such query;
    elsewhere False). Without it bf16 autocast is emulated, and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type != "cpu":
        return False
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    flags = next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(flags.split())


def host_tensor(values: list[int] | list[float], device: torch.device, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """`values` as a tensor on `device` by an asynchronous copy: the host does not wait for the device (CUDA
    stages a pageable source at once, with no device synchronisation; a few bytes need no pinned buffer)."""
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A region where autocast is off (float32 math under a bf16 training step); a no-op on device types
    without autocast (the meta device of the device-discipline tests)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


@contextlib.contextmanager
def float32_matmuls() -> Iterator[None]:
    """IEEE float32 matmuls and convolutions inside (TF32 off), the caller's setting restored after; also a
    decorator. The one TF32 API of faceres: PyTorch's per-backend ``fp32_precision`` switches, which
    :class:`faceres.train.precision.Precision` sets for training. (Mixing in the legacy
    ``torch.set_float32_matmul_precision`` / ``allow_tf32`` makes the legacy getters raise.) On CUDA, cuDNN's
    convolutions default to TF32: restoration, evaluation and the online degradation run inside this region so
    that reported numbers and the degradation's rounding do not depend on the GPU or the training precision."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved
