"""The files of a training run (models/<arm>/, and the run cache's checkpoint and final/ folder), by name.

Torch-free, so that stages which only read a run's files (restore's generator path, the report's curves, the
not-run status) do not depend on the training code.
"""

GENERATOR_FILE = "generator.pt"
CURVE_FILE = "curve.csv"
SUMMARY_FILE = "train.json"
CHECKPOINT_FILE = "checkpoint.pt"
SNAPSHOTS_DIR = "snapshots"  # snapshots/step<NNNNNN>.pt: the generator at every 1/train.snapshots of training


def snapshot_steps(total_steps: int, snapshots: int) -> list[int]:
    """The steps of a run's trajectory points: every 1/snapshots of `total_steps`, the last being the end (its
    generator.pt); distinct and >= 1 (fewer points when the run has fewer steps)."""
    return sorted({max(1, round(total_steps * q / snapshots)) for q in range(1, snapshots + 1)})


def snapshot_file(step: int) -> str:
    return f"step{step:06d}.pt"
