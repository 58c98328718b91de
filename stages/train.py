"""DVC stage `train@ARM`: train one arm into models/ARM (torchrun when the profile has GPUs)."""

import sys

from faceres.pipeline import train

if __name__ == "__main__":
    sys.exit(train.main(sys.argv[1:]))
