"""MLflow helper: local store by default, params/tags/metrics logged, unreachable servers fail fast in one line."""

from __future__ import annotations

import dataclasses
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from faceres.core.errors import TrackingError
from faceres.config.arms import find_arm
from faceres.config.loader import to_flat_dict
from faceres.pipeline.design import arm_config, arm_params
from faceres.pipeline.tracking import (
    PROCESS_TAG,
    REGISTERED_MODEL,
    check_reachable,
    config_digest,
    experiment_name,
    process_ended,
    process_identity,
    project_root,
    stage_run,
    tracking_uri,
)
from tests.conftest import REPO, small_config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_default_store_is_mlflows_own_default_at_the_project_root(project):
    # MLflow 3's `mlflow ui` / `mlflow server` open sqlite:///mlflow.db in the directory they start in
    assert tracking_uri(small_config()) == f"sqlite:///{project / 'mlflow.db'}"


def test_env_and_params_choose_the_store(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert tracking_uri(small_config()) == "http://example.invalid:5000"
    assert tracking_uri(small_config(**{"tracking.uri": "sqlite:///x.db"})) == "sqlite:///x.db"


def test_queued_experiment_copies_log_to_the_main_checkout(tmp_path):
    temp_copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123" / "sub"
    temp_copy.mkdir(parents=True)
    assert project_root(temp_copy) == tmp_path / "repo"


def test_stage_run_logs_params_tags_metrics_and_artifacts(project):
    from mlflow.tracking import MlflowClient

    config = small_config()
    artifact = project / "manifest.csv"
    artifact.write_text("a,b\n1,2\n")
    with stage_run(config, "prepare") as run:
        run.log_metrics({"images": 12, "seconds": 0.5})
        run.log_artifact(artifact)
        run_id = run.run_id
    client = MlflowClient(tracking_uri(config))
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["skips"] == "2" and logged.data.params["scale.resolution"] == "64"
    assert logged.data.params["degrade.bfr.blur_sigma"] == "[0.1, 10.0]"
    assert logged.data.tags["stage"] == "prepare" and logged.data.tags["profile"] == "cpu"
    assert "git_commit" in logged.data.tags
    assert logged.data.metrics == {"images": 12.0, "seconds": 0.5}
    assert [a.path for a in client.list_artifacts(run_id)] == ["manifest.csv"]
    assert (project / "mlruns").is_dir(), "artifacts stay beside the local store"


def test_runs_of_one_configuration_share_a_params_sha_tag_and_any_change_splits_them(project, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("DVC_STAGE", "evaluate@skips0")
    configs = [small_config(), small_config(), small_config(alpha=0.3), small_config(alpha=0.3)]
    run_ids = []
    for config in configs:
        with stage_run(config, "evaluate") as run:
            run_ids.append(run.run_id)
    # an arm's run of the first configuration: its own skips in the params, the pipeline's digest in the tag
    with stage_run(configs[0], "evaluate", logged_config=dataclasses.replace(configs[0], skips=0)) as run:
        arm_run = run.run_id
    client = MlflowClient(tracking_uri(configs[0]))
    tags = [client.get_run(run_id).data.tags for run_id in run_ids]
    shas = [t["params_sha"] for t in tags]
    assert shas[0] == shas[1] and shas[2] == shas[3] and shas[0] != shas[2]
    arm = client.get_run(arm_run).data
    assert arm.params["skips"] == "0" and client.get_run(run_ids[0]).data.params["skips"] == "2"
    assert arm.tags["params_sha"] == shas[0]
    assert shas[0] == config_digest(configs[0]) and len(shas[0]) == 12
    assert {t["dvc_stage"] for t in tags} == {"evaluate@skips0"}
    found = client.search_runs([client.get_run(run_ids[0]).info.experiment_id],
                               filter_string=f"tags.params_sha = '{shas[2]}' and tags.stage = 'evaluate'")
    assert sorted(r.info.run_id for r in found) == sorted(run_ids[2:])


def test_a_run_leaves_no_tracking_uri_behind_so_the_next_project_logs_to_its_own_store(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dvc.yaml").write_text("stages: {}\n")
        monkeypatch.chdir(tmp_path / name)
        with stage_run(small_config(), "prepare", run_name=f"prepare-{name}"):
            pass
    assert "MLFLOW_TRACKING_URI" not in os.environ  # mlflow.set_tracking_uri writes it; stage_run puts it back
    for name in ("a", "b"):
        client = MlflowClient(f"sqlite:///{tmp_path / name / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("faceres-cpu-synthetic")
        names = [r.info.run_name for r in client.search_runs([experiment.experiment_id], "tags.stage = 'prepare'")]
        assert names == [f"prepare-{name}"]


def test_a_failing_stage_marks_its_run_failed_and_an_interrupted_one_killed(project):
    from mlflow.tracking import MlflowClient

    config = small_config()
    with pytest.raises(RuntimeError):
        with stage_run(config, "train") as run:
            failed = run.run_id
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C, or SIGTERM: a stage whose dvc process died (StageStopped)
        with stage_run(config, "train") as run:
            interrupted = run.run_id
            raise KeyboardInterrupt
    client = MlflowClient(tracking_uri(config))
    assert [client.get_run(r).info.status for r in (failed, interrupted)] == ["FAILED", "KILLED"]


# A stage run in another process, killed with -9 in the middle: it prints its run id first.
KILLED_STAGE = """
import os, signal
from faceres.pipeline.tracking import stage_run
from tests.conftest import small_config
with stage_run(small_config(), "train", run_name="killed") as run:
    print(run.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_run_left_running_by_a_killed_process_is_ended_killed_when_the_next_run_starts(project):
    from mlflow.tracking import MlflowClient

    config = small_config()
    killed = subprocess.run([sys.executable, "-c", KILLED_STAGE], cwd=project, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    killed_run = killed.stdout.strip()
    client = MlflowClient(tracking_uri(config))
    experiment = client.get_experiment_by_name(experiment_name(config)).experiment_id
    alive_run = client.create_run(experiment, tags={PROCESS_TAG: process_identity()}).info.run_id  # this process's
    assert {client.get_run(r).info.status for r in (killed_run, alive_run)} == {"RUNNING"}  # what kill -9 leaves
    with stage_run(config, "evaluate"):
        assert client.get_run(killed_run).info.status == "KILLED"
        assert client.get_run(alive_run).info.status == "RUNNING"  # its process still runs


def test_a_process_identity_tells_a_live_process_from_an_ended_one_with_its_pid():
    me = process_identity()
    host, boot, pid, start = me.rsplit(":", 3)
    assert int(pid) == os.getpid() and not process_ended(me)
    if start:  # Linux: the start time tells a reused pid from the process that had it
        assert process_ended(f"{host}:{boot}:{pid}:{int(start) + 1}")
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    assert process_ended(f"{host}:{boot}:{finished.stdout.strip()}:")
    assert not process_ended(f"another-host.invalid:{boot}:{finished.stdout.strip()}:")  # cannot tell: left alone


def test_unreachable_server_is_one_line_error_before_any_work():
    uri = f"http://127.0.0.1:{_free_port()}"
    start = time.perf_counter()
    with pytest.raises(TrackingError) as info:
        check_reachable(uri)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert message.startswith(f"MLflow tracking server {uri} is unreachable") and "\n" not in message


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, fails", [(200, False), (404, False), (503, True)])
def test_server_health_answers(status, fails):
    handler = type("Handler", (_Handler,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        if fails:
            with pytest.raises(TrackingError, match=f"{status}"):
                check_reachable(uri)
        else:
            check_reachable(uri)
    finally:
        server.shutdown()


def _runs(client, config, query: str):
    experiment = client.get_experiment_by_name(experiment_name(config))
    return client.search_runs([experiment.experiment_id], filter_string=query)


def test_stage_runs_nest_under_one_parent_run_per_configuration_and_dvc_experiment(project, monkeypatch):
    from mlflow.tracking import MlflowClient

    first, changed = small_config(), small_config(alpha=0.3)
    children = {}
    for label, config, experiment in (("a1", first, ""), ("a2", first, ""), ("b", changed, ""), ("e", first, "exp-1")):
        monkeypatch.setenv("DVC_EXP_NAME", experiment)
        with stage_run(config, "prepare", run_name=label) as run:
            children[label] = run.run_id
            if label == "a2":
                time.sleep(1.0)  # a stage that takes a while
    client = MlflowClient(tracking_uri(first))
    parent_of = {label: client.get_run(run_id).data.tags["mlflow.parentRunId"] for label, run_id in children.items()}
    assert parent_of["a1"] == parent_of["a2"], "one configuration, one parent"
    assert len({parent_of["a1"], parent_of["b"], parent_of["e"]}) == 3, "a changed param or experiment: another"
    parents = _runs(client, first, "tags.stage = 'pipeline'")
    assert sorted(p.info.run_id for p in parents) == sorted(set(parent_of.values()))
    by_id = {p.info.run_id: p for p in parents}
    assert by_id[parent_of["e"]].info.run_name == "exp-1"
    assert by_id[parent_of["a1"]].info.run_name == f"repro-{config_digest(first)}"
    # The parent holds every effective parameter (the children only their stage's); the profile's as scale.*
    assert by_id[parent_of["b"]].data.params["alpha"] == "0.3"
    assert by_id[parent_of["a1"]].data.params["scale.resolution"] == "64"
    assert len(by_id[parent_of["a1"]].data.params) == len(to_flat_dict(first)) - len(to_flat_dict(first.profiles)) \
        + len(to_flat_dict(first.scale))
    assert {p.info.status for p in parents} == {"FINISHED"}
    # a parent lasts from its first stage run's start to its last one's end (not the milliseconds of its creation)
    first_child, last_child = (client.get_run(children[label]).info for label in ("a1", "a2"))
    parent = by_id[parent_of["a1"]].info
    assert parent.start_time <= first_child.start_time and parent.end_time >= last_child.end_time
    assert parent.end_time - parent.start_time >= 1000


def test_a_dvc_stage_logs_the_params_its_dvc_yaml_stage_declares(project, monkeypatch):
    from mlflow.tracking import MlflowClient

    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    config = small_config()
    arm = find_arm(config, "skips0")
    logged = {}
    for stage_address, stage, kwargs in (
        ("train@skips0", "train", {"logged_config": arm_config(config, arm), "extra_params": arm_params(arm)}),
        ("degrade@sr8", "degrade", {}),
        ("prepare", "prepare", {}),
    ):
        monkeypatch.setenv("DVC_STAGE", stage_address)
        with stage_run(config, stage, **kwargs) as run:
            logged[stage_address] = MlflowClient(tracking_uri(config)).get_run(run.run_id).data.params
    # dvc.yaml's train@ARM declares: seed, profile, profiles.${profile}, degrade.bfr, train, ablations.base,
    # ablations.arms.${key} (read by hand); plus the arm's name, the arm it replicates (itself) and skips/alpha/aug
    flat = {**{k: v for k, v in to_flat_dict(config).items() if not k.startswith("profiles.")},
            **{f"scale.{k}": v for k, v in to_flat_dict(config.scale).items()}}
    train_prefixes = ("seed", "profile", "scale.", "degrade.bfr.", "train.", "ablations.base.", "ablations.arms.skips0.")
    expected = {k for k in flat if k in ("seed", "profile") or k.startswith(train_prefixes[2:])}
    assert set(logged["train@skips0"]) == expected | {"arm", "arm_family", "skips", "alpha", "aug"}
    assert logged["train@skips0"]["skips"] == "0" and "evaluate.bootstrap" not in logged["train@skips0"]
    assert "ablations.arms.noaug.aug" not in logged["train@skips0"]
    # degrade@TASK declares seed, profile, profiles.${profile}, degrade
    assert logged["degrade@sr8"]["degrade.sr8.factor"] == "8" and "train.lr" not in logged["degrade@sr8"]
    # prepare declares three keys of the profile (profiles.${profile}.resolution, ...): those, as scale.*
    assert {k for k in logged["prepare"] if k.startswith("scale.")} == {
        "scale.resolution", "scale.identities", "scale.images_per_identity"}
    assert logged["prepare"]["scale.resolution"] == "64" and logged["prepare"]["data.source"] == "synthetic"


def test_images_datasets_the_generator_and_headline_numbers(project, monkeypatch):
    import numpy as np
    from mlflow.tracking import MlflowClient

    config = small_config()
    manifest = project / "prepared" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("image_id,split,identity\n0,train,1\n1,test,2\n")
    generator = project / "generator.pt"
    generator.write_bytes(b"weights")
    html = project / "report.html"
    html.write_text("<html></html>")
    run_ids = []
    for step in (1, 2):
        with stage_run(config, "train") as run:
            run.log_image(np.full((8, 8, 3), 10 * step, dtype=np.uint8), "samples", step)
            run.log_dataset(manifest, context="training")
            run.log_generator(generator, register=True)
            run.log_on_parent({"main/bfr/psnr": 20.5, "deg/bfr/fid": None}, [(html, None)])
            run_ids.append(run.run_id)
    client = MlflowClient(tracking_uri(config))
    logged = client.get_run(run_ids[0])
    images = [a.path for a in client.list_artifacts(run_ids[0], "images")]
    assert any(path.startswith("images/samples") for path in images), images  # MLflow's image series layout
    (dataset_input,) = logged.inputs.dataset_inputs
    assert dataset_input.dataset.name == f"{project.name}/prepared"
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert [a.path for a in client.list_artifacts(run_ids[0], "generator")] == ["generator/generator.pt"]
    versions = client.search_model_versions(f"name = '{REGISTERED_MODEL}'")
    assert sorted(v.run_id for v in versions) == sorted(run_ids)
    parent = client.get_run(logged.data.tags["mlflow.parentRunId"])
    assert parent.data.metrics == {"main/bfr/psnr": 20.5}
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["report.html"]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on the loopback interface, with its own store and artifacts."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            check_reachable(uri, timeout=2)
            break
        except TrackingError:
            if time.time() > deadline or server.poll() is not None:
                _stop(server)
                pytest.fail(f"mlflow server did not start on {uri}")
            time.sleep(1)
    yield uri, server
    _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """The server and its workers (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def test_stages_log_to_a_real_mlflow_server_and_fail_in_one_line_when_it_goes_away(project, mlflow_server,
                                                                                    monkeypatch):
    from mlflow.tracking import MlflowClient

    uri, server = mlflow_server
    config = dataclasses.replace(small_config(), tracking=dataclasses.replace(small_config().tracking, uri=uri))
    artifact = project / "manifest.csv"
    artifact.write_text("image_id,split,identity\n0,train,1\n")
    with stage_run(config, "evaluate", run_name="evaluate-main") as run:
        run.log_metrics({"bfr_psnr": 21.0})
        run.log_artifact(artifact)
        run.log_on_parent({"main/bfr/psnr": 21.0})
        run_id = run.run_id
    client = MlflowClient(uri)
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.data.metrics == {"bfr_psnr": 21.0}
    assert [a.path for a in client.list_artifacts(run_id)] == ["manifest.csv"]
    assert client.get_run(logged.data.tags["mlflow.parentRunId"]).data.metrics == {"main/bfr/psnr": 21.0}
    assert not (project / "mlflow.db").exists(), "nothing went to the local store"
    # The server goes away in the middle of a stage: one line naming the store, within seconds.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    with pytest.raises(TrackingError) as info:
        with stage_run(config, "evaluate") as run:
            _stop(server)
            start = time.perf_counter()
            run.log_metrics({"bfr_psnr": 22.0})
    assert time.perf_counter() - start < 60
    message = str(info.value)
    assert message.startswith(f"MLflow store {uri}: log_metrics failed") and "\n" not in message, message
