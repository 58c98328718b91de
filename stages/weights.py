"""DVC stage `weights`: materialize and verify the pretrained networks; record their hashes (data/weights.json)."""

import sys

from faceres.cli import main

if __name__ == "__main__":
    sys.exit(main(["weights", "--out", "data/weights.json", *sys.argv[1:]]))
