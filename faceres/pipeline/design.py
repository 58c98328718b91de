"""The methods the pipeline evaluates and how the tables name them.

A method is the main model (``main``, "Ours"), an ablation arm (params.yaml ``ablations.arms``), the degraded
input itself (``deg``, the paper's DEG*) or an external method (params.yaml ``external``: a folder of another
method's restorations of data/degraded/bfr/test, by default data/external/<method> as `faceres import-external`
writes it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from faceres.config.arms import list_runs, training_config
from faceres.config.schema import Config, load_config
from faceres.core.errors import DataError
from faceres.core.imageio import is_image_file
from faceres.pipeline import stage_args, status
from faceres.pipeline.layout import Layout, seed_dir

DEG = "deg"
# Table 8 and Figure 8 rows: label -> method
COMPARISON = {"DEG": DEG, "DFDNet": "dfdnet", "GFPGAN": "gfpgan", "GPEN": "gpen", "Ours": "main"}
FIGURE8 = {"DEG*": DEG, "GPEN": "gpen", "GFPGAN*": "gfpgan", "DFDNet": "dfdnet", "Ours": "main"}


def arm_config(config: Config, arm) -> Config:
    """The config as this arm sees it: its skips/alpha/aug (and a replicate's training seed) in place of the main
    model's (for tracking)."""
    return dataclasses.replace(training_config(config, arm), skips=arm.skips, alpha=arm.alpha, aug=arm.aug)


def arm_params(arm) -> dict:
    """What every run of an arm logs beside its stage's params: its name and effective skips/alpha/aug (the
    compare view's axes)."""
    return {"arm": arm.name, "arm_family": arm.family, "skips": arm.skips, "alpha": arm.alpha, "aug": arm.aug}


def method_run(config: Config, method: str) -> tuple[Config, dict]:
    """(config, extra params) of a restore/evaluate run: an arm's runs carry its own skips/alpha/aug, so MLflow's
    compare view lines the arms up by them; other methods (deg, external) have none."""
    arms = {arm.name: arm for arm in list_runs(config)}
    if method in arms:
        return arm_config(config, arms[method]), {"method": method, **arm_params(arms[method])}
    return config, {"method": method}  # no skips/alpha/aug: not a string "-" that turns the axis categorical


def prediction_folders(config: Config, method: str, task: str, degraded: Path, restored: Path) -> list[Path] | str:
    """The folders to score (noise seeds first to last), or the status when there are none."""
    if method == DEG:
        return [degraded / task / "test"]
    missing = unavailable(config, method, restored)
    if missing is not None:
        return missing
    if method in config.external:
        return [external_folder(config, method)]
    folders = sorted((restored / method / task).glob("seed*"), key=lambda p: int(p.name[4:]))
    if not folders:
        raise DataError(f"{restored / method / task}: no seed*/ folders of restorations")
    return folders


def unavailable(config: Config, method: str, restored: Path) -> str | None:
    """NOT_PROVIDED (an external method without restorations), NOT_RUN (an arm impossible at this resolution),
    or None: the method has restorations to score (and an MLflow run to log them)."""
    if method == DEG:
        return None
    if method in config.external:
        return status.NOT_PROVIDED if external_folder(config, method) is None else None
    return status.NOT_RUN if status.read_restore_status(restored / method).get("status") == status.NOT_RUN else None


def external_folder(config: Config, method: str, external_root: Path = Layout().external) -> Path | None:
    """An external method's restorations: params.yaml's ``external.<method>``, else the folder
    `faceres import-external` writes (data/external/<method>) if it holds images; None: not provided (the
    folder, a DVC dependency, is in git with only its .gitkeep until the method is imported)."""
    folder = config.external[method]
    if folder is None:
        default = external_root / method
        holds_images = default.is_dir() and any(is_image_file(path) for path in default.iterdir())
        return default if holds_images else None
    if not Path(folder).is_dir():
        raise DataError(f"external.{method} = {folder}: not a directory of restored images")
    return Path(folder)


def restored_seed_dir(restored: Path, method: str, task: str, seed: int = 0) -> Path | None:
    folder = seed_dir(restored, method, task, seed)
    return folder if folder.is_dir() else None


def method_and_tasks(argv: Sequence[str], script: str):
    """(config, METHOD, [TASK, ...]) of `python stages/<script> METHOD TASK [TASK ...]`, the tasks checked."""
    method, *tasks = stage_args(argv, f"python stages/{script} METHOD TASK [TASK ...]", 2)
    config = load_config()
    for task in tasks:
        config.degrade.task(task)  # a one-line error for an unknown task
    return config, method, tasks
