"""DVC stage `evaluate@METHOD`: metrics/METHOD/TASK.json (+ per-image CSVs) for an arm, deg or an external method."""

import sys

from faceres.pipeline import evaluate

if __name__ == "__main__":
    sys.exit(evaluate.main(sys.argv[1:]))
