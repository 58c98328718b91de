"""Stage `restore@ARM`: the arm's restorations of each task's degraded test images, once per noise seed
(data/restored/ARM/TASK/seed<k>/<image_id>.png, and status.json), on the profile's device."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

from faceres.config.schema import Config
from faceres.core.errors import user_errors_exit
from faceres.core.files import atomic_directory
from faceres.pipeline import status
from faceres.pipeline.design import method_and_tasks, method_run
from faceres.pipeline.layout import Layout
from faceres.pipeline.tracking import log_outputs, maybe_tracked

log = logging.getLogger(__name__)


def run(config: Config, arm_name: str, model_dir: Path, degraded: Path, out_dir: Path, tasks: list[str],
        track: bool = True) -> None:
    """Restore `tasks` with models/ARM's generator; an arm that was not run writes only its status. out_dir is
    replaced whole once every restoration is written (a failure leaves the previous one)."""
    from faceres.core.devices import stage_device
    from faceres.models.io import load_generator
    from faceres.restore.folder import restore_with_seeds
    from faceres.train.outputs import GENERATOR_FILE

    reason = status.training_not_run_reason(model_dir)
    if reason is not None:
        with atomic_directory(out_dir) as staged:
            status.write_restore_status(staged, status.NOT_RUN, reason=reason)
        log.info(f"restore {arm_name}: not run ({reason})")
        return
    run_config, run_params = method_run(config, arm_name)
    with atomic_directory(out_dir) as staged, maybe_tracked(
        config, "restore", track, run_name=f"restore-{arm_name}", extra_params=run_params, logged_config=run_config,
    ) as mlflow_run:
        generator = load_generator(model_dir / GENERATOR_FILE, device=stage_device(config.scale.gpus, config.gpus_setting))
        start = time.perf_counter()
        count = 0
        for task in tasks:
            inputs = degraded / task / "test"
            restore_with_seeds(generator, inputs, staged / task, config.restore.noise_seeds, progress=True)
            count += len(list(inputs.glob("*.png"))) * config.restore.noise_seeds
        seconds = time.perf_counter() - start
        status.write_restore_status(staged, status.OK, tasks=tasks)
        log_outputs(mlflow_run, {"images": count, "seconds": seconds})
    log.info(f"restore {arm_name}: {count} restorations ({', '.join(tasks)}; {config.restore.noise_seeds} noise seeds) "
             f"in {seconds:.1f} s -> {out_dir}")


@user_errors_exit
def main(argv: Sequence[str]) -> None:
    """python stages/restore.py ARM TASK [TASK ...]"""
    config, arm, tasks = method_and_tasks(argv, "restore.py")
    layout = Layout()
    run(config, arm, layout.models / arm, layout.degraded, layout.restored / arm, tasks)
