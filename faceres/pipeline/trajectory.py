"""Stage `trajectory@ARM`: the run's generator at every 1/train.snapshots of its training, scored on the
validation split, so the report can show whether a claim's difference is settling or still moving.

Output ``trajectories/ARM/``: ``validation.csv`` (one row per point and downsampling bin: step, bin (``all``,
or a bin of :mod:`faceres.metrics.strata`), n, and the mean PSNR, SSIM, LPIPS, identity distance and
iPrecision@k (report.ipr_k) of the bfr-degraded validation faces restored with noise seed 0; no FID: a few
hundred images are too few for it to move less than its noise) and ``status.json`` (ok with the image count,
or why there is no trajectory: the arm was not run, or the profile holds no validation split:
``data.val_fraction`` = 0 or ``degrade.splits`` without val). ``trajectory deg`` scores the degraded inputs
themselves (one point, step 0): the reference the claims against DEG subtract.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from faceres.config.schema import Config
from faceres.core.errors import user_errors_exit
from faceres.core.files import atomic_directory, write_json
from faceres.pipeline import stage_args, status
from faceres.pipeline.design import DEG, method_run
from faceres.pipeline.layout import MANIFEST, STATUS_FILE, TRAJECTORY_CSV, Layout, ground_truth_dir
from faceres.pipeline.tracking import maybe_tracked

log = logging.getLogger(__name__)

TASK = "bfr"  # the trajectory's degradation: the claims' task
SPLIT = "val"
METRICS = ("psnr", "ssim", "lpips", "ipr")  # ipr: the identity distance and iPrecision
COLUMNS = ("psnr", "ssim", "lpips", "identity_distance", "iprecision")
NO_VALIDATION = "no_validation"
ALL = "all"  # the bin column's value for every image


def trajectory_points(model_dir: Path) -> list[tuple[int, Path]]:
    """[(step, generator file)] of a finished run, first to last: its snapshots, then the result."""
    from faceres.train.outputs import GENERATOR_FILE, SNAPSHOTS_DIR, SUMMARY_FILE

    steps = json.loads((model_dir / SUMMARY_FILE).read_text())["steps"]
    snapshots = sorted((model_dir / SNAPSHOTS_DIR).glob("step*.pt"))
    points = [(int(f.stem[4:]), f) for f in snapshots] + [(steps, model_dir / GENERATOR_FILE)]
    assert all(a[0] < b[0] for a, b in zip(points, points[1:])), points  # snapshots are before the end
    return points


def _means_by_bin(per_image: pd.DataFrame, scales: dict[str, float], ipr_k: int, source: Path) -> list[dict]:
    """The per-image columns' means over all images and within each downsampling bin that has images."""
    from faceres.metrics.strata import BIN_COLUMN, assign_bins

    table = per_image.join(assign_bins(per_image, scales, source))
    table = table.rename(columns={f"iprecision_k{ipr_k}": "iprecision"})
    groups = [(ALL, table)] + [(name, rows) for name, rows in table.groupby(BIN_COLUMN, sort=True)]
    return [{"bin": name, "n": len(rows), **{c: float(rows[c].mean()) for c in COLUMNS}} for name, rows in groups]


def score_points(config: Config, points: list[tuple[int, Path | None]], inputs: Path, ground_truth: Path,
                 manifest: Path, networks=None) -> pd.DataFrame:
    """Rows (step, bin): each generator's validation means (restored into a scratch folder, then scored); a
    point without a generator (None) scores the inputs themselves."""
    from faceres.core.devices import stage_device
    from faceres.metrics.evaluate import Networks, evaluate_folders
    from faceres.metrics.strata import scales_from_manifest
    from faceres.models.io import load_generator
    from faceres.pipeline.evaluate import eval_options
    from faceres.restore.folder import restore_folder

    networks = networks or Networks.pretrained_once()
    options = dataclasses.replace(eval_options(config), ci_level=None, n_bootstrap=1, progress=False)
    device = stage_device(config.scale.gpus, config.gpus_setting)
    scales = scales_from_manifest(manifest, split=SPLIT)
    rows = []
    with tempfile.TemporaryDirectory(prefix="faceres-trajectory-") as scratch:
        for step, generator_file in points:
            restored = inputs
            if generator_file is not None:
                restored = Path(scratch) / f"step{step}"
                restore_folder(load_generator(generator_file, device=device), inputs, restored, noise_seed=0,
                               progress=False)
            per_image = evaluate_folders(restored, ground_truth, metrics=METRICS, networks=networks,
                                         options=options).per_image
            rows += [{"step": step, **row} for row in _means_by_bin(per_image, scales, config.report.ipr_k, manifest)]
            if generator_file is not None:
                shutil.rmtree(restored)
    return pd.DataFrame(rows, columns=["step", "bin", "n", *COLUMNS])


def _unavailable(config: Config, model_dir: Path | None, inputs: Path) -> str | None:
    reason = status.training_not_run_reason(model_dir) if model_dir is not None else None
    if reason is not None:
        return reason
    if not inputs.is_dir():
        return (f"no degraded validation split ({inputs}): data.val_fraction = {config.data.val_fraction}, "
                f"degrade.splits = {list(config.degrade.splits)}; a trajectory needs both")
    return None


def run(config: Config, arm_name: str, model_dir: Path | None, degraded: Path, prepared: Path, out_dir: Path,
        track: bool = True) -> pd.DataFrame | None:
    """Write trajectories/ARM (whole or not at all); the table, or None when there is none to compute.
    `model_dir` None: the degraded inputs themselves (``deg``)."""
    inputs = degraded / TASK / SPLIT
    reason = _unavailable(config, model_dir, inputs)
    if reason is not None:
        with atomic_directory(out_dir) as tmp:
            not_run = model_dir is not None and status.training_not_run_reason(model_dir) is not None
            write_json(tmp / STATUS_FILE, {"status": status.NOT_RUN if not_run else NO_VALIDATION, "reason": reason})
        log.info(f"trajectory {arm_name}: none ({reason})")
        return None
    run_config, run_params = method_run(config, arm_name)
    points = trajectory_points(model_dir) if model_dir is not None else [(0, None)]
    with maybe_tracked(config, "trajectory", track, run_name=f"trajectory-{arm_name}", extra_params=run_params,
                       logged_config=run_config) as mlflow_run:
        table = score_points(config, points, inputs, ground_truth_dir(prepared, SPLIT), degraded / TASK / MANIFEST)
        with atomic_directory(out_dir) as tmp:
            table.to_csv(tmp / TRAJECTORY_CSV, index=False)
            n_images = len(list(inputs.glob("*.png")))
            write_json(tmp / STATUS_FILE, {"status": status.OK, "split": SPLIT, "task": TASK, "images": n_images,
                                           "noise_seed": 0})
        if mlflow_run is not None:
            mlflow_run.set_tags({"arm": arm_name})
            for row in table[table["bin"] == ALL].to_dict("records"):
                mlflow_run.log_metrics({f"val_{k}": row[k] for k in COLUMNS}, step=int(row["step"]))
    last = table[table["bin"] == ALL].iloc[-1]
    log.info(f"trajectory {arm_name}: {len(points)} points on {n_images} validation faces -> {out_dir}; "
             f"last: " + ", ".join(f"{k} {last[k]:.4g}" for k in COLUMNS))
    return table


def read_trajectory(out_dir: Path) -> pd.DataFrame | None:
    """trajectories/ARM's table, or None when it records none."""
    file = out_dir / TRAJECTORY_CSV
    return pd.read_csv(file) if file.is_file() else None


@user_errors_exit
def main(argv: Sequence[str]) -> None:
    """python stages/trajectory.py ARM (or deg: the degraded inputs)"""
    from faceres.config.schema import load_config

    (arm,) = stage_args(argv, "python stages/trajectory.py ARM|deg", 1, 1)
    config = load_config()
    layout = Layout()
    model_dir = None if arm == DEG else layout.models / arm
    run(config, arm, model_dir, layout.degraded, layout.prepared, layout.trajectories / arm)
