"""DVC stage `prepare`: face images at the profile resolution + manifest (data/prepared)."""

import sys

from faceres.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "--out", "data/prepared", *sys.argv[1:]]))
