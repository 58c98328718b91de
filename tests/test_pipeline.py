"""The DVC pipeline's shape: one training stage per distinct arm, params wired so an arm reruns alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from faceres.config.arms import ablation_rows, list_arms
from faceres.config.schema import load_config
from tests.conftest import REPO

DVC = Path(sys.executable).with_name("dvc")


def _stages() -> list[str]:
    result = subprocess.run([str(DVC), "stage", "list", "--name-only"], cwd=REPO, capture_output=True, text=True,
                            check=True)
    return result.stdout.split()


def test_dvc_yaml_lists_one_train_stage_per_distinct_arm():
    config = load_config(REPO / "params.yaml")
    arms = list_arms(config)
    configurations = [(a.skips, a.alpha, a.aug) for a in arms]
    assert len(set(configurations)) == len(configurations), "two arms would train the same configuration"
    trains = sorted(s for s in _stages() if s.startswith("train"))
    expected = sorted(["train-main"] + [f"train@{a.name}" for a in arms if a.name != "main"])
    assert trains == expected
    for stage in ("restore", "evaluate"):
        assert {s.split("@")[-1] for s in _stages() if s.startswith(stage + "@")} == {a.name for a in arms[1:]}


def test_table_rows_come_from_the_main_model_and_one_key_arms():
    config = load_config(REPO / "params.yaml")
    assert ablation_rows(config, "skips") == {0: "skips0", 1: "skips1", 2: "skips2", 4: "main", 6: "skips6"}
    assert ablation_rows(config, "aug") == {False: "noaug", True: "main"}
    assert ablation_rows(config, "alpha") == {0.1: "alpha0_1", 0.3: "alpha0_3", 1.0: "main", 3.0: "alpha3"}


def test_only_the_main_models_stages_read_the_top_level_keys():
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    readers = {name for name, stage in pipeline.items()
               if any(p in ("skips", "alpha", "aug") for p in stage.get("params", stage.get("do", {}).get("params", [])))}
    # The report shows the main model's values; everything else of `dvc exp run -S skips=6` comes from the cache.
    assert readers == {"train-main", "train-main-seed", "report"}  # main and its replicates (ablations.seeds.main)
