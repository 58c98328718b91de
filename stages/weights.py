"""DVC stage `weights`: materialize and verify the pretrained networks; record their hashes (data/weights.json)."""

import sys

from faceres.pipeline import weights, stop_with_parent

if __name__ == "__main__":
    stop_with_parent()
    sys.exit(weights.main(sys.argv[1:]))
