"""DVC stage `evaluate@METHOD`: metrics/METHOD/TASK.json (+ per-image CSVs) for an arm, deg or an external method."""

import sys

from faceres.pipeline import evaluate, stop_with_parent

if __name__ == "__main__":
    stop_with_parent()
    sys.exit(evaluate.main(sys.argv[1:]))
