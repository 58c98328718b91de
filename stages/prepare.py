"""DVC stage `prepare`: face images at the profile resolution + manifest (data/prepared)."""

import sys

from faceres.pipeline import prepare

if __name__ == "__main__":
    sys.exit(prepare.main(sys.argv[1:]))
