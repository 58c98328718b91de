"""MLflow tracking shared by every stage: one parent run per pipeline configuration, one nested run per stage.

Where runs go, in order: ``tracking.uri`` in params.yaml, ``$MLFLOW_TRACKING_URI``, else MLflow 3's own default
store ``mlflow.db`` (SQLite) at the project root, artifacts in ``mlruns/`` beside it (both git-ignored): plain
``mlflow ui`` (or ``mlflow server``) started in the project root shows the runs. DVC's queued experiments run in
temporary copies under ``.dvc/tmp/exps``; their runs still go to the main checkout's store, so every experiment
shows up in one MLflow UI.

Which experiment: ``tracking.experiment``, else ``faceres-<profile>-<data>`` (data: ``synthetic`` or the name of
the training folder), so toy runs and real ones are listed apart.

Which runs: the stage runs of one pipeline configuration nest (MLflow's ``mlflow.parentRunId``) under one parent
run per (params digest, DVC experiment name): a `dvc repro` or a `dvc exp run` is one row of the experiment page,
its stages below it. The parent holds every effective parameter, the report's headline numbers and report.html;
a stage run holds the params its dvc.yaml stage declares (the stage DVC runs it as, ``$DVC_STAGE``; every param
outside DVC), an arm's skips/alpha/aug, and its own metrics and artifacts.

A remote server is probed before any compute: an unreachable one is a one-line :class:`TrackingError`,
not a traceback (or minutes of retries) in the middle of a run.

Run states: a stage run ends FINISHED, FAILED (the stage raised) or KILLED (interrupted: Ctrl-C, SIGTERM, its
dvc process died); one left RUNNING by a process killed outright (kill -9, a power cut) is ended KILLED when
the next stage run starts, once its ``process`` tag shows that process gone (on this host; other hosts' runs
are left alone). A parent run's end moves with each of its stage runs' ends, so its duration spans them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Iterator

from faceres.config.schema import Config
from faceres.config.loader import to_flat_dict
from faceres.core.errors import TrackingError

log = logging.getLogger(__name__)

LOCAL_STORE = "mlflow.db"  # MLflow 3's default store name: `mlflow ui` in the project root opens it
LOCAL_ARTIFACTS = "mlruns"  # beside it, as MLflow's default artifact root
PARENT_STAGE = "pipeline"  # the `stage` tag of the parent runs
REGISTERED_MODEL = "faceres-generator"  # the main arm's generator, one version per trained run
PROBE_TIMEOUT_S = 5.0
PROCESS_TAG = "process"  # host:boot id:pid:start of the process running a stage run (process_identity)
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
    return f"sqlite:///{project_root() / LOCAL_STORE}"


def experiment_name(config: Config) -> str:
    """``tracking.experiment``, else ``faceres-<profile>-<data>``: one MLflow experiment per profile and data set."""
    if config.tracking.experiment:
        return config.tracking.experiment
    data = config.data.source
    if data == "folder":
        folder = Path(config.data.folder.train_dir).resolve()
        data = folder.parent.name if folder.name in ("images", "train") else folder.name
    return f"faceres-{config.profile}-{data}"


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
            "MLFLOW_TRACKING_URI, or unset them to use the local store mlflow.db"
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


def _store_call(method):
    """A StageRun method whose store failure (a server that went away, a full disk) is one TrackingError line
    naming the store, not a traceback from deep inside MLflow (after MLflow's own, shortened, retries)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except TrackingError:
            raise
        except Exception as exc:  # noqa: BLE001 - MlflowException, requests' errors, OSError: all one line
            raise TrackingError(f"MLflow store {self.uri}: {method.__name__} failed ({_first_line(exc)})") from None

    return wrapper


class StageRun:
    """What a stage logs to its MLflow run (a thin, typed face on the mlflow module)."""

    def __init__(self, mlflow_module: Any, run: Any, uri: str = ""):
        self._mlflow = mlflow_module
        self.run = run
        self.uri = uri

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @_store_call
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    @_store_call
    def log_metric_history(self, rows: list[tuple[int, dict[str, float]]]) -> None:
        """Many steps' metrics at once ((step, {name: value}) rows: a reused run's curve), in MLflow's batches of
        1000, not one request per step."""
        client = self._mlflow.MlflowClient()
        metrics = [_metric(name, value, step) for step, values in rows for name, value in values.items()]
        for chunk in _chunks(metrics, 1000):
            client.log_batch(self.run_id, metrics=chunk)

    @_store_call
    def log_params(self, params: dict[str, Any]) -> None:
        self._mlflow.log_params({k: _param_value(v) for k, v in params.items()})

    @_store_call
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    @_store_call
    def log_image(self, image, key: str, step: int) -> None:
        """An (H, W, 3) uint8 array as step `step` of the image series `key` (MLflow's image charts compare the
        series across runs, step by step)."""
        self._mlflow.log_image(image, key=key, step=step)

    @_store_call
    def log_dataset(self, manifest: Path, context: str) -> None:
        """A prepared or degraded data set (its manifest CSV: one row per image) as an MLflow dataset input of this
        run under `context` ("training", "evaluation"), named by its folder and keyed by the manifest's sha256: the
        UI's "Datasets used" column tells runs apart by it."""
        import pandas as pd
        from mlflow.data import from_pandas

        from faceres.core.files import sha256_file

        folder = manifest.resolve().parent
        with warnings.catch_warnings():  # MLflow's hints on integer columns and on which local source class it picked
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_pandas(pd.read_csv(manifest), source=str(folder), name=f"{folder.parent.name}/{folder.name}",
                                  digest=sha256_file(manifest)[:32])
            self._mlflow.log_input(dataset, context=context)

    @_store_call
    def log_generator(self, generator: Path, register: bool) -> None:
        """The trained generator file as this run's `generator/` artifact and, when `register`, a new version of
        the registered model REGISTERED_MODEL (the Models page; load it with faceres.models.io.load_generator)."""
        self._mlflow.log_artifact(str(generator), artifact_path="generator")
        if not register:
            return
        from mlflow.exceptions import MlflowException

        client = self._mlflow.MlflowClient()
        try:
            client.create_registered_model(REGISTERED_MODEL, description="faceres: the main arm's restoration generator")
        except MlflowException as exc:  # registered by an earlier run (or a parallel one right now)
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        client.create_model_version(REGISTERED_MODEL, source=f"{self.run.info.artifact_uri}/generator",
                                    run_id=self.run_id, tags={"file": generator.name})

    @_store_call
    def log_on_parent(self, metrics: dict[str, float], artifacts: list[tuple[Path, str | None]] = ()) -> None:
        """Metrics and files on this run's parent (the report stage's headline numbers: one row per experiment)."""
        client = self._mlflow.MlflowClient()
        parent = self.run.data.tags["mlflow.parentRunId"]
        clean = [_metric(k, v) for k, v in metrics.items() if v is not None]
        for chunk in _chunks(clean, 1000):  # MLflow's limit per batch
            client.log_batch(parent, metrics=chunk)
        for path, artifact_path in artifacts:
            client.log_artifact(parent, str(path), artifact_path=artifact_path)

    @_store_call
    def log_dict(self, data: dict, name: str) -> None:
        self._mlflow.log_dict(data, name)

    @_store_call
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
    if uri.startswith("sqlite:///") and uri.endswith(f"/{LOCAL_STORE}"):
        # Keep local artifacts beside the local store, not in whatever directory the stage ran from.
        artifact_location = (Path(uri[len("sqlite:///") :]).parent / LOCAL_ARTIFACTS).as_uri()
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


def _all_params(config: Config) -> dict[str, Any]:
    """Every effective parameter, flat, named as in params.yaml; the active profile's as scale.*."""
    params = {k: v for k, v in to_flat_dict(config).items() if not k.startswith("profiles.")}
    params.update({f"scale.{k}": v for k, v in to_flat_dict(config.scale).items()})
    return params


def declared_params(stage_address: str, profile: str, dvc_yaml: Path) -> list[str] | None:
    """The params keys dvc.yaml declares for `stage_address` (as DVC names it: ``train-main``, ``train@skips0``),
    with ``${profile}`` and the foreach ``${key}`` / ``${item}`` filled in; None for a stage it does not have."""
    import yaml

    try:
        stages = yaml.safe_load(dvc_yaml.read_text()).get("stages", {})
    except OSError:
        return None
    name, _, item = stage_address.partition("@")
    stage = stages.get(name)
    if not isinstance(stage, dict):
        return None
    if item:
        stage = stage.get("do")
        if not isinstance(stage, dict):
            return None
    keys = []
    for entry in stage.get("params", []):
        if isinstance(entry, str):
            keys.append(entry.replace("${profile}", profile).replace("${key}", item).replace("${item}", item))
    return keys


def stage_params(config: Config, logged_config: Config, stage_address: str | None) -> dict[str, Any]:
    """What a stage run logs: the params its dvc.yaml stage declares (``profiles.<p>`` and ``profiles.<p>.KEY``
    as scale.*), or every param outside DVC (no stage address)."""
    params = _all_params(logged_config)
    declared = declared_params(stage_address, config.profile, project_root() / "dvc.yaml") if stage_address else None
    if declared is None:
        return params
    profile = f"profiles.{config.profile}"
    prefixes = [f"scale{key[len(profile):]}" if key == profile or key.startswith(profile + ".") else key
                for key in declared]
    return {k: v for k, v in params.items() if any(k == p or k.startswith(p + ".") for p in prefixes)}


def _parent_run(client: Any, experiment_id: str, config: Config, tags: dict[str, str]) -> str:
    """The parent run of this pipeline configuration (params digest, DVC experiment): found by its
    ``pipeline_key`` tag, else created (FINISHED at once: its children carry the run state), under a lock so that
    parallel stages of one configuration (arms trained as jobs) share it."""
    import tempfile

    import filelock

    key = f"{tags['params_sha']}:{tags['dvc_experiment'] or 'workspace'}"
    query = f"tags.stage = '{PARENT_STAGE}' and tags.pipeline_key = '{key}'"
    # machine-wide: the stages, queued experiments and arm jobs of one machine (jobs on other nodes may each
    # create a parent; the children then pick the oldest)
    user = os.getuid() if hasattr(os, "getuid") else "user"  # one lock per user: /tmp is shared
    with filelock.FileLock(str(Path(tempfile.gettempdir()) / f"faceres-mlflow-parent-run-{user}.lock"), timeout=600):
        found = client.search_runs([experiment_id], filter_string=query, order_by=["attributes.start_time ASC"],
                                   max_results=1)
        if found:
            return found[0].info.run_id
        name = tags["dvc_experiment"] or f"repro-{tags['params_sha']}"
        run = client.create_run(experiment_id, run_name=name,
                                tags={**tags, "stage": PARENT_STAGE, "pipeline_key": key, "dvc_stage": ""})
        for chunk in _chunks(sorted(_all_params(config).items()), 100):  # MLflow's limit per batch
            client.log_batch(run.info.run_id, params=[_param(k, v) for k, v in chunk])
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _param(key: str, value: Any):
    from mlflow.entities import Param

    return Param(key, _param_value(value))


@contextlib.contextmanager
def stage_run(
    config: Config,
    stage: str,
    run_name: str | None = None,
    extra_params: dict | None = None,
    logged_config: Config | None = None,
) -> Iterator[StageRun]:
    """An MLflow run for one stage execution, nested under its pipeline configuration's parent run: the stage's
    params (module docstring), tags (stage, git commit, profile, DVC experiment and stage, the configuration's
    digest), closed as FAILED if the stage raises. `logged_config` (default: `config`) is what the params show:
    an arm's runs log the arm's skips/alpha/aug, while their `params_sha` (and parent) stay the pipeline's."""
    uri = tracking_uri(config)
    check_reachable(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A server that goes away mid-stage: a few quick retries (about 7 s), then one line, not MLflow's default
    # 7 retries with doubling back-off (minutes). Both stay the user's to set.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # two "View run" lines per stage
    import mlflow  # imported late: ~2 s, and only stages that track need it

    quiet_mlflow_logging()
    name = experiment_name(config)
    with _current_store(mlflow, uri):
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
        try:
            experiment_id = _experiment_id(mlflow, name, uri)
            end_runs_of_ended_processes(mlflow.MlflowClient())
            parent = _parent_run(mlflow.MlflowClient(), experiment_id, config, tags)
        except TrackingError:
            raise
        except Exception as exc:  # noqa: BLE001 - any store failure becomes one line for the user
            raise TrackingError(f"MLflow store {uri}: cannot open experiment {name!r} ({_first_line(exc)})") from None
        logged_config = logged_config or config
        params = stage_params(config, logged_config, tags["dvc_stage"] or None)
        params.update(extra_params or {})
        tags["mlflow.parentRunId"] = parent
        try:
            run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name or stage,
                                   tags={**tags, PROCESS_TAG: process_identity()})
        except Exception as exc:  # noqa: BLE001
            raise TrackingError(f"MLflow store {uri}: cannot start a run ({_first_line(exc)})") from None
        tracked = StageRun(mlflow, run, uri)
        try:
            tracked.log_params(params)
            yield tracked
        except BaseException as exc:  # the stage's own error is the one to report
            _end_run(mlflow, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", uri, parent, raising=False)
            raise
        _end_run(mlflow, "FINISHED", uri, parent, raising=True)


def _end_run(mlflow_module: Any, status: str, uri: str, parent: str, raising: bool) -> None:
    try:
        mlflow_module.end_run(status)  # pops the run off MLflow's active stack before it calls the store
        _extend_to_now(mlflow_module.MlflowClient(), parent)
    except Exception as exc:  # noqa: BLE001
        if raising:
            raise TrackingError(f"MLflow store {uri}: cannot close the run ({_first_line(exc)})") from None


def _extend_to_now(client: Any, parent: str) -> None:
    """The parent run ends when its latest stage run does (created FINISHED, it would last a few milliseconds)."""
    now = int(time.time() * 1000)
    if (client.get_run(parent).info.end_time or 0) < now:
        client.set_terminated(parent, "FINISHED", end_time=now)


def process_identity(pid: int | None = None) -> str:
    """``host:boot id:pid:start`` of a process (this one by default): names it for good, where a pid alone is
    reused; the boot id and start time are Linux's (/proc), empty elsewhere."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{_boot_id()}:{pid}:{_process_start(pid) or ''}"


def process_ended(identity: str) -> bool:
    """Whether the process of a :func:`process_identity` has ended; False when that cannot be told from here
    (another host)."""
    host, boot, pid, start = identity.rsplit(":", 3)
    if host != socket.gethostname():
        return False
    if boot and boot != _boot_id():
        return True  # rebooted since
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        pass
    return bool(start) and _process_start(int(pid)) != start  # None: a zombie; another value: the pid reused


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """A live process's start time (clock ticks after boot, /proc/PID/stat field 22); None for a zombie or
    where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]  # fields[0] is field 3, the state


def end_runs_of_ended_processes(client: Any) -> list[str]:
    """End as KILLED every RUNNING run (of any experiment in the store) whose process has ended; their ids."""
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    ended = []
    if not experiments:
        return ended
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000):
        identity = run.data.tags.get(PROCESS_TAG)
        if identity and process_ended(identity):
            client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
            log.info(f"MLflow: run {run.info.run_name} ({run.info.run_id}) was left RUNNING by a process that "
                     "has ended; marked KILLED")
    return ended


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def quiet_mlflow_logging() -> None:
    """MLflow's INFO lines (database migrations, "View run at ...") out of the stage logs; warnings stay."""
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _metric(key: str, value: float, step: int = 0):
    from mlflow.entities import Metric

    return Metric(key, float(value), int(time.time() * 1000), step)


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
