"""Tracked pipeline steps: each runs one library operation inside an MLflow run and logs what it produced.

The DVC stage entry points (`stages/`) and the `faceres` command both call these, so a step behaves the same
whichever way it is started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Iterator

from faceres.config import Config
from faceres.tracking import StageRun, stage_run

log = logging.getLogger("faceres")


@contextlib.contextmanager
def _maybe_tracked(
    config: Config,
    stage: str,
    track: bool,
    run_name: str | None = None,
    extra_params: dict | None = None,
    logged_config: Config | None = None,
) -> Iterator:
    if not track:
        yield None
        return
    with stage_run(config, stage, run_name=run_name, extra_params=extra_params, logged_config=logged_config) as run:
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


def _arm_config(config: Config, arm) -> Config:
    """The config as this arm sees it: its skips/alpha/aug in place of the main model's (for tracking)."""
    return dataclasses.replace(config, skips=arm.skips, alpha=arm.alpha, aug=arm.aug)


def _method_run(config: Config, method: str) -> tuple[Config, dict]:
    """(config, extra params) of a restore/evaluate run: an arm's runs carry its own skips/alpha/aug, so MLflow's
    compare view lines the arms up by them; other methods (deg, external) have none."""
    from faceres.arms import list_arms

    arms = {arm.name: arm for arm in list_arms(config)}
    if method in arms:
        return _arm_config(config, arms[method]), {"arm": method, "method": method}
    return config, {"method": method, "skips": "-", "alpha": "-", "aug": "-"}


def train(config: Config, arm_name: str, data_dir: Path, out_dir: Path, track: bool = True,
          key: str | None = None) -> dict:
    """Train one arm (resume / reuse by fingerprint); an arm impossible at this resolution is recorded."""
    from faceres.arms import find_arm
    from faceres.train.distributed import init_distributed, shutdown
    from faceres.train.loop import SUMMARY_FILE, train_arm

    arm = find_arm(config, arm_name)
    reason = arm.not_runnable_reason(config.resolution)
    if reason is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = {"arm": dataclasses.asdict(arm), "status": "not_run", "reason": reason}
        (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"train {arm_name}: not run: {reason}")
        return summary
    ctx = init_distributed(use_cuda=config.scale.gpus > 0)  # gpus: 0 trains on the CPU even where CUDA exists
    try:
        vgg = None
        if config.train.perceptual_weight > 0 or config.train.style_weight > 0:
            from faceres.weights import load_vgg16_features

            vgg = load_vgg16_features()
        tracked = track and ctx.is_main
        with _maybe_tracked(
            config, "train", tracked, run_name=f"train-{arm_name}", logged_config=_arm_config(config, arm),
            extra_params={"arm": arm_name, "world_size": ctx.world_size},
        ) as run:
            if run is not None:
                run.set_tags({"arm": arm_name})
            summary = train_arm(
                config, arm, data_dir, out_dir, vgg_features=vgg, ctx=ctx,
                log=run.log_metrics if run is not None else None,
                log_image=run.log_image if run is not None else None,
                key=key if ctx.world_size <= 1 else None,
            )
            if run is not None and summary:
                run.set_tags({"fingerprint": summary["fingerprint"], "generator_sha256": summary["generator_sha256"],
                              "generator_path": str(out_dir / "generator.pt"), "reused": summary.get("reused", False)})
                run.log_metrics({f"final_{k}": v for k, v in summary.get("final", {}).items()})
                run.log_metrics({"images_per_s": summary["images_per_s"], "train_seconds": summary["seconds"]})
                run.log_artifact(out_dir / SUMMARY_FILE)
        if ctx.is_main and summary:
            print(
                f"train {arm_name}: {summary['steps']} steps, {summary['images']} images in {summary['seconds']:.0f} s "
                f"({summary['images_per_s']:.1f} img/s) -> {out_dir}"
            )
        return summary
    finally:
        shutdown(ctx)


def train_reusing(config: Config, arm_name: str, data_dir: Path, out_dir: Path, track: bool = True) -> dict | None:
    """Train `arm_name`, reusing a finished run with the same fingerprint: when there is one (as many processes
    as the profile plans), copy its result and record the stage's MLflow run, before any torchrun launch, so a
    head node without GPUs picks up arms trained by jobs elsewhere. None when the profile's GPUs must train it
    (the caller launches torchrun); on the CPU it trains here."""
    from faceres.arms import find_arm
    from faceres.train.launch import planned_processes
    from faceres.train.loop import SUMMARY_FILE, finished_run, reuse_finished_run

    arm = find_arm(config, arm_name)
    if arm.not_runnable_reason(config.resolution) is not None:
        return train(config, arm_name, data_dir, out_dir, track) if config.scale.gpus == 0 else None
    key, finished = finished_run(config, arm, data_dir, planned_processes(config))
    if not finished:
        # the fingerprint is this process's to compute again only under torchrun (one process per GPU)
        return train(config, arm_name, data_dir, out_dir, track, key=key) if config.scale.gpus == 0 else None
    with _maybe_tracked(config, "train", track, run_name=f"train-{arm_name}", logged_config=_arm_config(config, arm),
                        extra_params={"arm": arm_name, "world_size": planned_processes(config)}) as run:
        summary = reuse_finished_run(arm, key, out_dir)
        if run is not None:
            run.set_tags({"arm": arm_name, "fingerprint": key, "generator_sha256": summary["generator_sha256"],
                          "generator_path": str(out_dir / "generator.pt"), "reused": True})
            run.log_artifact(out_dir / SUMMARY_FILE)
    return summary


def restore(config: Config, arm_name: str, model_dir: Path, degraded_root: Path, out_dir: Path, tasks: list[str],
            track: bool = True) -> None:
    """Restore each task's degraded test images with the arm's generator, once per noise seed:
    out_dir/TASK/seed<k>/<image_id>.png. An arm that was not run writes only out_dir/status.json."""
    import shutil

    from faceres.restore import load_generator, restore_with_seeds
    from faceres.train.loop import GENERATOR_FILE, SUMMARY_FILE

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    summary = json.loads((model_dir / SUMMARY_FILE).read_text())
    if summary.get("status") == "not_run":
        (out_dir / "status.json").write_text(json.dumps({"status": "not_run", "reason": summary["reason"]}) + "\n")
        print(f"restore {arm_name}: not run ({summary['reason']})")
        return
    run_config, run_params = _method_run(config, arm_name)
    with _maybe_tracked(config, "restore", track, run_name=f"restore-{arm_name}", extra_params=run_params,
                        logged_config=run_config) as run:
        from faceres.devices import stage_device

        generator = load_generator(model_dir / GENERATOR_FILE, device=stage_device(config))
        start = time.perf_counter()
        count = 0
        for task in tasks:
            inputs = degraded_root / task / "test"
            restore_with_seeds(generator, inputs, out_dir / task, config.restore.noise_seeds, progress=False)
            count += len(list(inputs.glob("*.png"))) * config.restore.noise_seeds
        seconds = time.perf_counter() - start
        (out_dir / "status.json").write_text(json.dumps({"status": "ok", "tasks": tasks}) + "\n")
        _log(run, {"images": count, "seconds": seconds})
        print(f"restore {arm_name}: {count} restorations ({', '.join(tasks)}; {config.restore.noise_seeds} noise seeds) "
              f"in {seconds:.1f} s -> {out_dir}")


def evaluate(config: Config, method: str, tasks: list[str], data_dir: Path, degraded_root: Path,
             restored_root: Path, out_root: Path, track: bool = True) -> dict:
    """Metrics of one method (arm, deg or external) on each task's test split, logged to MLflow."""
    from faceres.evaluate_stage import evaluate_method, flat_metrics

    run_config, run_params = _method_run(config, method)
    with _maybe_tracked(config, "evaluate", track, run_name=f"evaluate-{method}", extra_params=run_params,
                        logged_config=run_config) as run:
        if run is not None:
            run.set_tags({"method": method, "tasks": ",".join(tasks), **({"arm": method} if "arm" in run_params else {})})
        start = time.perf_counter()
        documents = evaluate_method(config, method, tasks, data_dir, degraded_root, restored_root, out_root)
        seconds = time.perf_counter() - start
        flat = {}
        for task, document in documents.items():
            flat.update(flat_metrics(task, document))
            if run is not None and (out_root / method / f"{task}.json").is_file():
                run.log_artifact(out_root / method / f"{task}.json")
        _log(run, {**flat, "seconds": seconds})
        for task, document in documents.items():
            if "status" in document:
                print(f"evaluate {method} {task}: {document['status']} ({document['reason']})")
            else:
                m = document["metrics"]
                parts = [f"{k} {m[k]['mean']:.4g}" for k in ("psnr", "ssim", "lpips") if k in m]
                if "fid" in m:
                    parts.append(f"fid {m['fid']['value']:.4g}")
                if "iprecision" in m and "identity" in m["iprecision"]:
                    parts.append(f"iprecision@1 {m['iprecision']['identity'].get('1', float('nan')):.3f}")
                print(f"evaluate {method} {task}: {', '.join(parts)} ({document['n_images']} images)")
        return documents


def _restored_seed_dir(restored_root: Path, arm: str, task: str, seed: int = 0) -> Path | None:
    folder = restored_root / arm / task / f"seed{seed}"
    return folder if folder.is_dir() else None


def _qualitative_figures(config: Config, data_dir: Path, degraded_root: Path, restored_root: Path) -> list:
    """Figures 9, 10, 14, 15 from the first test images (skipping what was not run)."""
    from faceres.arms import ablation_rows
    from faceres.report.figures import figure9, figure10, sr_figure

    gt_dir = data_dir / "images" / "test"
    ids = sorted(p.stem for p in gt_dir.glob("*.png"))[: config.report.qualitative_images]
    figures = []
    skips_dirs = {n: d for n, arm in ablation_rows(config, "skips").items()
                  if (d := _restored_seed_dir(restored_root, arm, "bfr")) is not None}
    if skips_dirs and ids:
        figures.append(("Figure 9: restorations by number of skip connections (BFR)",
                        figure9(degraded_root / "bfr" / "test", skips_dirs, gt_dir, ids),
                        "Input, the arms with n = 0.. skips (noise seed 0), ground truth."))
    fewest = min(skips_dirs) if skips_dirs else None
    if fewest is not None:
        arm = ablation_rows(config, "skips")[fewest]
        seeds = {k: d for k in range(config.restore.noise_seeds) if (d := _restored_seed_dir(restored_root, arm, "bfr", k))}
        figures.append((f"Figure 10: noise seeds with n = {fewest} skips", figure10(
            degraded_root / "bfr" / "test", seeds, ids[:2], gt_dir, skips=fewest),
            "The same input restored with different noise seeds: fewer skips leave more to the noise."))
    for task, factor, number in (("sr16", 16, 14), ("sr8", 8, 15)):
        ours = _restored_seed_dir(restored_root, "main", task)
        if ours is not None and ids:
            figures.append((f"Figure {number}: {factor}x super-resolution", sr_figure(
                degraded_root / task / "test_lr", {"Ours": ours}, gt_dir, ids, factor=factor),
                f"Input ({config.resolution // factor} px) | bicubic | ours | ground truth."))
    return figures


def report(config: Config, metrics_root: Path, data_dir: Path, degraded_root: Path, restored_root: Path,
           out_dir: Path, track: bool = True) -> dict:
    """Tables 6, 7, 8, the alpha table, Figure 8, the qualitative figures and report.md/html."""
    import datetime
    import shutil

    from faceres.arms import ablation_rows
    from faceres.report.build import build_report
    from faceres.report.document import RunInfo
    from faceres.tracking import git_commit

    weights_file = Path("data/weights.json")
    weights = {w["name"]: w["sha256"] for w in json.loads(weights_file.read_text())} if weights_file.is_file() else {}
    aug = config.train.augment
    info = RunInfo(
        profile=config.profile,
        data_source=config.data.source,
        git_commit=git_commit(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        resolution=config.resolution,
        weights=weights,
        notes=(
            f"Adversarial augmentation: mode {aug.mode}, probability {aug.prob}, worst of {aug.candidates}, "
            f"{aug.pgd_steps} PGD step(s) of {aug.pgd_step} of each range, pixel eps {aug.pixel_eps}/255.",
            f"Restorations use the generator's {'EMA' if config.train.ema else 'raw'} weights; "
            f"{config.restore.noise_seeds} noise seeds per input; metrics other than PSNR's spread use seed 0.",
            f"iPrecision/iRecall features: identity = dlib ResNet-128 (the paper used FaceNet), Inception = "
            f"pytorch-fid pool3. Skip nodes at {config.resolution} px: counted from 8 px.",
            f"Training: {config.scale.epochs} epoch(s), batch {config.scale.batch}, width x{config.scale.width}.",
        ),
    )
    comparison = {"DEG": "deg", "DFDNet": "dfdnet", "GFPGAN": "gfpgan", "GPEN": "gpen", "Ours": "main"}
    figure8_methods = {"DEG*": "deg", "GPEN": "gpen", "GFPGAN*": "gfpgan", "DFDNet": "dfdnet", "Ours": "main"}
    aug_rows = {("Y" if value else "N"): arm for value, arm in ablation_rows(config, "aug").items()}
    with _maybe_tracked(config, "report", track, run_name="report") as run:
        shutil.rmtree(out_dir, ignore_errors=True)
        paths = build_report(
            out_dir,
            metrics_root=metrics_root,
            run_info=info,
            skips_arms=ablation_rows(config, "skips"),
            aug_arms=aug_rows,
            alpha_arms=ablation_rows(config, "alpha"),
            comparison=comparison,
            figure8_methods=figure8_methods,
            votes_csvs=list(config.report.votes),
            key_csv=config.report.votes_key,
            qualitative=_qualitative_figures(config, data_dir, degraded_root, restored_root),
            psnr_spread=config.report.psnr_spread,
            ipr_k=config.report.ipr_k,
        )
        if run is not None:
            run.log_artifact(paths["html"])
            for table in sorted((out_dir / "tables").glob("*.md")):
                run.log_artifact(table, artifact_path="tables")
        print(f"report: {paths['md']} and {paths['html']}")
        return paths
