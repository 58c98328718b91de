"""The study's code paths (issue 24): training-seed replicates, the test split of unseen identities, generator
snapshots and their validation trajectories, and a tiny study end to end whose report pools the seeds and
decides the claims over them."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceres.config.arms import find_arm, list_runs, seeds_of, training_config
from faceres.config.schema import load_config
from faceres.core.errors import ConfigError, DataError
from faceres.train.outputs import snapshot_steps
from tests.conftest import REPO

SEEDS = {"ablations.seeds.main": [1, 2], "ablations.seeds.arms": [1]}


def test_replicates_are_methods_of_their_own_with_their_training_seed():
    config = load_config(overrides=SEEDS)
    names = [arm.name for arm in list_runs(config)]
    assert names[:9] == ["main", "skips0", "skips1", "skips2", "skips6", "alpha0_1", "alpha0_3", "alpha3", "noaug"]
    assert names[9:] == ["main_s1", "main_s2", "skips0_s1", "skips1_s1", "skips2_s1", "skips6_s1", "alpha0_1_s1",
                         "alpha0_3_s1", "alpha3_s1", "noaug_s1"]
    replicate = find_arm(config, "skips0_s1")
    assert (replicate.skips, replicate.alpha, replicate.aug, replicate.family) == (0, 1.0, True, "skips0")
    assert training_config(config, replicate).seed == 1 and training_config(config, find_arm(config, "skips0")).seed == 0
    assert seeds_of(config, "main") == {0: "main", 1: "main_s1", 2: "main_s2"}
    assert seeds_of(config, "noaug") == {0: "noaug", 1: "noaug_s1"}
    assert [a.name for a in list_runs(load_config())] == names[:9]  # params.yaml: no replicates


def test_replicate_seeds_are_refused_when_they_repeat_the_run_or_collide_with_a_method():
    with pytest.raises(ConfigError, match=r"ablations.seeds.main = \[0\]: allowed: seeds other than seed = 0"):
        load_config(overrides={"ablations.seeds.main": [0]})
    with pytest.raises(ConfigError, match="ablations.seeds.arms = .*a list of distinct integers"):
        load_config(overrides={"ablations.seeds.arms": [1, 1]})
    with pytest.raises(ConfigError, match="skips0 with seed 1 is skips0_s1, a method of its own"):
        load_config(overrides={"ablations.seeds.arms": [1], "ablations.arms.skips0_s1": {"skips": 1}})


def test_dvc_generates_the_replicates_stages(tmp_path):
    """`dvc stage list` (DVC's own resolution of the matrix stages) with params.yaml's seeds set as make study sets them."""
    import yaml

    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ablations"]["seeds"] = {"main": [1, 2], "arms": [1]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = str(REPO / ".venv" / "bin" / "dvc") if (REPO / ".venv" / "bin" / "dvc").exists() else "dvc"
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True)
    listing = subprocess.run([dvc, "stage", "list"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    stages = {line.split()[0]: line for line in listing.splitlines() if line.strip()}
    for name, out in (("train-main-seed@1", "models/main_s1"), ("train-main-seed@2", "models/main_s2"),
                      ("train-seed@skips0-1", "models/skips0_s1"), ("restore-seed@noaug-1", "data/restored/noaug_s1"),
                      ("evaluate-main-seed@2", "metrics/main_s2"), ("trajectory-seed@alpha3-1", "trajectories/alpha3_s1"),
                      ("trajectory-main", "trajectories/main"), ("trajectory-deg", "trajectories/deg")):
        assert name in stages and out in stages[name], (name, listing)
    assert not any("_s0" in line for line in stages)  # seed 0 is the arm itself


def test_snapshot_steps_divide_training_evenly_and_end_at_the_last_step():
    assert snapshot_steps(910, 4) == [228, 455, 682, 910]  # round(910 q / 4)
    assert snapshot_steps(5, 4) == [1, 2, 4, 5]
    assert snapshot_steps(2, 4) == [1, 2]  # fewer steps than points: each step once
    assert snapshot_steps(100, 1) == [100]


def _photos(folder, identities):
    """A folder of 24x24 photos named 000.jpg, 001.jpg, ... and an identities CSV (file, identity)."""
    images = folder / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(folder / "identities.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "identity"])
        for i, identity in enumerate(identities):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(images / f"{i:03d}.jpg")
            writer.writerow([f"{i:03d}.jpg", identity])
    return images, folder / "identities.csv"


def test_the_test_split_takes_only_identities_no_earlier_image_had(tmp_path):
    from faceres.data.prepare import assign_splits, folder_items

    # 60 images: the first 30 of identities 0..14 (two each), the rest of identities 10..39 (10..14 seen before)
    identities = [str(i // 2) for i in range(30)] + [str(i) for i in range(10, 40)]
    images, table = _photos(tmp_path, identities)
    overrides = {"data.source": "folder", "data.folder.train_dir": str(images), "data.folder.identities_csv": str(table),
                 "data.test_fraction": 0.25}
    config = load_config(overrides={**overrides, "data.folder.test_unseen_after": 30})
    items = folder_items(config.data.folder)
    splits = assign_splits(items, config)
    test = {item.identity for item, split in zip(items, splits) if split == "test"}
    assert len(test) == 10  # round(0.25 x 40 identities)
    assert test <= {str(i) for i in range(15, 40)}  # none of identities 0..14, seen among the first 30 files
    anywhere = assign_splits(items, load_config(overrides=overrides))
    assert {item.identity for item, split in zip(items, anywhere) if split == "test"} & {str(i) for i in range(15)}
    with pytest.raises(DataError, match=r"data.folder.test_unseen_after = 55: 5 identities are eligible, 10 are to "
                                        r"be held out as the test split"):
        assign_splits(items, load_config(overrides={**overrides, "data.folder.test_unseen_after": 55}))  # 35..39 unseen


TINY_STUDY = {
    "profiles.cpu.identities": 12, "profiles.cpu.images_per_identity": 3, "profiles.cpu.batch": 4,
    "profiles.cpu.workers": 0, "data.test_fraction": 0.34, "data.val_fraction": 0.25,
    "degrade.splits": ["test", "val"], "ablations.seeds.main": [1], "train.snapshots": 3, "train.log_every": 1,
    "restore.noise_seeds": 1, "evaluate.ks": [1, 2], "evaluate.bootstrap": 20, "report.qualitative_images": 1,
    "evaluate.metrics": ["psnr", "ssim", "lpips", "ipr"],  # no Inception: the slow part, not under test here
}


@pytest.mark.slow
@pytest.mark.needs_weights
def test_a_tiny_study_pools_seeds_and_decides_claims_over_them(tmp_path, monkeypatch):
    """main with two training seeds on a tiny synthetic set: snapshots -> trajectories (deg's too) -> metrics ->
    a report whose Table 8 row is the mean ± std over the seeds, and whose claims name each seed."""
    from faceres.data.prepare import prepare_dataset
    from faceres.pipeline import degrade, evaluate, report, restore, train, trajectory
    from faceres.weights.sources import weights_dir

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights").symlink_to(weights_dir())
    monkeypatch.setenv("FACERES_CACHE", str(cache))
    config = load_config(overrides=TINY_STUDY)
    data, degraded, models, restored, metrics = (tmp_path / d for d in ("data", "degraded", "models", "restored", "metrics"))
    prepare_dataset(config, data, workers=1, progress=False)
    degrade.run(config, "bfr", data, degraded / "bfr", track=False)
    for method in ("main", "main_s1"):
        train.run_or_launch(config, method, data, models / method, False, [])
        trajectory.run(config, method, models / method, degraded, data, tmp_path / "trajectories" / method, track=False)
        restore.run(config, method, models / method, degraded, restored / method, ["bfr"], track=False)
    trajectory.run(config, "deg", None, degraded, data, tmp_path / "trajectories" / "deg", track=False)
    for method in ("main", "main_s1", "deg"):
        evaluate.run(config, method, ["bfr"], data, degraded, restored, metrics, track=False)

    summaries = [json.loads((models / m / "train.json").read_text()) for m in ("main", "main_s1")]
    assert summaries[0]["fingerprint"] != summaries[1]["fingerprint"]
    assert summaries[0]["generator_sha256"] != summaries[1]["generator_sha256"]  # another seed, other weights
    steps = summaries[0]["steps"]
    assert sorted(p.name for p in (models / "main" / "snapshots").iterdir()) == [
        f"step{s:06d}.pt" for s in snapshot_steps(steps, 3)[:-1]]
    curve = pd.read_csv(tmp_path / "trajectories" / "main" / "validation.csv")
    assert sorted(set(curve["step"])) == snapshot_steps(steps, 3)
    n_val = len(list((degraded / "bfr" / "val").glob("*.png")))
    assert (curve[curve["bin"] == "all"]["n"] == n_val).all()
    assert (curve[curve["bin"] != "all"].groupby("step")["n"].sum() == n_val).all()  # the bins partition the faces
    deg_curve = pd.read_csv(tmp_path / "trajectories" / "deg" / "validation.csv")
    assert set(deg_curve["step"]) == {0}

    paths = report.run(config, metrics, data, degraded, restored, tmp_path / "reports", tmp_path / "weights.json",
                       track=False, models_root=models, trajectories_root=tmp_path / "trajectories")
    table8 = (tmp_path / "reports" / "tables" / "table8.md").read_text()
    psnr = [json.loads((metrics / m / "bfr.json").read_text())["metrics"]["psnr"]["mean"] for m in ("main", "main_s1")]
    ours = next(line for line in table8.splitlines() if line.startswith("| Ours"))
    assert f"{np.mean(psnr):.2f} ± {np.std(psnr, ddof=1):.2f}" in ours, (ours, psnr)
    assert "main: 2" in table8  # the note says which rows pool how many seeds
    claims = pd.read_csv(tmp_path / "reports" / "tables" / "claims.csv")
    ours_vs_deg = claims[claims["claim"].str.startswith("Ours beats the degraded input on LPIPS") & (claims["metric"] != "fid")]
    assert set(ours_vs_deg["seeds"]) == {"0;1"} and ours_vs_deg["validation_last_half"].notna().all()
    assert (tmp_path / "reports" / "figures" / "claim_trajectories.png").is_file()
    assert claims[claims["metric"] == "fid"]["verdict"].eq("not run").all()  # not evaluated: said, not a crash
    assert "Every verdict holds at this scale only: 64 px" in paths["md"].read_text()
