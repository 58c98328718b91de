"""Stage `train@ARM`: one arm's training into models/ARM (generator.pt, curve.csv, train.json).

The profile's GPUs train under torchrun (one process per GPU, faceres.train.launch); before any launch, a run
with the same fingerprint already in the run cache (trained by another job, node or experiment) is copied
instead, so a head node without GPUs picks up arms trained elsewhere (README, "Arms in parallel"). An arm
impossible at this resolution is recorded as not run (faceres.pipeline.status).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

from faceres.config.arguments import add_params_arguments, config_from_args
from faceres.config.schema import Config
from faceres.core.errors import user_errors_exit
from faceres.pipeline import status
from faceres.pipeline.design import arm_config, arm_params
from faceres.pipeline.layout import MANIFEST, Layout
from faceres.pipeline.tracking import StageRun, maybe_tracked

log = logging.getLogger(__name__)


def log_training_data(run: StageRun, data_dir: Path) -> None:
    """The prepared data (manifest: every image, its split and identity) as the run's "training" dataset."""
    run.log_dataset(data_dir / MANIFEST, context="training")


def record_trained(run: StageRun, arm_name: str, summary: dict, out_dir: Path, config: Config, data_dir: Path) -> None:
    """A finished training (trained here or copied from the run cache) on its MLflow run: fingerprint and
    generator tags, final losses, throughput, train.json, and the generator file (the main arm's also as a new
    version of the registered model); a copied one also gets what a fresh run logs while it trains
    (:func:`log_reused_history`). `config`: the arm's training config (a replicate's seed)."""
    from faceres.train.outputs import SUMMARY_FILE

    generator = out_dir / "generator.pt"
    run.set_tags({"fingerprint": summary["fingerprint"], "generator_sha256": summary["generator_sha256"],
                  "generator_path": str(generator.resolve()), "reused": summary.get("reused", False)})
    if summary.get("reused"):
        log_reused_history(run, config, data_dir, out_dir, summary["steps"])
    run.log_metrics({f"final_{k}": v for k, v in summary.get("final", {}).items()})
    run.log_metrics({"mean_images_per_s": summary["images_per_s"], "train_seconds": summary["seconds"]})
    run.log_artifact(out_dir / SUMMARY_FILE)
    run.log_generator(generator, register=arm_name == "main")


def log_reused_history(run: StageRun, config: Config, data_dir: Path, out_dir: Path, total_steps: int) -> None:
    """What a fresh run logs while it trains, for a run copied from the run cache: curve.csv's rows (one metric
    per column at each row's step, as the loop logs each row), and the sample grid at each step where the loop
    draws one (every train.sample_every steps and the last) whose generator the run kept (its snapshots, the
    result): usually the last alone."""
    from faceres.train.outputs import CURVE_FILE, GENERATOR_FILE, SNAPSHOTS_DIR, snapshot_file

    run.log_metric_history(curve_rows(out_dir / CURVE_FILE))
    every = config.train.sample_every
    for step in sorted({*range(every, total_steps + 1, every), total_steps}):
        generator = out_dir / (GENERATOR_FILE if step == total_steps else f"{SNAPSHOTS_DIR}/{snapshot_file(step)}")
        if generator.is_file():
            run.log_image(sample_grid(config, data_dir, generator), "samples", step)


def curve_rows(curve_csv: Path) -> list[tuple[int, dict[str, float]]]:
    """curve.csv as (step, {column: value}) rows, a row's empty cells (a value not measured at that step) left
    out; read with float(), which gives back the exact value pandas wrote."""
    with open(curve_csv, newline="") as handle:
        return [(int(row.pop("step")), {key: float(value) for key, value in row.items() if value != ""})
                for row in csv.DictReader(handle)]


def sample_grid(config: Config, data_dir: Path, generator_file: Path):
    """The trainer's sample grid (Trainer.sample_grid, which reads only these attributes) of a saved generator,
    on the CPU (a head node without GPUs reuses GPU-trained runs), in the trainer's memory format."""
    import torch

    from faceres.models.io import load_generator
    from faceres.train.data import FaceImages
    from faceres.train.loop import Trainer

    device = torch.device("cpu")
    generator = load_generator(generator_file, device)
    if config.scale.channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    trainer = SimpleNamespace(dataset=FaceImages(data_dir, "train"), ctx=SimpleNamespace(device=device),
                              bfr=config.degrade.bfr.at_resolution(config.resolution), config=config, G_ema=generator)
    return Trainer.sample_grid(trainer)


def train(config: Config, arm_name: str, data_dir: Path, out_dir: Path, track: bool = True,
          data_digest: str | None = None) -> dict:
    """Train one arm in this process (or as one torchrun rank): resume / reuse by fingerprint.

    The MLflow run is the one of each node's first process (local rank 0) started with tracking: on one node
    that is rank 0; on several, the node that runs the DVC stage (the others run `faceres train --no-track`).
    Every node's first process ends with the result in out_dir, whichever node rank 0 was on (c10d ranks the
    nodes by host name).
    """
    from faceres.config.arms import find_arm, training_config
    from faceres.train.distributed import init_distributed, shutdown
    from faceres.train.loop import train_arm

    arm = find_arm(config, arm_name)
    config = training_config(config, arm)
    reason = arm.not_runnable_reason(config.resolution)
    if reason is not None:
        log.info(f"train {arm_name}: not run: {reason}")
        return status.write_training_not_run(out_dir, dataclasses.asdict(arm), reason)
    ctx = init_distributed(use_cuda=config.scale.gpus > 0)  # gpus: 0 trains on the CPU even where CUDA exists
    try:
        vgg = None
        if config.train.perceptual_weight > 0 or config.train.style_weight > 0:
            from faceres.weights.load import load_vgg16_features

            vgg = load_vgg16_features()
        tracked = track and ctx.local_rank == 0
        with maybe_tracked(
            config, "train", tracked, run_name=f"train-{arm_name}", logged_config=arm_config(config, arm),
            extra_params={**arm_params(arm), "world_size": ctx.world_size},
        ) as run:
            if run is not None:
                run.set_tags({"arm": arm_name})
                log_training_data(run, data_dir)
            summary = train_arm(
                config, arm, data_dir, out_dir, vgg_features=vgg, ctx=ctx,
                log=run.log_metrics if run is not None else None,
                log_image=run.log_image if run is not None else None,
                data_digest=data_digest,
            )
            if run is not None and summary:
                record_trained(run, arm_name, summary, out_dir, config, data_dir)
        if ctx.is_main and summary:
            log.info(
                f"train {arm_name}: {summary['steps']} steps, {summary['images']} images in {summary['seconds']:.0f} s "
                f"({summary['images_per_s']:.1f} img/s) -> {out_dir}"
            )
        return summary
    finally:
        shutdown(ctx)


def run_or_launch(config: Config, arm_name: str, data_dir: Path, out_dir: Path, track: bool,
                  forwarded: list[str], data_digest: str | None = None) -> None:
    """Train `arm_name`, or copy a finished run with the same fingerprint from the run cache (trained by another
    job, node or experiment) and record the stage's MLflow run, before any torchrun launch; otherwise train in
    this process, or re-execute as torchrun with `forwarded` (a `faceres` command line) plus the training
    images' digest, hashed here once for every process of this node. `data_digest`: given when this process is
    one of those torchrun started."""
    from faceres.config.arms import find_arm, training_config
    from faceres.train.launch import planned_processes, relaunch_under_torchrun, torchrun_command, under_torchrun
    from faceres.train.runcache import finished_run, reuse_finished_run

    if under_torchrun():
        train(config, arm_name, data_dir, out_dir, track, data_digest=data_digest)
        return
    arm = find_arm(config, arm_name)
    config = training_config(config, arm)  # a replicate's seed: its fingerprint and its MLflow run's params
    if arm.not_runnable_reason(config.resolution) is not None:
        train(config, arm_name, data_dir, out_dir, track)  # records it as not run; nothing to launch
        return
    processes = planned_processes(config)
    run, finished = finished_run(config, arm, data_dir, processes)
    if not finished:
        command = torchrun_command(config, [*forwarded, "--data-digest", run.data_digest])
        if command is None:
            train(config, arm_name, data_dir, out_dir, track, data_digest=run.data_digest)
        else:
            relaunch_under_torchrun(command)
        return
    with maybe_tracked(config, "train", track, run_name=f"train-{arm_name}", logged_config=arm_config(config, arm),
                       extra_params={**arm_params(arm), "world_size": processes}) as mlflow_run:
        summary = reuse_finished_run(arm, run.key, out_dir)
        if mlflow_run is not None:
            mlflow_run.set_tags({"arm": arm_name})
            log_training_data(mlflow_run, data_dir)
            record_trained(mlflow_run, arm_name, summary, out_dir, config, data_dir)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training entry point's arguments: `faceres train`, the stage, and the launcher's re-execution."""
    parser.add_argument("arm", help="main, an arm of params.yaml ablations.arms, or a replicate <arm>_s<seed> "
                                    "(ablations.seeds)")
    add_params_arguments(parser)
    parser.add_argument("--no-track", action="store_true", help="do not log an MLflow run")
    parser.add_argument("--data", default=str(Layout().prepared), help="prepared dataset (default: %(default)s)")
    parser.add_argument("--out", default=None, help=f"output directory (default: {Layout().models}/ARM)")
    # the training images' sha256, handed by the launcher to the torchrun processes it starts (hashed once)
    parser.add_argument("--data-digest", type=_sha256_hex, default=None, help=argparse.SUPPRESS)


def run_from_args(args: argparse.Namespace) -> None:
    out = Path(args.out) if args.out else Layout().models / args.arm
    # what the GPU launcher re-executes under torchrun: this module with the same arguments
    forwarded = [args.arm, "--params", args.params, "--data", args.data, "--out", str(out),
                 *(f"-S{o}" for o in args.overrides), *(["--no-track"] if args.no_track else [])]
    run_or_launch(config_from_args(args), args.arm, Path(args.data), out, not args.no_track, forwarded,
                  data_digest=args.data_digest)


def _sha256_hex(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise argparse.ArgumentTypeError(f"--data-digest = {value}: allowed: a sha256 of 64 lower-case hex digits")
    return value


@user_errors_exit
def main(argv: Sequence[str]) -> None:
    """python stages/train.py ARM (the DVC stage), and python -m faceres.pipeline.train ARM [options] (what the
    GPU launcher re-executes, as stylegan2-ada's and nanoGPT's launchers start their own script)."""
    parser = argparse.ArgumentParser(prog="python -m faceres.pipeline.train", description="train one arm")
    add_train_arguments(parser)
    run_from_args(parser.parse_args(list(argv)))


if __name__ == "__main__":
    # run the imported module, not this __main__ copy: its logger is faceres.pipeline.train, which the console shows
    from faceres.pipeline import train as _stage

    sys.exit(_stage.main(sys.argv[1:]))
