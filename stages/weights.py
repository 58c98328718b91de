"""DVC stage `weights`: materialize and verify the pretrained networks; record their hashes (data/weights.json)."""

import sys

from faceres.pipeline import weights

if __name__ == "__main__":
    sys.exit(weights.main(sys.argv[1:]))
