"""DVC stage `report`: reports/ (tables, figures, report.md, report.html) from metrics/ and the image folders."""

import sys

from faceres.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
