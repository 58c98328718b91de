"""DVC stage `degrade@TASK`: degraded inputs + replayable parameter manifest (data/degraded/TASK)."""

import sys

from faceres.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python stages/degrade.py TASK [faceres degrade options]")
    task, rest = sys.argv[1], sys.argv[2:]
    sys.exit(main(["degrade", "--task", task, "--data", "data/prepared", "--out", "data/degraded", *rest]))
