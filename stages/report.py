"""DVC stage `report`: reports/ (tables, figures, report.md, report.html) from metrics/ and the image folders.

Written into reports.tmp/ beside it, which replaces reports/ only once the report is complete and logged: a
failed report (a tracking server that does not answer, a missing metrics file) leaves the previous reports/,
summary.json included (dvc.yaml's header).
"""

import sys
from typing import Sequence

from faceres.config.schema import load_config
from faceres.core.errors import user_errors_exit
from faceres.core.files import atomic_directory
from faceres.pipeline import report, stage_args, stop_with_parent
from faceres.pipeline.layout import Layout


@user_errors_exit
def main(argv: Sequence[str] = ()) -> None:
    stage_args(argv, "python stages/report.py", 0, 0)
    layout = Layout()
    with atomic_directory(layout.reports) as staged:
        report.run(load_config(), layout.metrics, layout.prepared, layout.degraded, layout.restored, staged,
                   layout.weights_record)


if __name__ == "__main__":
    stop_with_parent()
    sys.exit(main(sys.argv[1:]))
