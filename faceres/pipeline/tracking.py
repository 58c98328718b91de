"""MLflow tracking shared by every stage: one run per stage execution, with params, metrics, artifacts, tags.

Where runs go, in order: ``tracking.uri`` in params.yaml, ``$MLFLOW_TRACKING_URI``, else a local SQLite store
``mlruns/mlflow.db`` (artifacts in ``mlruns/artifacts``) at the project root (git-ignored). DVC's queued
experiments run in temporary copies under ``.dvc/tmp/exps``; their runs still go to the main checkout's store,
so every experiment shows up in one MLflow UI.

A remote server is probed before any compute: an unreachable one is a one-line :class:`TrackingError`,
not a traceback (or minutes of retries) in the middle of a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from faceres.config import Config, to_flat_dict
from faceres.errors import TrackingError

LOCAL_STORE = "mlruns"
PROBE_TIMEOUT_S = 5.0
_MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value


def project_root(start: Path | None = None) -> Path:
    """The checkout that owns this run: for DVC's temporary experiment copies, the main checkout."""
    path = (start or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    for candidate in (path, *path.parents):
        if (candidate / "dvc.yaml").exists() or (candidate / ".dvc").is_dir():
            return candidate
    return path


def tracking_uri(config: Config | None = None) -> str:
    if config is not None and config.tracking.uri:
        return config.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{project_root() / LOCAL_STORE / 'mlflow.db'}"


def check_reachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, in one line, when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status >= 500:
                raise TrackingError(f"MLflow server {uri} answered HTTP {response.status} on /health")
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in (401, 403):
            raise TrackingError(
                f"MLflow server {uri} answered HTTP {exc.code}; check the server or MLFLOW_TRACKING_URI"
            ) from None
        # Some proxies lack /health but still serve the API: any other HTTP answer means it is reachable.
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it, fix tracking.uri / "
            "MLFLOW_TRACKING_URI, or unset them to use the local store mlruns/"
        ) from None


def git_commit(root: Path | None = None) -> str:
    """HEAD's commit, with '-dirty' when tracked files differ from it; 'unknown' outside git."""
    root = root or project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


class StageRun:
    """What a stage logs to its MLflow run (a thin, typed face on the mlflow module)."""

    def __init__(self, mlflow_module: Any, run: Any):
        self._mlflow = mlflow_module
        self.run = run

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def log_params(self, params: dict[str, Any]) -> None:
        self._mlflow.log_params({k: _param_value(v) for k, v in params.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_image(self, image, name: str) -> None:
        """An (H, W, 3) uint8 array as a PNG artifact at `name`."""
        self._mlflow.log_image(image, artifact_file=name)

    def log_dict(self, data: dict, name: str) -> None:
        self._mlflow.log_dict(data, name)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})


def config_digest(config: Config) -> str:
    """12 hex digits of sha256 over every effective parameter: the `params_sha` tag that groups the runs one
    configuration produced (a plain `dvc repro` has no experiment name to group by)."""
    flat = json.dumps(to_flat_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(flat.encode()).hexdigest()[:12]


def _param_value(value: Any) -> str:
    text = json.dumps(list(value)) if isinstance(value, (list, tuple)) else str(value)
    return text[:_MAX_PARAM_LENGTH]


def _experiment_id(mlflow_module: Any, name: str, uri: str) -> str:
    experiment = mlflow_module.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///") and uri.endswith(f"{LOCAL_STORE}/mlflow.db"):
        # Keep local artifacts beside the local store, not in whatever directory the stage ran from.
        artifact_location = (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()
    try:
        return mlflow_module.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created concurrently by a parallel queued experiment
        experiment = mlflow_module.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


@contextlib.contextmanager
def _current_store(mlflow_module: Any, uri: str) -> Iterator[None]:
    """Point MLflow at `uri` for one run. mlflow.set_tracking_uri also writes $MLFLOW_TRACKING_URI, which would
    outlive the run and, read by tracking_uri() next time, send a later run of another project (same process,
    or a child it spawns) into this store; the variable is put back afterwards."""
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow_module.set_tracking_uri(uri)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


@contextlib.contextmanager
def stage_run(
    config: Config,
    stage: str,
    run_name: str | None = None,
    extra_params: dict | None = None,
    logged_config: Config | None = None,
) -> Iterator[StageRun]:
    """An MLflow run for one stage execution: all effective params (flat, named as in params.yaml), tags
    (stage, git commit, profile, DVC experiment, the pipeline configuration's digest), closed as FAILED if the
    stage raises. `logged_config` (default: `config`) is what the params show: an arm's runs log the arm's
    skips/alpha/aug, while their `params_sha` stays the pipeline's."""
    uri = tracking_uri(config)
    check_reachable(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # imported late: ~2 s, and only stages that track need it

    with _current_store(mlflow, uri):
        try:
            experiment_id = _experiment_id(mlflow, config.tracking.experiment, uri)
        except TrackingError:
            raise
        except Exception as exc:  # noqa: BLE001 - any store failure becomes one line for the user
            raise TrackingError(f"MLflow store {uri}: cannot open experiment {config.tracking.experiment!r} ({exc})")
        tags = {
            "stage": stage,
            "git_commit": git_commit(),
            "profile": config.profile,
            "data_source": config.data.source,
            "dvc_experiment": os.environ.get("DVC_EXP_NAME", ""),
            "dvc_baseline": os.environ.get("DVC_EXP_BASELINE_REV", ""),
            "dvc_stage": os.environ.get("DVC_STAGE", ""),
            "params_sha": config_digest(config),
        }
        logged_config = logged_config or config
        params = {k: v for k, v in to_flat_dict(logged_config).items() if not k.startswith("profiles.")}
        params.update({f"scale.{k}": v for k, v in to_flat_dict(logged_config.scale).items()})
        params.update(extra_params or {})
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or stage, tags=tags) as run:
            tracked = StageRun(mlflow, run)
            tracked.log_params(params)
            yield tracked


@contextlib.contextmanager
def maybe_tracked(
    config: Config,
    stage: str,
    track: bool,
    run_name: str | None = None,
    extra_params: dict | None = None,
    logged_config: Config | None = None,
) -> Iterator[StageRun | None]:
    """:func:`stage_run` when `track`, else None (the CLI's --no-track, the tests)."""
    if not track:
        yield None
        return
    with stage_run(config, stage, run_name=run_name, extra_params=extra_params, logged_config=logged_config) as run:
        yield run


def log_outputs(run: StageRun | None, metrics: dict, artifacts: list[Path] = ()) -> None:
    if run is None:
        return
    run.log_metrics(metrics)
    for path in artifacts:
        run.log_artifact(path)
