"""The files of a training run (models/<arm>/, and the run cache's checkpoint and final/ folder), by name.

Torch-free, so that stages which only read a run's files (restore's generator path, the report's curves, the
not-run status) do not depend on the training code.
"""

GENERATOR_FILE = "generator.pt"
CURVE_FILE = "curve.csv"
SUMMARY_FILE = "train.json"
CHECKPOINT_FILE = "checkpoint.pt"
