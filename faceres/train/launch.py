"""Start training under torchrun when the profile asks for GPUs (one process per GPU, NCCL).

`faceres train ARM` (and the DVC stage) re-executes itself as
``python -m torch.distributed.run --nproc_per_node <gpus> [$FACERES_TORCHRUN_ARGS] -m faceres.cli train ARM``
unless it already runs under torchrun. Multi-node: set FACERES_TORCHRUN_ARGS on every node, e.g.
``--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host0:29500`` (see README).
"""

from __future__ import annotations

import logging
import os
import shlex
import sys

from faceres.config import Config
from faceres.devices import check_gpus
from faceres.errors import ConfigError

log = logging.getLogger(__name__)

TORCHRUN_ARGS_ENV = "FACERES_TORCHRUN_ARGS"


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def planned_processes(config: Config) -> int:
    """How many training processes the profile starts: its gpus on each of --nnodes nodes (FACERES_TORCHRUN_ARGS),
    or 1 on the CPU. An elastic range --nnodes MIN:MAX counts as MAX."""
    if config.scale.gpus == 0:
        return 1
    args = shlex.split(os.environ.get(TORCHRUN_ARGS_ENV, ""))
    nodes = "1"
    for i, arg in enumerate(args):
        if arg == "--nnodes" and i + 1 < len(args):
            nodes = args[i + 1]
        elif arg.startswith("--nnodes="):
            nodes = arg.split("=", 1)[1]
    try:
        count = int(nodes.split(":")[-1])
    except ValueError:
        raise ConfigError(f"{TORCHRUN_ARGS_ENV}: --nnodes {nodes!r}: allowed: an integer or MIN:MAX") from None
    return config.scale.gpus * count


def torchrun_command(config: Config, cli_args: list[str]) -> list[str] | None:
    """The torchrun command line for this profile, or None to train in this process (CPU profile)."""
    gpus = config.scale.gpus
    if gpus == 0 or under_torchrun():
        return None
    check_gpus(config)
    extra = shlex.split(os.environ.get(TORCHRUN_ARGS_ENV, ""))
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus), *extra,
            "-m", "faceres.cli", *cli_args]


def relaunch_under_torchrun(config: Config, cli_args: list[str]) -> bool:
    """Replace this process by torchrun when the profile asks for GPUs; False when it trains here."""
    command = torchrun_command(config, cli_args)
    if command is None:
        return False
    log.info("train: launching %s", " ".join(shlex.quote(c) for c in command))
    os.execv(command[0], command)
    return True  # not reached
