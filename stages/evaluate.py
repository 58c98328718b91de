"""DVC stage `evaluate@METHOD`: metrics/METHOD/TASK.json (+ per-image CSVs) for an arm, deg or an external method."""

import sys

from faceres.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python stages/evaluate.py METHOD TASK [TASK ...]")
    method, tasks = sys.argv[1], sys.argv[2:]
    sys.exit(main(["evaluate-method", method, *[f"--task={t}" for t in tasks]]))
