"""Metrics by degradation strength: a method's per-image results grouped by the BFR downsampling factor of
each input (issue 23 item 3). Pooled means hide where a model harms: on lightly degraded faces a restoration
can score below its own input.

Bins of the factor ``scale`` (input px per low-resolution px; data/degraded/bfr/manifest.csv), one definition,
:data:`SCALE_EDGES`: ``x0.8-2`` = [0.8, 2), ``x2-4`` = [2, 4), ``x4-8`` = [4, 8] (a factor of exactly 2 is in
``x2-4``, 8 in ``x4-8``). params.yaml ``degrade.bfr.downsample`` (default [0.8, 8]) may range wider (0.5..32):
a factor below 0.8 or above 8 goes to a bin of its own, ``below_x0.8`` / ``above_x8``, present only when it
has images. Only ``bfr`` draws a factor per image; sr8 and sr16 downsample every image by one fixed factor
(a single bin, the pooled numbers), so they have no strata.

Per bin: n, and for each per-image metric of the table (PSNR, SSIM, LPIPS, identity distance) and each
iPrecision@k membership column (identity features), the mean, std and bootstrap CI over the bin's images: the
pooled summaries' code (:func:`faceres.metrics.stats.summarize_quantity`), one bootstrap stream per bin and
quantity. iPrecision@k of a bin is the share of its restorations inside their own ground truth's k-NN ball,
the radii from the whole ground-truth set as pooled, so the bins' n-weighted mean is the pooled iPrecision@k.

The block (:func:`stratify`'s result; the evaluate stage writes it as ``strata`` in metrics/METHOD/bfr.json)::

    {"by": "scale", "source": "data/degraded/bfr/manifest.csv", "edges": [0.8, 2.0, 4.0, 8.0], "ci_level": 0.95,
     "bins": {"x0.8-2": {"interval": "[0.8, 2)", "low": 0.8, "high": 2.0, "n": 57,
                         "metrics": {"psnr": {"mean": 21.4, "std": 2.1, "ci95": [20.9, 22.0]}, "ssim": {...},
                                     "lpips": {...}, "identity_distance": {...},
                                     "iprecision": {"1": {"mean": 0.42, "std": 0.5, "ci95": [0.3, 0.55]}, ...}}},
              "x2-4": {...}, "x4-8": {...}}}

``high`` is null for the unbounded ``above_x8``; a bin without images has ``n`` 0 and no metrics.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from faceres.core.errors import DataError
from faceres.metrics.metrics_file import (
    PER_IMAGE_METRICS,
    MetricsFile,
    PerImageStat,
    checked_mapping,
    checked_number,
    per_image_stat,
)
from faceres.metrics.stats import summarize_quantity

#: The bin edges of the downsampling factor: bins [e0, e1), [e1, e2), ..., [e(n-1), en] (the last one closed).
SCALE_EDGES: tuple[float, ...] = (0.8, 2.0, 4.0, 8.0)
#: The task whose inputs vary in degradation strength, and the manifest column that holds it.
STRATIFIED_TASK = "bfr"
SCALE_COLUMN = "scale"
#: Per-image columns :func:`assign_bins` adds for the evaluate stage's per-image CSV.
BIN_COLUMN = "scale_bin"
_IPRECISION_COLUMN = re.compile(r"iprecision_k(\d+)")  # identity features (evaluate_folders' unprefixed family)
_BLOCK_KEYS = ("by", "source", "edges", "ci_level", "bins")
_BIN_KEYS = ("interval", "low", "high", "n", "metrics")


class BootstrapOptions(Protocol):
    """What :func:`stratify` reads of the evaluation's options (:class:`faceres.metrics.evaluate.EvalOptions` has
    it; not imported here, so the report reads strata without the evaluation's networks)."""

    seed: int
    ci_level: float | None
    n_bootstrap: int


@dataclass(frozen=True)
class ScaleBin:
    """One bin of the downsampling factor: [low, high), or [low, high] for the last of :data:`SCALE_EDGES`'
    bins; ``below_x..`` is (0, low) and ``above_x..`` (high, inf)."""

    name: str
    low: float
    high: float
    interval: str


def _number(value: float) -> str:
    return f"{value:g}"


def _bins(edges: tuple[float, ...]) -> tuple[ScaleBin, ...]:
    """(below, regular..., above) for ``edges``."""
    regular = tuple(
        ScaleBin(f"x{_number(low)}-{_number(high)}", low, high,
                 f"[{_number(low)}, {_number(high)}{']' if i == len(edges) - 2 else ')'}")
        for i, (low, high) in enumerate(zip(edges, edges[1:]))
    )
    below = ScaleBin(f"below_x{_number(edges[0])}", 0.0, edges[0], f"(0, {_number(edges[0])})")
    above = ScaleBin(f"above_x{_number(edges[-1])}", edges[-1], math.inf, f"({_number(edges[-1])}, inf)")
    return (below, *regular, above)


ALL_BINS = _bins(SCALE_EDGES)
#: The bins reported always (also when empty); the two outer ones only when they have images.
REGULAR_BINS = ALL_BINS[1:-1]
BIN_NAMES = tuple(b.name for b in ALL_BINS)


def bin_indices(scales) -> np.ndarray:
    """Index into :data:`ALL_BINS` of each factor in ``scales`` (finite and > 0; checked by the callers)."""
    scales = np.asarray(scales, dtype=np.float64)
    edges = np.asarray(SCALE_EDGES)
    index = np.searchsorted(edges, scales, side="right")  # [e(i-1), e(i)) -> i; below e0 -> 0; above -> len
    index[scales == edges[-1]] = len(edges) - 1  # the last regular bin is closed
    return index


def scales_from_manifest(path: str | os.PathLike, split: str = "test") -> dict[str, float]:
    """{image name: downsampling factor} of the ``split`` rows of a bfr degradation manifest (the degrade stage's
    manifest.csv); the name is the ground truth's file name without extension, as restorations and ground
    truth are paired (:func:`faceres.metrics.images.pair_images`)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no degradation manifest; run the degrade stage (degrade@{STRATIFIED_TASK}) first") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a degradation manifest CSV ({' '.join(str(exc).split())})") from None
    missing = [c for c in ("split", "gt_file", SCALE_COLUMN) if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no column(s) {', '.join(missing)}; allowed: a {STRATIFIED_TASK} degradation manifest "
                        f"(columns image_id, split, gt_file, ..., {SCALE_COLUMN}, ...)")
    rows = table[table["split"] == split]
    scales: dict[str, float] = {}
    for gt_file, text in zip(rows["gt_file"], rows[SCALE_COLUMN]):
        name = Path(gt_file).stem
        try:
            scale = float(text)
        except ValueError:
            scale = math.nan
        if not (math.isfinite(scale) and scale > 0):
            raise DataError(f"{path}: {SCALE_COLUMN} = {text!r} for {gt_file}; allowed: a number > 0")
        if name in scales:
            raise DataError(f"{path}: two {split} rows for image {name!r}; allowed: one row per image")
        scales[name] = scale
    return scales


def assign_bins(per_image: pd.DataFrame, scale_by_name: Mapping[str, float],
                source: str | os.PathLike | None = None) -> pd.DataFrame:
    """Columns ``scale`` and ``scale_bin`` for the rows of ``per_image`` (matched on its ``name`` column), index
    aligned. Every row needs a factor (finite, > 0); ``source`` names where the factors came from in errors."""
    where = f"{source}: " if source is not None else ""
    if "name" not in per_image.columns:
        raise DataError("per-image table has no 'name' column; allowed: evaluate_folders' per-image table")
    names = per_image["name"].astype(str)
    absent = [n for n in names if n not in scale_by_name]
    if absent:
        shown = ", ".join(absent[:5]) + (f", ... ({len(absent)} in all)" if len(absent) > 5 else "")
        raise DataError(f"{where}no {SCALE_COLUMN} for image(s) {shown}; allowed: a factor for every evaluated image")
    scales = np.array([scale_by_name[n] for n in names], dtype=np.float64)
    bad = ~(np.isfinite(scales) & (scales > 0))
    if bad.any():
        name = names.iloc[int(np.flatnonzero(bad)[0])]
        raise DataError(f"{where}{SCALE_COLUMN} = {scale_by_name[name]!r} for image {name!r}; allowed: a number > 0")
    bins = np.array(BIN_NAMES, dtype=object)[bin_indices(scales)]
    return pd.DataFrame({SCALE_COLUMN: scales, BIN_COLUMN: bins}, index=per_image.index)


def _iprecision_ks(per_image: pd.DataFrame) -> list[int]:
    return sorted(int(m.group(1)) for c in per_image.columns if (m := _IPRECISION_COLUMN.fullmatch(str(c))))


def _bin_stat(per_image: pd.DataFrame, column: str, rows: np.ndarray, scale_bin: ScaleBin,
              options: BootstrapOptions) -> dict:
    """{"mean", "std", "ci95"} of ``column`` over the bin's ``rows`` (a boolean mask), the pooled summaries' code
    with a bootstrap stream of its own ("<column>@<bin>")."""
    summary = summarize_quantity(per_image[column].to_numpy(dtype=np.float64)[rows], f"{column}@{scale_bin.name}",
                                 seed=options.seed, ci_level=options.ci_level, n_resamples=options.n_bootstrap)
    return PerImageStat.from_summary(summary.to_dict()).to_document()


def stratify(per_image: pd.DataFrame, scale_by_name: Mapping[str, float], options: BootstrapOptions,
             *, source: str | os.PathLike | None = None) -> dict[str, Any]:
    """The strata block of the module docstring for one method: ``per_image`` is
    :func:`faceres.metrics.evaluate.evaluate_folders`' per-image table (``name``, the per-image metrics it has,
    ``iprecision_k<k>`` 0/1 memberships), ``scale_by_name`` {name: downsampling factor} (e.g.
    :func:`scales_from_manifest`), ``options`` the evaluation's (its ``seed``, ``ci_level``, ``n_bootstrap``).
    JSON-ready (no NaN: a std of one image is left out)."""
    assigned = assign_bins(per_image, scale_by_name, source)
    metrics = [m for m in PER_IMAGE_METRICS if m in per_image.columns]
    ks = _iprecision_ks(per_image)
    bins: dict[str, dict] = {}
    for scale_bin in ALL_BINS:
        rows = (assigned[BIN_COLUMN] == scale_bin.name).to_numpy()
        if not rows.any() and scale_bin not in REGULAR_BINS:
            continue
        entry: dict[str, Any] = {"interval": scale_bin.interval, "low": scale_bin.low,
                                 "high": None if math.isinf(scale_bin.high) else scale_bin.high,
                                 "n": int(rows.sum()), "metrics": {}}
        if rows.any():
            entry["metrics"] = {name: _bin_stat(per_image, name, rows, scale_bin, options) for name in metrics}
            if ks:
                entry["metrics"]["iprecision"] = {str(k): _bin_stat(per_image, f"iprecision_k{k}", rows, scale_bin, options)
                                                  for k in ks}
        bins[scale_bin.name] = entry
    return {"by": SCALE_COLUMN, "source": None if source is None else str(source), "edges": list(SCALE_EDGES),
            "ci_level": options.ci_level, "bins": bins}


# --------------------------------------------------------------------------------------------------------
# Reading the block back (the report)


@dataclass(frozen=True)
class BinStats:
    """One bin of a method's strata: its interval, n, per-image metrics and iPrecision@k (identity features)."""

    name: str
    interval: str
    n: int
    metrics: Mapping[str, PerImageStat]
    iprecision: Mapping[int, PerImageStat]


@dataclass(frozen=True)
class Strata:
    """A method's strata as read back: ``bins`` in :data:`ALL_BINS` order, ``ci_level`` of their intervals."""

    source: str | None
    ci_level: float | None
    bins: tuple[BinStats, ...]


def parse_strata(path: str | os.PathLike, raw: Any) -> Strata:
    """Validate the ``strata`` block of the metrics document at ``path``; errors are one line naming the key."""
    path = Path(path)
    raw = checked_mapping(path, "strata", raw)
    unknown = sorted(set(raw) - set(_BLOCK_KEYS))
    if unknown:
        raise DataError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))} in strata; allowed: {', '.join(_BLOCK_KEYS)}")
    if raw.get("by") != SCALE_COLUMN:
        raise DataError(f"{path}: strata.by = {raw.get('by')!r}; allowed: {SCALE_COLUMN!r}")
    ci_level = None if raw.get("ci_level") is None else checked_number(path, "strata.ci_level", raw["ci_level"],
                                                                       low=0.0, high=1.0)
    bins_raw = checked_mapping(path, "strata.bins", raw.get("bins"))
    bins = []
    for name in BIN_NAMES:
        if name not in bins_raw:
            continue
        key = f"strata.bins.{name}"
        entry = checked_mapping(path, key, bins_raw[name])
        unknown = sorted(set(entry) - set(_BIN_KEYS))
        if unknown:
            raise DataError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))} in {key}; allowed: {', '.join(_BIN_KEYS)}")
        n = entry.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise DataError(f"{path}: {key}.n = {n!r}; allowed: an integer >= 0")
        metrics_raw = checked_mapping(path, f"{key}.metrics", entry.get("metrics", {}))
        allowed = (*PER_IMAGE_METRICS, "iprecision")
        unknown = sorted(set(metrics_raw) - set(allowed))
        if unknown:
            raise DataError(f"{path}: unknown metric(s) {', '.join(map(repr, unknown))} in {key}.metrics; "
                            f"allowed: {', '.join(allowed)}")
        metrics = {m: per_image_stat(path, f"{key}.metrics.{m}", metrics_raw[m]) for m in PER_IMAGE_METRICS if m in metrics_raw}
        iprecision = {}
        for k_text, value in checked_mapping(path, f"{key}.metrics.iprecision", metrics_raw.get("iprecision", {})).items():
            if not (isinstance(k_text, str) and k_text.isdigit() and int(k_text) >= 1):
                raise DataError(f"{path}: {key}.metrics.iprecision has key {k_text!r}; allowed: k = \"1\", \"2\", ...")
            iprecision[int(k_text)] = per_image_stat(path, f"{key}.metrics.iprecision.{k_text}", value)
        interval = next(b.interval for b in ALL_BINS if b.name == name)
        bins.append(BinStats(name, interval, n, metrics, dict(sorted(iprecision.items()))))
    unknown = sorted(set(bins_raw) - set(BIN_NAMES))
    if unknown:
        raise DataError(f"{path}: unknown bin(s) {', '.join(map(repr, unknown))} in strata.bins; allowed: {', '.join(BIN_NAMES)}")
    source = raw.get("source")
    return Strata(source=None if source is None else str(source), ci_level=ci_level, bins=tuple(bins))


def run_strata(run: MetricsFile) -> Strata | None:
    """The strata of an evaluated run (its document's ``strata``), None when it has none."""
    raw = run.extra.get("strata")
    return None if raw is None else parse_strata(run.path, raw)


def strata_summary(runs: Mapping[str, MetricsFile], ipr_k: int = 1) -> dict[str, dict[str, dict[str, float]]]:
    """method -> bin -> {n, the per-image metric means, ``iprecision_k<ipr_k>``} of the runs with strata: what
    reports/summary.json carries beside each method's pooled bfr numbers."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method in sorted(runs):
        strata = run_strata(runs[method])
        if strata is None:
            continue
        out[method] = {}
        for b in strata.bins:
            numbers: dict[str, float] = {"n": b.n, **{m: s.mean for m, s in b.metrics.items()}}
            if ipr_k in b.iprecision:
                numbers[f"iprecision_k{ipr_k}"] = b.iprecision[ipr_k].mean
            out[method][b.name] = numbers
    return out
