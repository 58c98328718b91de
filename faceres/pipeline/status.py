"""The records a stage writes when there is nothing to compute, and the next stage reads.

An arm that cannot train at the profile's resolution (6 skips below 256 px) or an external method without a
folder still gets every output dvc.yaml declares, holding its status instead of results:

- train writes ``models/<arm>/train.json`` = {arm, status: not_run, reason};
- restore reads it and writes ``data/restored/<arm>/status.json`` = {status: not_run, reason} (or ok, tasks);
- evaluate writes ``metrics/<method>/<task>.json`` = {method, task, status, reason} (not_run or
  not_provided) and a note in ``per_image/``; the report shows such a row as not run / not provided
  (faceres/metrics/metrics_file.py reads it).
"""

from __future__ import annotations

import json
from pathlib import Path

from faceres.core.errors import DataError
from faceres.core.files import atomic_directory, write_json
from faceres.pipeline.layout import PER_IMAGE, STATUS_FILE
from faceres.metrics.metrics_file import NOT_PROVIDED, NOT_RUN
from faceres.train.outputs import SUMMARY_FILE as TRAIN_SUMMARY  # the file train writes either way

OK = "ok"


def _write(path: Path, document: dict) -> dict:
    write_json(path, document)
    return document


def write_training_not_run(model_dir: Path, arm: dict, reason: str) -> dict:
    """models/<arm> replaced whole by the record alone: no generator of an earlier run stays beside it."""
    with atomic_directory(model_dir) as staged:
        return _write(staged / TRAIN_SUMMARY, {"arm": arm, "status": NOT_RUN, "reason": reason})


def training_not_run_reason(model_dir: Path) -> str | None:
    """The reason an arm was not trained, or None when models/<arm> holds a trained generator."""
    summary = json.loads((model_dir / TRAIN_SUMMARY).read_text())
    return summary["reason"] if summary.get("status") == NOT_RUN else None


def write_restore_status(restored_dir: Path, status: str, **fields) -> dict:
    return _write(restored_dir / STATUS_FILE, {"status": status, **fields})


def read_restore_status(restored_dir: Path) -> dict:
    path = restored_dir / STATUS_FILE
    if not path.is_file():
        raise DataError(f"{path}: no restorations of {restored_dir.name!r}; run the restore stage first")
    return json.loads(path.read_text())


def write_metrics_placeholder(metrics_json: Path, method: str, task: str, status: str, reason: str) -> dict:
    """metrics/<method>/<task>.json holding the status, and the per-image folder dvc.yaml declares."""
    document = _write(metrics_json, {"method": method, "task": task, "status": status, "reason": reason})
    per_image = metrics_json.parent / PER_IMAGE
    per_image.mkdir(exist_ok=True)
    (per_image / f"{task}.{status}.txt").write_text(reason + "\n")
    return document
