"""A failed, refused or killed stage leaves its previous outputs as they were, a stage stops when its dvc process
dies, and the deps are precise: on a scratch copy of the repository (its real dvc.yaml and stage scripts, the
prepare stage at 20 synthetic faces), driven by DVC itself.

The reference for "as they were" is each output's bytes read before the failure. DVC deletes a stage's outputs
before it runs the command, so without dvc.yaml's `persist: true` and the stages' replace-on-success writes every
check below sees a deleted or a replaced output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from faceres.pipeline.dvc import copy_checkout, dvc_executable, run_dvc, set_params
from tests.conftest import REPO

TINY = {"profiles.cpu.identities": 10, "profiles.cpu.images_per_identity": 2, "profiles.cpu.workers": 0,
        "data.test_fraction": 0.3}
SLOW_PREPARE = {"profiles.cpu.identities": 1000}  # 2000 faces: tens of seconds, time to kill it mid-write
# what the report stage's first run writes in place of a real report (the outputs' content is not under test)
FAKE_REPORT = """from pathlib import Path
for name in ("tables", "figures", "pdf", "plots"):
    (Path("reports") / name).mkdir(parents=True, exist_ok=True)
    (Path("reports") / name / "a.txt").write_text(name)
Path("reports/report.md").write_text("# report")
Path("reports/report.html").write_text("<html></html>")
Path("reports/summary.json").write_text('{"main": {"bfr": {"psnr": 21.5}}}')
"""


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (or `folder` itself) -> its sha256."""
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


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


def test_a_refused_value_leaves_the_prepared_data_as_it_was(scratch, repo):
    _, env = scratch
    before = snapshot(repo / "data" / "prepared")
    set_params(repo / "params.yaml", {"profiles.cpu.resolution": 100})
    refused = run_dvc(["repro", "prepare"], repo, env)
    assert refused.returncode != 0
    assert "profiles.cpu.resolution = 100: allowed: a power of two" in refused.output, refused.output[-2000:]
    assert snapshot(repo / "data" / "prepared") == before
    # dvc sees what changed, the params, and not a deleted or modified output
    assert dvc_status(repo, env, "prepare") == {"prepare": [{"changed deps": {
        "params.yaml": {"profiles.cpu.resolution": "modified"}}}]}


def _start_prepare(repo: Path, env: dict) -> tuple[subprocess.Popen, psutil.Process]:
    """`dvc repro prepare` at SLOW_PREPARE in its own process group, once its stage is writing images: (dvc, the
    stage's process)."""
    set_params(repo / "params.yaml", SLOW_PREPARE)
    shutil.rmtree(repo / "data" / "prepared.tmp", ignore_errors=True)  # left by a kill -9 before: not this run's
    dvc = subprocess.Popen([dvc_executable(), "repro", "prepare"], cwd=repo, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not any((repo / "data" / "prepared.tmp").glob("images/*/*.png")):
        assert dvc.poll() is None and time.time() < deadline, "prepare never started writing"
        time.sleep(0.05)
    (stage,) = [p for p in psutil.Process(dvc.pid).children(recursive=True) if "stages/prepare.py" in p.cmdline()]
    return dvc, stage


def test_a_stage_killed_mid_write_leaves_its_previous_output(scratch, repo):
    _, env = scratch
    before = snapshot(repo / "data" / "prepared")
    dvc, stage = _start_prepare(repo, env)
    os.killpg(dvc.pid, signal.SIGKILL)  # dvc and the stage at once, in the middle of the stage's writing
    dvc.wait()
    stage.wait(timeout=30)
    assert snapshot(repo / "data" / "prepared") == before
    assert dvc_status(repo, env, "prepare") == {"prepare": [{"changed deps": {  # the params, not the output
        "params.yaml": {"profiles.cpu.identities": "modified"}}}]}


# DVC starts a stage as `$SHELL -c COMMAND`: bash replaces itself by the stage (its parent is dvc); dash, Debian's
# /bin/sh and DVC's shell where SHELL is unset (as in CI), stays between them, alive when dvc is killed.
@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_a_stage_whose_dvc_process_dies_stops_and_replaces_nothing(scratch, repo, shell):
    import mlflow

    _, env = scratch
    env = {**env, "SHELL": shutil.which(shell)}
    before = snapshot(repo / "data" / "prepared")
    dvc, stage = _start_prepare(repo, env)
    killed_at = time.time()
    os.kill(dvc.pid, signal.SIGKILL)  # dvc alone: the stage is left without its parent
    dvc.wait()
    try:
        stage.wait(timeout=60)
    finally:  # an orphan that keeps running is this test's failure, not the next test's problem
        if stage.is_running():
            stage.kill()
    stopped_after = time.time() - killed_at
    assert snapshot(repo / "data" / "prepared") == before, "the orphaned stage replaced data/prepared"
    assert not (repo / "data" / "prepared.tmp").exists(), "its half-written folder was removed as it stopped"
    # It ended its MLflow run itself, as KILLED (not FINISHED: it did not finish; not RUNNING for ever).
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["faceres-cpu-synthetic"], filter_string="tags.stage = 'prepare'",
                              order_by=["attributes.start_time DESC"])
    assert runs["status"].iloc[0] == "KILLED", runs[["status", "start_time"]]
    print(f"\nthe stage stopped {stopped_after:.1f} s after its dvc process died")


def test_a_dead_tracking_server_on_a_report_rerun_leaves_reports_as_they_were(scratch, repo):
    _, env = scratch
    for folder in ("metrics", "models", "trajectories", "data/restored", "data/degraded"):  # the report's deps
        (repo / folder).mkdir(parents=True, exist_ok=True)
    (repo / "data" / "weights.json").write_text("[]\n")
    (repo / "write_reports.py").write_text(FAKE_REPORT)
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    real_command = pipeline["stages"]["report"]["cmd"]
    pipeline["stages"]["report"]["cmd"] = "python write_reports.py"  # a first, successful report
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    run_dvc(["repro", "--single-item", "report"], repo, env).check()
    before = snapshot(repo / "reports")
    assert "reports/summary.json" in before  # `cache: false`: no copy in DVC's cache to check out again
    pipeline["stages"]["report"]["cmd"] = real_command
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    failed = run_dvc(["repro", "--single-item", "report"], repo, {**env, "MLFLOW_TRACKING_URI": dead})
    assert failed.returncode != 0
    assert f"MLflow tracking server {dead} is unreachable" in failed.output, failed.output[-2000:]
    assert snapshot(repo / "reports") == before
    assert not (repo / "reports.tmp").exists()


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


# A stand-in stage: stop_with_parent with one of its two ways to notice switched off, then a long sleep.
STAND_IN = """
import sys, time
import faceres.pipeline as pipeline
try:  # from the first moment its parent may die: the test kills it once it reads "ready"
    if sys.argv[2] == "watchdog":
        pipeline._request_parent_death_signal = lambda signum: None  # the watchdog alone
        pipeline.stop_with_parent(poll_seconds=0.2)
    else:
        pipeline.stop_with_parent(poll_seconds=3600)  # the kernel's signal alone: the watchdog looks once, at once
    print("ready", flush=True)
    time.sleep(120)
except KeyboardInterrupt as stopped:
    open(sys.argv[1], "w").write(type(stopped).__name__)
    raise
"""
# the stand-in's parent: a "dvc" that starts the stage directly, or through a shell that does not replace itself
# by the stage (`; exit $?` keeps any sh from doing so), as dash and fish run `$SHELL -c COMMAND`
PARENT = """import shlex, subprocess, sys
stage = [sys.executable, *sys.argv[1:4]]
if sys.argv[4] == "shell":
    stage = ["sh", "-c", shlex.join(stage) + "; exit $?"]
subprocess.Popen(stage).wait()
"""


@pytest.mark.parametrize("way", ["parent-death signal", "watchdog", "watchdog through a shell"])
def test_each_way_alone_stops_a_stage_whose_parent_died(tmp_path, way):
    marker, stand_in = tmp_path / "stopped", tmp_path / "stage.py"
    stand_in.write_text(STAND_IN)
    through = "shell" if way.endswith("shell") else "direct"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(stand_in), str(marker), way.split()[0], through],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert parent.stdout.readline().strip() == "ready"
    (stage,) = [p for p in psutil.Process(parent.pid).children(recursive=True) if str(stand_in) in p.cmdline()]
    parent.kill()
    parent.wait()
    try:
        stage.wait(timeout=20)
    finally:
        if stage.is_running():
            stage.kill()
    assert marker.read_text() == "StageStopped"  # it unwound (finally blocks, the MLflow run), not died
