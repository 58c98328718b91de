"""DVC stage `train@ARM`: train one arm into models/ARM (torchrun when the profile has GPUs)."""

import sys

from faceres.pipeline import train, stop_with_parent

if __name__ == "__main__":
    stop_with_parent()
    sys.exit(train.main(sys.argv[1:]))
