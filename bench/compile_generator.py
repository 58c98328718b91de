"""Does torch.compile pay on this CPU? The cpu profile's generator, forward + backward, eager vs compiled.

The generator is the main arm's, as the trainer builds it (params.yaml, cpu profile: 64 px, width 0.125), on a
batch of the profile's size with per-image noise keys, as a training step runs it. Printed: the eager median,
the compile time (inductor, default mode: the first call), the compiled median, their ratio, and the largest
output difference between the two (same weights and inputs).

Measured 2026-12-02 on this 2-core machine, quiet: eager 0.169 s, compile 599 s, compiled 0.221 s (0.77x the
eager speed), outputs equal to 5.5e-6. Ten minutes of compilation per process and a slower step: the training
step stays eager (bench/README.md).

    .venv/bin/python bench/compile_generator.py [--repeats 5] [--mode default|reduce-overhead|max-autotune]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mode", default="default", choices=("default", "reduce-overhead", "max-autotune"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from train_step import build_trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer, images = build_trainer({}, Path(tmp) / "data", torch.device("cpu"))
    generator, batch = trainer.G, images.shape[0]
    inputs = torch.randn(batch, 3, *images.shape[-2:], generator=torch.Generator().manual_seed(0))
    keys = torch.arange(batch, dtype=torch.int64) * 7919

    def timed(module, repeats: int) -> tuple[float, torch.Tensor]:
        seconds, out = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            out = module(inputs, noise_mode="random", noise_keys=keys)
            out.float().square().mean().backward()
            seconds.append(time.perf_counter() - start)
        return statistics.median(seconds), out.detach()

    timed(generator, 1)  # warm-up
    eager, eager_out = timed(generator, args.repeats)
    print(f"eager    fwd+bwd, batch {batch}: {eager:.3f} s (median of {args.repeats})", flush=True)
    compiled_generator = torch.compile(generator, mode=args.mode)
    start = time.perf_counter()
    timed(compiled_generator, 1)
    print(f"compile  (first call, mode {args.mode}): {time.perf_counter() - start:.0f} s", flush=True)
    compiled, compiled_out = timed(compiled_generator, args.repeats)
    print(f"compiled fwd+bwd, batch {batch}: {compiled:.3f} s = {eager / compiled:.2f}x eager's speed; "
          f"max |output difference| {float((eager_out - compiled_out).abs().max()):.2g}")


if __name__ == "__main__":
    main()
