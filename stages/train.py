"""DVC stage `train@ARM`: train one arm into models/ARM (torchrun when the profile has GPUs)."""

import sys

from faceres.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python stages/train.py ARM [faceres train options]")
    arm, rest = sys.argv[1], sys.argv[2:]
    sys.exit(main(["train", arm, "--data", "data/prepared", "--out", f"models/{arm}", *rest]))
