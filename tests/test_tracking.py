"""MLflow helper: local store by default, params/tags/metrics logged, unreachable servers fail fast in one line."""

from __future__ import annotations

import dataclasses
import http.server
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from faceres.errors import TrackingError
from faceres.pipeline.tracking import check_reachable, config_digest, project_root, stage_run, tracking_uri
from tests.conftest import small_config


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


def test_default_store_is_local_sqlite_at_the_project_root(project):
    assert tracking_uri(small_config()) == f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"


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
    assert (project / "mlruns" / "artifacts").is_dir(), "artifacts stay beside the local store"


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
                               filter_string=f"tags.params_sha = '{shas[2]}'")
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
        client = MlflowClient(f"sqlite:///{tmp_path / name / 'mlruns' / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("faceres")
        assert [r.info.run_name for r in client.search_runs([experiment.experiment_id])] == [f"prepare-{name}"]


def test_a_failing_stage_marks_its_run_failed(project):
    from mlflow.tracking import MlflowClient

    config = small_config()
    with pytest.raises(RuntimeError):
        with stage_run(config, "train") as run:
            run_id = run.run_id
            raise RuntimeError("boom")
    assert MlflowClient(tracking_uri(config)).get_run(run_id).info.status == "FAILED"


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
