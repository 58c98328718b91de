"""The deps are precise: on a scratch copy of the repository (its real dvc.yaml and stage scripts, the prepare
stage at 20 synthetic faces), `dvc status` after a change says which stages are out of date.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from faceres.pipeline.dvc import copy_checkout, run_dvc, set_params
from tests.conftest import REPO

TINY = {"profiles.cpu.identities": 10, "profiles.cpu.images_per_identity": 2, "profiles.cpu.workers": 0,
        "data.test_fraction": 0.3}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> tuple[Path, dict]:
    """A repository holding this working tree at TINY params, after `dvc repro prepare`."""
    root = tmp_path_factory.mktemp("failed-stages")
    repo = copy_checkout(REPO, root / "repo")
    set_params(repo / "params.yaml", TINY)
    git(repo, "commit", "-qam", "tiny prepare")
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "OMP_NUM_THREADS": "1",
           "FACERES_CACHE": str(root / "cache")}
    run_dvc(["repro", "prepare"], repo, env).check()
    return repo, env


@pytest.fixture
def repo(scratch):
    """The scratch repository; its params.yaml and dvc.yaml put back after each test."""
    repo, _ = scratch
    yield repo
    git(repo, "checkout", "--", "params.yaml", "dvc.yaml")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True)


def dvc_status(repo: Path, env: dict, *targets: str) -> dict:
    out = run_dvc(["status", "--json", *targets], repo, env).check().output
    return json.loads(out[out.index("{"):])


def test_prepare_ignores_training_keys_and_each_external_evaluation_depends_on_its_own_folder(scratch, repo):
    _, env = scratch
    # prepare depends on the profile keys it reads: training's batch and epochs leave it up to date
    set_params(repo / "params.yaml", {"profiles.cpu.epochs": 3, "profiles.cpu.batch": 16, "profiles.cpu.workers": 2})
    assert dvc_status(repo, env, "prepare") == {}
    set_params(repo / "params.yaml", {"profiles.cpu.images_per_identity": 3})  # what it reads: it reruns
    assert list(dvc_status(repo, env, "prepare")) == ["prepare"]
    git(repo, "checkout", "--", "params.yaml")
    # Two external methods recorded as evaluated (dvc commit: their lock entries without running them), then a
    # (re-)import of gpen: gpen's evaluation is out of date, gfpgan's is not.
    (repo / "data" / "weights.json").write_text("[]\n")
    manifest = repo / "data" / "degraded" / "bfr" / "manifest.csv"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("image_id,scale\n")
    stages = ["evaluate-external@gfpgan", "evaluate-external@gpen"]
    for method in ("gfpgan", "gpen"):
        assert (repo / "data" / "external" / method / ".gitkeep").is_file(), "every clone has the folder"
        (repo / "metrics" / method).mkdir(parents=True, exist_ok=True)
        (repo / "metrics" / method / "bfr.json").write_text("{}")
    run_dvc(["commit", "--force", *stages], repo, env).check()
    assert dvc_status(repo, env, *stages) == {}
    (repo / "data" / "external" / "gpen" / "0001.png").write_bytes(b"an imported restoration")
    assert dvc_status(repo, env, *stages) == {"evaluate-external@gpen": [{"changed deps": {
        "data/external/gpen": "modified"}}]}
