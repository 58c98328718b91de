"""DVC stage `report`: reports/ (tables, figures, report.md, report.html) from metrics/ and the image folders."""

import sys

from faceres.pipeline import report, stop_with_parent

if __name__ == "__main__":
    stop_with_parent()
    sys.exit(report.main(sys.argv[1:]))
