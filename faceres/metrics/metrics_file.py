"""The metrics document: what the evaluate stage writes per (method, task) and the report reads, in one place
(:meth:`MetricsFile.to_document` writes it, :func:`parse_metrics` validates it back).

Metrics file format (one JSON per method and task, conventionally ``metrics/<method>/<task>.json``)::

    {"method": "skips4", "task": "bfr", "n_images": 160, "profile": "cpu", "data_source": "synthetic",
     "identity_backbone": "dlib-resnet-128", "noise_seeds": 3,
     "metrics": {
       "psnr":  {"mean": 24.1, "std": 2.3, "ci95": [23.7, 24.5], "seed_std": 0.04},
       "ssim":  {"mean": 0.71, "std": 0.05, "ci95": [0.70, 0.72]},
       "lpips": {"mean": 0.25, "std": 0.04, "ci95": [0.24, 0.26]},
       "identity_distance": {"mean": 0.41, "std": 0.08, "ci95": [0.40, 0.42]},
       "fid":   {"value": 35.2},
       "precision":  {"inception": {"1": 0.5, "2": 0.6, "3": 0.65, "4": 0.7}, "identity": {"1": 0.4, ...}},
       "recall":     {...same shape...}, "iprecision": {...}, "irecall": {...}}}

- ``method``, ``task`` and ``metrics`` are required; ``n_images`` (>= 1), ``noise_seeds`` (>= 1), ``profile``,
  ``data_source`` and ``identity_backbone`` are optional; other top-level keys are kept in ``extra``.
- Per-image metrics (psnr, ssim, lpips, identity_distance: the Euclidean distance of a restoration's identity
  embedding to its ground truth's): ``mean`` required; ``std`` (over images), ``ci95`` (bootstrap interval
  of the mean, [low, high]) and ``seed_std`` (std of the per-seed mean over restoration noise seeds: the
  paper's "mean +- std over runs") optional.
- ``fid``: ``value``. Manifold metrics (precision, recall, iprecision, irecall): per feature space
  (``inception``, ``identity``), per neighbourhood size k (a positive integer, as a JSON string key), a value
  in [0, 1].
- Any metric may be absent; a table then says "n/a". Unknown metric names or keys are errors (a typo must not
  silently turn a number into "n/a").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceres.core.errors import DataError

PER_IMAGE_METRICS = ("psnr", "ssim", "lpips", "identity_distance")
MANIFOLD_METRICS = ("precision", "recall", "iprecision", "irecall")
FEATURE_SPACES = ("inception", "identity")
METRIC_NAMES = (*PER_IMAGE_METRICS, "fid", *MANIFOLD_METRICS)
_PER_IMAGE_KEYS = ("mean", "std", "ci95", "seed_std")
_OPTIONAL_TEXT = ("profile", "data_source", "identity_backbone")
_OPTIONAL_COUNTS = ("n_images", "noise_seeds")


@dataclass(frozen=True)
class PerImageStat:
    """Mean over test images, with optional spreads (see the module docstring)."""

    mean: float
    std: float | None = None
    ci95: tuple[float, float] | None = None
    seed_std: float | None = None

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], seed_std: float | None = None) -> PerImageStat:
        """From a :class:`faceres.metrics.stats.Summary` as a dict (mean, std, ci_low, ci_high): a std that
        cannot be formed (NaN, one image) and a CI that was not asked for are left out."""
        std = summary.get("std")
        std = None if std is None or not math.isfinite(std) else std
        ci95 = None if summary.get("ci_low") is None else (summary["ci_low"], summary["ci_high"])
        return cls(summary["mean"], std, ci95, seed_std)

    def to_document(self) -> dict:
        entry: dict = {"mean": self.mean}
        if self.std is not None:
            entry["std"] = self.std
        if self.ci95 is not None:
            entry["ci95"] = list(self.ci95)
        if self.seed_std is not None:
            entry["seed_std"] = self.seed_std
        return entry


@dataclass(frozen=True)
class MetricsFile:
    """One evaluated (method, task): the validated content of a metrics JSON."""

    path: Path
    method: str
    task: str
    n_images: int | None = None
    profile: str | None = None
    data_source: str | None = None
    identity_backbone: str | None = None
    noise_seeds: int | None = None
    per_image: Mapping[str, PerImageStat] = field(default_factory=dict)
    fid: float | None = None
    # manifold[metric][feature_space][k] -> value in [0, 1]
    manifold: Mapping[str, Mapping[str, Mapping[int, float]]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def manifold_value(self, metric: str, features: str, k: int) -> float | None:
        """``metric`` (e.g. "iprecision") in feature space ``features`` at neighbourhood size ``k``; None if absent."""
        return self.manifold.get(metric, {}).get(features, {}).get(k)

    def to_document(self) -> dict:
        """The JSON document of the module docstring: what the evaluate stage writes and :func:`parse_metrics`
        reads back (the two sides of one format)."""
        metrics: dict = {name: self.per_image[name].to_document() for name in PER_IMAGE_METRICS if name in self.per_image}
        if self.fid is not None:
            metrics["fid"] = {"value": self.fid}
        for name in MANIFOLD_METRICS:
            if name in self.manifold:
                metrics[name] = {space: {str(k): v for k, v in by_k.items()} for space, by_k in self.manifold[name].items()}
        header = {"method": self.method, "task": self.task, "n_images": self.n_images, "profile": self.profile,
                  "data_source": self.data_source, "identity_backbone": self.identity_backbone,
                  "noise_seeds": self.noise_seeds}
        return {**{k: v for k, v in header.items() if v is not None}, **self.extra, "metrics": metrics}


def checked_number(path: Path, key: str, value: Any, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}: {key} = {value!r}; allowed: a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise DataError(f"{path}: {key} = {value!r}; allowed: a number in [{low}, {high}]")
    return float(value)


def checked_mapping(path: Path, key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{path}: {key} must be a JSON object, got {type(value).__name__}")
    return value


def _unknown_keys(path: Path, key: str, value: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise DataError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))} in {key}; allowed: {', '.join(allowed)}")


def per_image_stat(path: Path, key: str, raw: Any) -> PerImageStat:
    """Validate one per-image metric entry ({"mean", "std", "ci95", "seed_std"}) found at ``key`` of ``path``."""
    raw = checked_mapping(path, key, raw)
    _unknown_keys(path, key, raw, _PER_IMAGE_KEYS)
    if "mean" not in raw:
        raise DataError(f"{path}: {key} has no 'mean'")
    mean = checked_number(path, f"{key}.mean", raw["mean"])
    std = checked_number(path, f"{key}.std", raw["std"], low=0.0) if raw.get("std") is not None else None
    seed_std = (
        checked_number(path, f"{key}.seed_std", raw["seed_std"], low=0.0) if raw.get("seed_std") is not None else None
    )
    ci95 = None
    if raw.get("ci95") is not None:
        ci = raw["ci95"]
        if not isinstance(ci, list) or len(ci) != 2:
            raise DataError(f"{path}: {key}.ci95 = {ci!r}; allowed: [low, high]")
        low, high = (checked_number(path, f"{key}.ci95", v) for v in ci)
        if low > high:
            raise DataError(f"{path}: {key}.ci95 = {ci!r}; low must not exceed high")
        ci95 = (low, high)
    return PerImageStat(mean=mean, std=std, ci95=ci95, seed_std=seed_std)


def _manifold(path: Path, name: str, raw: Any) -> dict[str, dict[int, float]]:
    raw = checked_mapping(path, f"metrics.{name}", raw)
    _unknown_keys(path, f"metrics.{name}", raw, FEATURE_SPACES)
    out: dict[str, dict[int, float]] = {}
    for space, by_k in raw.items():
        key = f"metrics.{name}.{space}"
        by_k = checked_mapping(path, key, by_k)
        values: dict[int, float] = {}
        for k_text, value in by_k.items():
            if not (isinstance(k_text, str) and k_text.isdigit() and int(k_text) >= 1):
                raise DataError(f"{path}: {key} has key {k_text!r}; allowed: neighbourhood sizes k = \"1\", \"2\", ...")
            values[int(k_text)] = checked_number(path, f"{key}.{k_text}", value, low=0.0, high=1.0)
        out[space] = dict(sorted(values.items()))
    return out


def parse_metrics(data: Any, path: str | Path = "<metrics>") -> MetricsFile:
    """Validate an already-decoded metrics document (see the module docstring); ``path`` names it in errors."""
    path = Path(path)
    data = checked_mapping(path, "the document", data)
    for key in ("method", "task"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise DataError(f"{path}: '{key}' must be a non-empty string, got {data.get(key)!r}")
    text = {}
    for key in _OPTIONAL_TEXT:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise DataError(f"{path}: '{key}' must be a string, got {data[key]!r}")
        text[key] = data.get(key)
    counts = {}
    for key in _OPTIONAL_COUNTS:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataError(f"{path}: '{key}' = {value!r}; allowed: a positive integer")
        counts[key] = value
    metrics = checked_mapping(path, "metrics", data.get("metrics"))
    _unknown_keys(path, "metrics", metrics, METRIC_NAMES)
    per_image = {name: per_image_stat(path, f"metrics.{name}", metrics[name]) for name in PER_IMAGE_METRICS
                 if metrics.get(name) is not None}
    fid = None
    if metrics.get("fid") is not None:
        raw_fid = checked_mapping(path, "metrics.fid", metrics["fid"])
        _unknown_keys(path, "metrics.fid", raw_fid, ("value",))
        fid = checked_number(path, "metrics.fid.value", raw_fid.get("value"), low=0.0)
    manifold = {name: _manifold(path, name, metrics[name]) for name in MANIFOLD_METRICS if metrics.get(name) is not None}
    known = {"method", "task", "metrics", *_OPTIONAL_TEXT, *_OPTIONAL_COUNTS}
    return MetricsFile(
        path=path,
        method=data["method"],
        task=data["task"],
        per_image=per_image,
        fid=fid,
        manifold=manifold,
        extra={k: v for k, v in data.items() if k not in known},
        **text,
        **counts,
    )


def load_metrics(path: str | Path) -> MetricsFile:
    """Read and validate one metrics JSON; any problem is a one-line DataError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: metrics file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a metrics JSON file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    return parse_metrics(data, path)


NOT_RUN, NOT_PROVIDED = "not_run", "not_provided"
PLACEHOLDER_STATUSES = (NOT_RUN, NOT_PROVIDED)  # {method, task, status, reason}: nothing was evaluated


def is_placeholder(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # load_metrics reports the problem
    return isinstance(data, dict) and data.get("status") in PLACEHOLDER_STATUSES


def load_metrics_dir(root: str | Path, task: str) -> dict[str, MetricsFile]:
    """Every ``root/<method>/<task>.json``, keyed by method; the file's ``method`` and ``task`` must match its path.

    A missing ``root`` gives an empty mapping (nothing evaluated yet: tables then say "not run"), and so does
    a placeholder ``{"method", "task", "status": "not_run" | "not_provided", "reason"}`` that the evaluate
    stage writes for an arm impossible at this resolution or an external method without a folder.
    """
    root = Path(root)
    runs: dict[str, MetricsFile] = {}
    if not root.is_dir():
        return runs
    for path in sorted(root.glob(f"*/{task}.json")):
        if is_placeholder(path):
            continue
        run = load_metrics(path)
        if run.method != path.parent.name:
            raise DataError(f"{path}: method {run.method!r} does not match its folder {path.parent.name!r}")
        if run.task != task:
            raise DataError(f"{path}: task {run.task!r} does not match its file name {task!r}")
        runs[run.method] = run
    return runs


def headline_numbers(run: MetricsFile, ipr_k: int = 1) -> dict[str, float]:
    """The numbers a reader compares first: the PSNR, SSIM, LPIPS and identity-distance means, FID, and
    iPrecision@k on identity features (``iprecision_k<k>``); a metric the run lacks is left out."""
    numbers = {name: run.per_image[name].mean for name in PER_IMAGE_METRICS if name in run.per_image}
    if run.fid is not None:
        numbers["fid"] = run.fid
    iprecision = run.manifold_value("iprecision", "identity", ipr_k)
    if iprecision is not None:
        numbers[f"iprecision_k{ipr_k}"] = iprecision
    return numbers


def summary_metrics(root: str | Path, ipr_k: int = 1) -> dict[str, dict[str, dict[str, float]]]:
    """method -> task -> :func:`headline_numbers` for every evaluated ``root/<method>/<task>.json`` (placeholders
    of arms not run and methods not provided left out): the small file `dvc exp show` reads."""
    root = Path(root)
    tasks = sorted({path.stem for path in root.glob("*/*.json")}) if root.is_dir() else []
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        for method, run in load_metrics_dir(root, task).items():
            summary.setdefault(method, {})[task] = headline_numbers(run, ipr_k)
    return {method: summary[method] for method in sorted(summary)}
