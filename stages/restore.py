"""DVC stage `restore@ARM`: restore the degraded test sets with models/ARM into data/restored/ARM/TASK/seed*/."""

import sys

from faceres.pipeline import restore, stop_with_parent

if __name__ == "__main__":
    stop_with_parent()
    sys.exit(restore.main(sys.argv[1:]))
