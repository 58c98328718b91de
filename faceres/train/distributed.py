"""Process-group set-up for `torchrun` (one process per GPU with NCCL, or CPU processes with gloo).

Gradients are averaged with explicit all-reduces (as stylegan2-ada-pytorch does) rather than a DDP wrapper:
the generator and discriminator steps toggle `requires_grad`, which DDP's reducer does not follow.
"""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from faceres.core.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(use_cuda: bool | None = None) -> DistContext:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK, ...)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda is None:
        use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(minutes=30),
        )
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def average_gradients(parameters: list[torch.nn.Parameter], ctx: DistContext) -> None:
    """Average the gradients of `parameters` over all ranks in one flattened all-reduce.

    Every rank must hold gradients for the same parameters (true here: all ranks run the same step), or the
    flat buffers would not line up. No overlap with the backward pass (stylegan2-ada does the same).
    """
    if not ctx.distributed:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The element-wise sum of a float tensor over all ranks (in place on multi-process runs)."""
    if ctx.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_object(value: Any, ctx: DistContext) -> Any:
    """Rank 0's `value` on every rank (a picklable object; other ranks' arguments are ignored)."""
    if not ctx.distributed:
        return value
    box = [value if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.device.type == "cuda" else None)
    return box[0]


def check_shared_directory(directory: Path, ctx: DistContext, env_name: str) -> None:
    """One-line error on every rank unless all ranks see the same `directory` (checkpoints are read by all).

    Rank 0 writes a token with a fresh nonce; every rank must read it back. On several nodes each with its own
    home directory the default cache differs per node, and a resumed run would start from step 0 on the nodes
    that see no checkpoint: a desync or a hang hours later.
    """
    if not ctx.distributed:
        return
    token = directory / ".shared-check"
    nonce = broadcast_object(secrets.token_hex(8), ctx)
    if ctx.is_main:
        directory.mkdir(parents=True, exist_ok=True)
        token.write_text(nonce)
    barrier(ctx)
    try:
        seen = token.read_text() == nonce
    except OSError:
        seen = False
    missing = torch.tensor([0.0 if seen else 1.0], device=ctx.device)
    dist.all_reduce(missing, op=dist.ReduceOp.SUM)
    if missing.item() > 0:
        raise ConfigError(
            f"{env_name} = {os.environ.get(env_name) or '(unset: ~/.cache/faceres)'}: {int(missing.item())} of "
            f"{ctx.world_size} training processes cannot see {directory}; allowed: a directory on storage every "
            f"node shares (set {env_name} on every node)"
        )


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
