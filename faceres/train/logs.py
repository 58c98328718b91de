"""The logged values of a training run between two logs: summed on the device, read back once per window."""

from __future__ import annotations

import torch

from faceres.train.distributed import DistContext, reduce_sum


class LogWindow:
    """The logged values of the steps since the last log, summed on the device.

    The step returns 0-dim device tensors; adding them and testing them for finiteness are device ops, so
    the hot loop never waits for the GPU. :meth:`flush` (every ``log_every`` steps) reads everything back in
    one transfer, after one all-reduce over ranks that also carries the non-finite flag and rank 0's request
    for a timed checkpoint.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0
        self.first_bad = torch.full((), -1.0, dtype=torch.float64, device=self.device)  # first step with a NaN/inf

    def add(self, logs: dict[str, torch.Tensor | float], step: int) -> None:
        tensors = [v for v in logs.values() if isinstance(v, torch.Tensor)]
        if tensors:
            finite = torch.isfinite(torch.stack([t.float() for t in tensors])).all()
            self.first_bad = torch.where(finite | (self.first_bad >= 0), self.first_bad, float(step))
        for key, value in logs.items():
            value = value.detach().to(torch.float64) if isinstance(value, torch.Tensor) else float(value)
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1
        self.steps += 1

    def flush(self, ctx: DistContext, want_checkpoint: bool = False) -> tuple[dict[str, float], float, bool]:
        """(mean of each key over the window's steps and ranks, first non-finite step or -1, checkpoint wanted).

        Every rank must call it at the same step and have logged the same keys.
        """
        keys = sorted(self.sums)
        values = torch.stack(
            [torch.as_tensor(self.sums[k], dtype=torch.float64, device=self.device) / self.counts[k] for k in keys]
            + [(self.first_bad >= 0).to(torch.float64), torch.where(self.first_bad >= 0, self.first_bad, 0.0),
               torch.full((), float(want_checkpoint), dtype=torch.float64, device=self.device)]
        )
        values = reduce_sum(values, ctx).tolist()  # the one host synchronisation per window
        *means, bad_ranks, bad_step_sum, checkpoint_votes = values
        processes = max(ctx.world_size, 1)
        row = {k: v / processes for k, v in zip(keys, means)}
        first_bad = bad_step_sum / bad_ranks if bad_ranks else -1.0  # a rank's step (ranks step together)
        self._reset()
        return row, first_bad, checkpoint_votes > 0
