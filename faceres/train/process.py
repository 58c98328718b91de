"""Process-wide settings of a training process: precision switches, deterministic kernels or cuDNN autotuning,
and the allocator (``train_arm`` applies them; so does bench/train_step.py)."""

from __future__ import annotations

import ctypes
import os

import torch

from faceres.config.schema import Config
from faceres.train.distributed import DistContext
from faceres.train.precision import Precision


def configure_process(config: Config, ctx: DistContext) -> None:
    """Process-wide settings of a training run (``train_arm`` applies them; so does bench/train_step.py)."""
    Precision(config.scale.precision, ctx.device).configure()
    if config.scale.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=ctx.device.type != "cpu")
        # Deterministic mode also fills every new tensor with NaN, a guard against kernels that read memory
        # they never wrote; none of ours does (the weights are bit-identical without it), and the fill writes
        # every activation once more: ~3% of a CPU step.
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False
    else:
        # cuDNN picks the fastest kernels per shape (stylegan2-ada does the same); results then vary in the
        # last bits from run to run on a GPU
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
    retain_freed_memory()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def retain_freed_memory() -> bool:
    """On glibc, serve large tensors from the heap and keep freed memory in the process; False elsewhere.

    A step frees and re-allocates the same activations (tens of MB each at the cpu profile). By default glibc
    maps blocks above its mmap threshold (at most 32 MB) from the OS on every allocation and returns heap
    memory above its trim threshold, so the next write page-faults it back in: ~0.3-0.5 M page faults and
    1-1.5 s of system time per cpu-profile step (bench/train_step.py). The resident size then stays at the
    step's peak instead of shrinking between steps. Results are unchanged.
    """
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (AttributeError, OSError, ValueError):
        return False
    # glibc < 2.35 caps the mmap threshold at 32 MB (the call returns 0 above it)
    mapped = mallopt(_M_MMAP_THRESHOLD, 1 << 30) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    return bool(mapped and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
