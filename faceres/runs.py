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
    config: Config, stage: str, track: bool, run_name: str | None = None, extra_params: dict | None = None
) -> Iterator:
    if not track:
        yield None
        return
    with stage_run(config, stage, run_name=run_name, extra_params=extra_params) as run:
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


def train(config: Config, arm_name: str, data_dir: Path, out_dir: Path, track: bool = True) -> dict:
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
    ctx = init_distributed()
    try:
        vgg = None
        if config.train.perceptual_weight > 0 or config.train.style_weight > 0:
            from faceres.weights import load_vgg16_features

            vgg = load_vgg16_features()
        tracked = track and ctx.is_main
        with _maybe_tracked(
            _arm_config(config, arm), "train", tracked, run_name=f"train-{arm_name}",
            extra_params={"arm": arm_name, "world_size": ctx.world_size},
        ) as run:
            if run is not None:
                run.set_tags({"arm": arm_name})
            summary = train_arm(
                config, arm, data_dir, out_dir, vgg_features=vgg, ctx=ctx,
                log=run.log_metrics if run is not None else None,
                log_image=run.log_image if run is not None else None,
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
