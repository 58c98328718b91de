"""DVC stage `degrade@TASK`: degraded inputs + replayable parameter manifest (data/degraded/TASK)."""

import sys

from faceres.pipeline import degrade, stop_with_parent

if __name__ == "__main__":
    stop_with_parent()
    sys.exit(degrade.main(sys.argv[1:]))
