"""DVC stage `degrade@TASK`: degraded inputs + replayable parameter manifest (data/degraded/TASK)."""

import sys

from faceres.pipeline import degrade

if __name__ == "__main__":
    sys.exit(degrade.main(sys.argv[1:]))
