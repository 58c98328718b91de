"""The paper's printed numbers (paper_numbers.yaml) that the tables set beside ours; our numbers come from the
metrics documents of :mod:`faceres.metrics.metrics_file`."""

from __future__ import annotations

from pathlib import Path

import yaml

from faceres.core.errors import DataError
from faceres.metrics.metrics_file import checked_mapping, checked_number

PAPER_NUMBERS_PATH = Path(__file__).with_name("paper_numbers.yaml")


def load_paper_numbers(path: str | Path = PAPER_NUMBERS_PATH) -> dict:
    """The paper's printed numbers (``paper_numbers.yaml``): {"table6": {"title", "rows": {n: {metric: value}}}, ...}."""
    path = Path(path)
    try:
        numbers = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: paper numbers file not found") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    for table in ("table6", "table7", "table8"):
        rows = (numbers or {}).get(table, {}).get("rows")
        if not isinstance(rows, dict) or not rows:
            raise DataError(f"{path}: {table}.rows must be a non-empty mapping")
        for label, row in rows.items():
            for metric, value in checked_mapping(path, f"{table}.rows.{label}", row).items():
                checked_number(path, f"{table}.rows.{label}.{metric}", value)
    return numbers
