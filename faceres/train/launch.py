"""Start training under torchrun when the profile asks for GPUs (one process per GPU, NCCL).

`faceres train ARM` (and the DVC stage) re-executes itself as
``python -m torch.distributed.run --nproc_per_node <gpus> [$FACERES_TORCHRUN_ARGS] -m faceres.cli train ARM``
unless it already runs under torchrun. Multi-node: set FACERES_TORCHRUN_ARGS on every node, e.g.
``--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host0:29500`` (see README).
"""

from __future__ import annotations

import os
import shlex
import sys

import torch

from faceres.config import Config
from faceres.errors import ConfigError

TORCHRUN_ARGS_ENV = "FACERES_TORCHRUN_ARGS"


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def torchrun_command(config: Config, cli_args: list[str]) -> list[str] | None:
    """The torchrun command line for this profile, or None to train in this process (CPU profile)."""
    gpus = config.scale.gpus
    if gpus == 0 or under_torchrun():
        return None
    available = torch.cuda.device_count()
    if available < gpus:
        raise ConfigError(
            f"profiles.{config.profile}.gpus = {gpus}: this machine has {available} CUDA device(s); "
            f"allowed: at most {available} (or 0 for CPU)"
        )
    extra = shlex.split(os.environ.get(TORCHRUN_ARGS_ENV, ""))
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus), *extra,
            "-m", "faceres.cli", *cli_args]


def relaunch_under_torchrun(config: Config, cli_args: list[str]) -> bool:
    """Replace this process by torchrun when the profile asks for GPUs; False when it trains here."""
    command = torchrun_command(config, cli_args)
    if command is None:
        return False
    print("train: launching", " ".join(shlex.quote(c) for c in command), flush=True)
    os.execv(command[0], command)
    return True  # not reached
