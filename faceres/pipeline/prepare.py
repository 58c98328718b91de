"""Stage `prepare`: face images at the profile resolution, split by identity, and their manifest (data/prepared)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

from faceres.config.schema import Config, load_config
from faceres.core.errors import user_errors_exit
from faceres.pipeline import stage_args
from faceres.pipeline.layout import MANIFEST, Layout
from faceres.pipeline.tracking import log_outputs, maybe_tracked

log = logging.getLogger(__name__)


def run(config: Config, out_dir: Path, track: bool = True) -> None:
    from faceres.data.prepare import prepare_dataset

    with maybe_tracked(config, "prepare", track) as mlflow_run:
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
        log_outputs(mlflow_run, metrics, [out_dir / MANIFEST])
        log.info(
            f"prepare: {metrics['images']} images of {metrics['identities']} identities "
            f"({metrics['train_images']} train / {metrics['test_images']} test, {metrics['skipped']} skipped) "
            f"at {config.resolution} px from {config.data.source} in {seconds:.1f} s -> {out_dir}"
        )


@user_errors_exit
def main(argv: Sequence[str] = ()) -> None:
    stage_args(argv, "python stages/prepare.py", 0, 0)
    run(load_config(), Layout().prepared)
