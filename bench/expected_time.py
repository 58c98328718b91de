"""Expected training time of the `gpu` (1 GPU) and `paper` (8 GPUs) profiles: ESTIMATES until measured on GPUs.

The FLOPs of one training step per GPU are counted here, on the CPU, without computing anything: the
product's Trainer runs one step of the main arm on the `meta` device (shapes only) under
torch.utils.flop_counter's formulas (convolutions and matmuls, forward and backward: what dominates).
Adversarial augmentation is counted at its configured share of the batch (`train.augment.prob`), R1 at one
step in `r1_interval`. Time = FLOPs / an assumed sustained throughput per GPU, printed with the assumption:

    .venv/bin/python bench/expected_time.py [--tflops 94] [--images 70000]

--tflops: sustained bf16 TFLOP/s per GPU (default 94 = 30% of an A100's 312 dense bf16 peak; a small
per-GPU batch of a StyleGAN-like network rarely sustains more; bench/gpu_check.py measures the real share).
--images: training images per epoch (FFHQ: 70,000). Evaluation (restore + metrics) is small beside training
and is not included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from train_step import count_flops  # noqa: E402  (one FLOP counter for the benchmarks)


def step_flops(profile: str, r1: bool, hardened: bool) -> tuple[int, int]:
    """(FLOPs of one per-GPU training step, per-GPU batch) at `profile`, every image hardened or none."""
    import torchvision

    from faceres.config.arms import find_arm
    from faceres.config.schema import load_config
    from faceres.train.distributed import DistContext
    from faceres.train import loop
    from faceres.train.loop import Trainer

    config = load_config(REPO / "params.yaml", overrides={"profile": profile,
                                                          "train.augment.prob": 1.0 if hardened else 0.0,
                                                          # the meta device has no autocast; bf16 does not change FLOPs
                                                          f"profiles.{profile}.precision": "fp32"})
    processes = max(config.scale.gpus, 1)

    class Images:  # a stand-in dataset: the step gets its images as an argument
        def __len__(self):
            return config.scale.batch * 2

    ctx = DistContext(rank=0, world_size=processes, local_rank=0, device=torch.device("meta"))
    loop.average_gradients = lambda parameters, ctx: None  # rank 0 of N, no process group: all-reduces are no FLOPs
    vgg = torchvision.models.vgg16(weights=None).features.eval().requires_grad_(False)
    trainer = Trainer(config, find_arm(config, "main"), Images(), vgg, ctx)
    per_gpu = trainer.rank_batch
    images = torch.zeros(per_gpu, 3, config.resolution, config.resolution, dtype=torch.uint8)
    step = next(s for s in range(1, 1000) if trainer.r1.applies_at(s) == r1)
    return count_flops(trainer, images, step), per_gpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=94.0, help="assumed sustained TFLOP/s per GPU (bf16)")
    parser.add_argument("--images", type=int, default=70_000, help="training images per epoch (FFHQ: 70,000)")
    args = parser.parse_args()
    from faceres.config.schema import load_config

    print(f"ESTIMATES: FLOPs counted here on the meta device; {args.tflops:.0f} TFLOP/s sustained per GPU assumed; "
          f"{args.images:,} training images per epoch\n")
    print("| profile | GPUs | resolution, width | global / per-GPU batch | GFLOP per GPU-step | steps per arm | "
          "time per arm | 9 arms, one after another | 9 arms, one node each |")
    print("|---|---|---|---|---|---|---|---|---|")
    for profile in ("gpu", "paper"):
        config = load_config(REPO / "params.yaml", overrides={"profile": profile})
        scale = config.scale
        prob, interval = config.train.augment.prob, config.train.r1_interval
        plain, per_gpu = step_flops(profile, r1=False, hardened=False)
        hardened, _ = step_flops(profile, r1=False, hardened=True)
        with_r1, _ = step_flops(profile, r1=True, hardened=False)
        mean = plain + prob * (hardened - plain) + (with_r1 - plain) / interval
        steps = args.images // scale.batch * scale.epochs
        seconds = steps * mean / (args.tflops * 1e12)
        arms = 9
        print(f"| `{profile}` | {scale.gpus} | {scale.resolution} px, x{scale.width} | {scale.batch} / {per_gpu} | "
              f"{mean / 1e9:,.0f} | {steps:,} | {_duration(seconds)} | {_duration(arms * seconds)} | "
              f"{_duration(seconds)} on {arms} nodes |")


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


if __name__ == "__main__":
    main()
