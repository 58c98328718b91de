"""Start training under torchrun when the profile asks for GPUs (one process per GPU, NCCL), or on several nodes.

`faceres train ARM` (and the DVC stage) re-executes itself as
``python -m faceres.train.launch --nproc_per_node <gpus> [$FACERES_TORCHRUN_ARGS] -m faceres.pipeline.train ARM``
(torchrun, whose failure report is one line here: the processes' own one-line errors say why) unless it
already runs under torchrun. Several nodes: set FACERES_TORCHRUN_ARGS on every node, e.g.
``--nnodes 2 --rdzv_backend c10d --rdzv_endpoint host0:29500 --rdzv_id faceres-main`` (see README). On a CPU
profile (gpus: 0) FACERES_TORCHRUN_ARGS starts one gloo process per node; without it, training runs in this
process.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys

from faceres.config.schema import Config
from faceres.core.devices import check_gpus
from faceres.core.errors import ConfigError

log = logging.getLogger(__name__)

TORCHRUN_ARGS_ENV = "FACERES_TORCHRUN_ARGS"


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def processes_per_node(config: Config) -> int:
    return max(config.scale.gpus, 1)


def launches_torchrun(config: Config) -> bool:
    """Whether training starts torchrun: the profile asks for GPUs, or FACERES_TORCHRUN_ARGS is set (nodes)."""
    return config.scale.gpus > 0 or bool(os.environ.get(TORCHRUN_ARGS_ENV, "").strip())


def planned_processes(config: Config) -> int:
    """How many training processes the profile starts: its gpus (at least 1) on each of --nnodes nodes
    (FACERES_TORCHRUN_ARGS); 1 when training runs in this process. An elastic range --nnodes MIN:MAX counts as
    MAX."""
    if not launches_torchrun(config):
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
    return processes_per_node(config) * count


def torchrun_command(config: Config, cli_args: list[str]) -> list[str] | None:
    """The torchrun command line for this profile, re-executing the training stage's module with `cli_args`
    (``python -m faceres.pipeline.train ARM ...``), or None to train in this process (CPU profile, one node)."""
    if not launches_torchrun(config) or under_torchrun():
        return None
    check_gpus(config.scale.gpus, config.gpus_setting)
    extra = shlex.split(os.environ.get(TORCHRUN_ARGS_ENV, ""))
    return [sys.executable, "-m", "faceres.train.launch", "--nproc_per_node", str(processes_per_node(config)),
            *extra, "-m", "faceres.pipeline.train", *cli_args]


def relaunch_under_torchrun(command: list[str]) -> None:
    """Replace this process by the torchrun `command` (its exit status becomes this stage's)."""
    log.info("train: launching %s", " ".join(shlex.quote(c) for c in command))
    os.execv(command[0], command)


def torchrun(argv: list[str]) -> int:
    """torchrun (``python -m torch.distributed.run``) with `argv`; when training processes fail, one line that
    counts them instead of torchrun's traceback and report: the processes printed their own errors above."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    try:
        main(argv)
    except ChildFailedError as failed:
        codes = sorted({failure.exitcode for failure in failed.failures.values()})
        print(f"error: train: {len(failed.failures)} training process(es) on this node failed (exit status "
              f"{', '.join(map(str, codes))}); their messages are above", file=sys.stderr)
        return codes[-1] if codes and codes[-1] > 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(torchrun(sys.argv[1:]))
