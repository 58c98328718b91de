"""Tracked pipeline steps: each runs one library operation inside an MLflow run and logs what it produced.

The DVC stage entry points (`stages/`) and the `faceres` command both call these, so a step behaves the same
whichever way it is started.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Iterator

from faceres.config import Config
from faceres.tracking import StageRun, stage_run

log = logging.getLogger("faceres")


@contextlib.contextmanager
def _maybe_tracked(config: Config, stage: str, track: bool, run_name: str | None = None) -> Iterator:
    if not track:
        yield None
        return
    with stage_run(config, stage, run_name=run_name) as run:
        yield run


def _log(run: StageRun | None, metrics: dict, artifacts: list[Path] = ()) -> None:
    if run is None:
        return
    run.log_metrics(metrics)
    for path in artifacts:
        run.log_artifact(path)


def prepare(config: Config, out_dir: Path, track: bool = True) -> None:
    from faceres.data.prepare import MANIFEST, prepare_dataset

    with _maybe_tracked(config, "prepare", track) as run:
        start = time.perf_counter()
        manifest = prepare_dataset(config, out_dir)
        seconds = time.perf_counter() - start
        ok = manifest[manifest["status"] == "ok"]
        metrics = {
            "images": len(ok),
            "skipped": int((manifest["status"] == "skipped").sum()),
            "identities": ok["identity"].nunique(),
            "train_images": int((ok["split"] == "train").sum()),
            "test_images": int((ok["split"] == "test").sum()),
            "seconds": seconds,
        }
        _log(run, metrics, [out_dir / MANIFEST])
        print(
            f"prepare: {metrics['images']} images of {metrics['identities']} identities "
            f"({metrics['train_images']} train / {metrics['test_images']} test, {metrics['skipped']} skipped) "
            f"at {config.resolution} px from {config.data.source} in {seconds:.1f} s -> {out_dir}"
        )


def degrade(config: Config, task: str, data_dir: Path, out_dir: Path, track: bool = True) -> None:
    from faceres.degrade_stage import MANIFEST, degrade_dataset

    with _maybe_tracked(config, "degrade", track, run_name=f"degrade-{task}") as run:
        if run is not None:
            run.set_tags({"task": task})
        start = time.perf_counter()
        manifest = degrade_dataset(config, task, data_dir, out_dir)
        seconds = time.perf_counter() - start
        metrics = {"images": len(manifest), "seconds": seconds, "images_per_s": len(manifest) / max(seconds, 1e-9)}
        _log(run, metrics, [out_dir / MANIFEST])
        print(f"degrade {task}: {len(manifest)} images in {seconds:.1f} s -> {out_dir}")
