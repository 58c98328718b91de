"""Stage `report`: Tables 6, 7, 8, the alpha table, Figure 8, the qualitative figures, report.md and report.html
(reports/) from metrics/ and the image folders."""

from __future__ import annotations

import datetime
import json
import logging
import shutil
from pathlib import Path
from typing import Sequence

from faceres.config.schema import Config, load_config
from faceres.core.errors import user_errors_exit
from faceres.pipeline import stage_args
from faceres.pipeline.design import COMPARISON, DEG, FIGURE8, restored_seed_dir
from faceres.pipeline.layout import MANIFEST, METRICS_SUMMARY, Layout, ground_truth_dir, per_image_file, trajectory_file
from faceres.pipeline.tracking import git_commit, maybe_tracked
from faceres.metrics.metrics_file import load_metrics_dir, summary_metrics
from faceres.metrics.strata import STRATIFIED_TASK, strata_summary

log = logging.getLogger(__name__)
SR_OURS = "Ours (BFR model, zero-shot)"


def _qualitative_figures(config: Config, data_dir: Path, degraded_root: Path, restored_root: Path) -> list:
    """Figures 9, 10, 14, 15 from the first test images (skipping what was not run)."""
    from faceres.config.arms import ablation_rows
    from faceres.report.figures import figure9, figure10, sr_figure

    gt_dir = ground_truth_dir(data_dir)
    ids = sorted(p.stem for p in gt_dir.glob("*.png"))[: config.report.qualitative_images]
    figures = []
    skips_dirs = {n: d for n, arm in ablation_rows(config, "skips").items()
                  if (d := restored_seed_dir(restored_root, arm, "bfr")) is not None}
    if skips_dirs and ids:
        figures.append(("Figure 9: restorations by number of skip connections (BFR)",
                        figure9(degraded_root / "bfr" / "test", skips_dirs, gt_dir, ids),
                        "Input, the arms with n = 0.. skips (noise seed 0), ground truth."))
    fewest = min(skips_dirs) if skips_dirs else None
    if fewest is not None:
        arm = ablation_rows(config, "skips")[fewest]
        seeds = {k: d for k in range(config.restore.noise_seeds) if (d := restored_seed_dir(restored_root, arm, "bfr", k))}
        figures.append((f"Figure 10: noise seeds with n = {fewest} skips", figure10(
            degraded_root / "bfr" / "test", seeds, ids[:2], gt_dir, skips=fewest),
            "The same input restored with different noise seeds: fewer skips leave more to the noise."))
    for task, factor, number in (("sr16", 16, 14), ("sr8", 8, 15)):
        ours = restored_seed_dir(restored_root, "main", task)
        if ours is not None and ids:
            figures.append((f"Figure {number}: {factor}x super-resolution", sr_figure(
                degraded_root / task / "test_lr", {"Ours": ours}, gt_dir, ids, factor=factor),
                f"Input ({config.resolution // factor} px) | bicubic | ours (the BFR model, zero-shot) | ground truth."))
    return figures


def study_scale(config: Config, data_dir: Path, models_root: Path) -> str:
    """What the verdicts hold at: resolution, width, steps, images, training seeds (one line)."""
    import pandas as pd

    from faceres.train.outputs import SUMMARY_FILE

    manifest = data_dir / MANIFEST
    counts = {}
    if manifest.is_file():
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        counts = table[table["status"] == "ok"]["split"].value_counts()
    summary = models_root / "main" / SUMMARY_FILE
    steps = json.loads(summary.read_text()).get("steps") if summary.is_file() else None
    seeds = config.ablations.seeds
    return (f"{config.resolution} px, generator width x{config.scale.width:g}, "
            f"{steps if steps is not None else '?'} training steps of batch {config.scale.batch} "
            f"({config.scale.epochs} epochs of {counts.get('train', 0)} training faces), "
            f"{counts.get('test', 0)} test faces ({counts.get('val', 0)} validation), "
            f"training seeds: main {[config.seed, *seeds.main]}, each ablation arm {[config.seed, *seeds.arms]}")


def run(config: Config, metrics_root: Path, data_dir: Path, degraded_root: Path, restored_root: Path,
        out_dir: Path, weights_record: Path, track: bool = True, models_root: Path = Layout().models,
        trajectories_root: Path = Layout().trajectories) -> dict:
    """Tables 6, 7, 8, the alpha table, the metrics by degradation strength, Figure 8, the qualitative figures,
    report.md/html and summary.json (every evaluated method's headline numbers, and under bfr its ``strata``:
    bin -> n and means; the DVC metrics)."""
    from faceres.config.arms import ablation_rows, list_arms, seeds_of
    from faceres.report.build import ReportInputs, build_report
    from faceres.report.document import RunInfo, run_notes
    from faceres.train.outputs import CURVE_FILE

    weights = ({w["name"]: w["sha256"] for w in json.loads(weights_record.read_text())}
               if weights_record.is_file() else {})
    info = RunInfo(
        profile=config.profile,
        data_source=config.data.source,
        git_commit=git_commit(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        resolution=config.resolution,
        weights=weights,
        notes=run_notes(config),
    )
    aug_rows = {("Y" if value else "N"): arm for value, arm in ablation_rows(config, "aug").items()}
    inputs = ReportInputs(
        metrics_root=metrics_root,
        run_info=info,
        skips_arms=ablation_rows(config, "skips"),
        aug_arms=aug_rows,
        alpha_arms=ablation_rows(config, "alpha"),
        comparison=COMPARISON,
        figure8_methods=FIGURE8,
        votes_csvs=[Path(v) for v in config.report.votes],
        key_csv=None if config.report.votes_key is None else Path(config.report.votes_key),
        qualitative=_qualitative_figures(config, data_dir, degraded_root, restored_root),
        curves={arm.name: models_root / arm.name / CURVE_FILE for arm in list_arms(config)},
        psnr_spread=config.report.psnr_spread,
        ipr_k=config.report.ipr_k,
        per_image_files={path.name: per_image_file(metrics_root, path.name, "bfr")
                         for path in sorted(metrics_root.glob("*")) if path.is_dir()},
        sr_methods={"Bicubic": DEG, SR_OURS: "main"},
        families={arm.name: seeds_of(config, arm.name) for arm in list_arms(config)},
        trajectory_files={path.name: trajectory_file(trajectories_root, path.name)
                          for path in sorted(trajectories_root.glob("*")) if path.is_dir()},
        scale=study_scale(config, data_dir, models_root),
    )
    with maybe_tracked(config, "report", track, run_name="report") as mlflow_run:
        shutil.rmtree(out_dir, ignore_errors=True)
        paths = build_report(out_dir, inputs)
        summary = summary_metrics(metrics_root, config.report.ipr_k)
        for method, by_bin in strata_summary(load_metrics_dir(metrics_root, STRATIFIED_TASK), config.report.ipr_k).items():
            summary[method][STRATIFIED_TASK]["strata"] = by_bin
        paths["summary"] = out_dir / METRICS_SUMMARY
        paths["summary"].write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        if mlflow_run is not None:
            tables = [(table, "tables") for table in sorted((out_dir / "tables").glob("*.md"))]
            figures = [(figure, "figures") for figure in sorted((out_dir / "figures").glob("*.png"))]
            for path, folder in [(paths["html"], None), (paths["summary"], None), *tables, *figures]:
                mlflow_run.log_artifact(path, artifact_path=folder)
            # the experiment's row in the MLflow UI: its headline numbers (main/bfr/psnr, deg/bfr/fid, ...)
            # and the report itself, on the parent run
            mlflow_run.log_on_parent(
                {f"{method}/{task}/{name}": value for method, by_task in summary.items()
                 for task, numbers in by_task.items() for name, value in _flat(numbers).items()},
                [(paths["html"], None), (paths["summary"], None)],
            )
        log.info(f"report: {paths['md']} and {paths['html']}")
        return paths


def _flat(numbers: dict, prefix: str = "") -> dict[str, float]:
    """{"psnr": 1, "strata": {"x2-4": {"psnr": 2}}} -> {"psnr": 1, "strata/x2-4/psnr": 2} (MLflow metric names)."""
    flat = {}
    for name, value in numbers.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{name}/"))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


@user_errors_exit
def main(argv: Sequence[str] = ()) -> None:
    """python stages/report.py: written into reports.tmp/ beside reports/, which it replaces only once the report
    is complete and logged: a failed report (a tracking server that does not answer, a missing metrics file)
    leaves the previous reports/, summary.json included (dvc.yaml's header)."""
    from faceres.core.files import atomic_directory

    stage_args(argv, "python stages/report.py", 0, 0)
    layout = Layout()
    with atomic_directory(layout.reports) as staged:
        run(load_config(), layout.metrics, layout.prepared, layout.degraded, layout.restored, staged,
            layout.weights_record)
