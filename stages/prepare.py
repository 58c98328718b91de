"""DVC stage `prepare`: face images at the profile resolution + manifest (data/prepared)."""

import sys

from faceres.pipeline import prepare, stop_with_parent

if __name__ == "__main__":
    stop_with_parent()
    sys.exit(prepare.main(sys.argv[1:]))
