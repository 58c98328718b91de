"""DVC stage `restore@ARM`: restore the degraded test sets with models/ARM into data/restored/ARM/TASK/seed*/."""

import sys

from faceres.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python stages/restore.py ARM TASK [TASK ...]")
    arm, tasks = sys.argv[1], sys.argv[2:]
    sys.exit(main(["restore-arm", arm, *[f"--task={t}" for t in tasks]]))
