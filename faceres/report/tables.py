"""The paper's appendix tables (6, 7, 8 and the alpha trade-off) from our metrics files, beside the paper's values;
also the super-resolution table and the metrics by degradation strength (:func:`strata_table`), which have no
paper numbers.

Every table is a :class:`~faceres.report.comparison_table.Table` (the table model and its renderings live there): ``data`` (numbers, one row per table row, for CSV / ``dvc metrics``), the
rendered cells (``header`` + ``rows``, for Markdown, LaTeX and HTML) and ``notes`` (footnotes saying how
each number was made). Cell vocabulary, the same in every table:

- ``not run``: no metrics file for that arm (we did not train / evaluate it);
- ``not provided``: no metrics file for an external method (DFDNet, GFPGAN, GPEN outputs are the user's to
  supply); ``n/a``: the run exists but that metric is absent from its file;
- ``not in paper``: the paper printed no such row; ``—``: no difference can be formed.

``Δ`` is always ours minus the paper's value. Which methods fill which row is an explicit mapping argument
(e.g. ``{0: "skips0", 4: "skips4"}``), so a table never guesses from directory names.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from scipy import stats

from faceres.core.errors import ConfigError
from faceres.report.paper_numbers import load_paper_numbers
from faceres.report.comparison_table import Column, Measured, Row, Table, build_table, format_number, latex_escape
from faceres.metrics.metrics_file import MetricsFile
from faceres.metrics.strata import SCALE_COLUMN, REGULAR_BINS, STRATIFIED_TASK, run_strata
from faceres.report.replicates import STRATA_TRAINING_STD, seed_count, training_std

PSNR_SPREADS = ("seed_std", "ci95")
EXTERNAL_METHODS = ("DFDNet", "GFPGAN", "GPEN")


PSNR = Column("psnr", "PSNR", True, 2)
SSIM = Column("ssim", "SSIM", True, 4)
LPIPS = Column("lpips", "LPIPS", False, 4)
LPIPS_3 = Column("lpips", "LPIPS", False, 3)  # Table 8 prints three decimals
FID = Column("fid", "FID", False, 2)
IPRECISION = Column("iprecision", "iPrecision", True, 3)
IDENTITY_DISTANCE = Column("identity_distance", "ID distance", False, 3)
PREFERENCE = Column("preference", "Preference (%)", True, 1)


def _per_image(run: MetricsFile, metric: str, spread: str | None = None) -> Measured:
    stat = run.per_image.get(metric)
    if stat is None:
        return Measured(None)
    if spread == "seed_std":
        return Measured(stat.mean, spread=stat.seed_std)
    if spread == "ci95":
        return Measured(stat.mean, spread=None if stat.ci95 is None else (stat.ci95[1] - stat.ci95[0]) / 2)
    return Measured(stat.mean)


def _measure(run: MetricsFile | None, col: Column, *, missing: str, psnr_spread: str | None, ipr_k: int, ipr_features: str) -> Measured:
    """Our cell of `col`; ± the std over training seeds when the run pools several (faceres.report.replicates),
    else PSNR's `psnr_spread` (the other metrics: the mean alone)."""
    if run is None:
        return Measured(None, missing=missing)
    measured = _measure_one(run, col, psnr_spread=psnr_spread, ipr_k=ipr_k, ipr_features=ipr_features)
    std = training_std(run, col.metric) if col.metric != "iprecision" or ipr_features == "identity" else None
    return measured if std is None or measured.value is None else Measured(measured.value, spread=std)


def _measure_one(run: MetricsFile, col: Column, *, psnr_spread: str | None, ipr_k: int, ipr_features: str) -> Measured:
    if col.metric == "psnr":
        return _per_image(run, "psnr", psnr_spread)
    if col.metric in ("ssim", "lpips"):
        return _per_image(run, col.metric)
    if col.metric == "fid":
        return Measured(run.fid)
    if col.metric == "iprecision":
        return Measured(run.manifold_value("iprecision", ipr_features, ipr_k))
    raise ValueError(f"no metrics-file value for column {col.metric}")


def _check_task(runs: Sequence[MetricsFile], task: str, table: str) -> None:
    for run in runs:
        if run.task != task:
            raise ConfigError(f"{run.path}: task {run.task!r} in {table}; allowed: {task!r}")


def _evaluation_note(runs: Sequence[MetricsFile]) -> str | None:
    """How the runs were evaluated (test images, profile, data), saying so when they differ."""
    if not runs:
        return None
    parts = []
    for attr, what in (("n_images", "test images"), ("profile", "profile"), ("data_source", "data")):
        values = {getattr(r, attr) for r in runs}
        if values == {None}:
            continue
        if len(values) == 1:
            value = values.pop()
            parts.append(f"{value} {what}" if attr == "n_images" else f"{what} {value}")
        else:
            listing = ", ".join(f"{r.method}: {getattr(r, attr)}" for r in runs)
            parts.append(f"{what} DIFFER between runs ({listing})")
    return ("Evaluation: " + "; ".join(parts) + ".") if parts else None


def _seeds_note(runs: Sequence[MetricsFile]) -> str | None:
    """What ± is for rows that pool training seeds (None when no row does)."""
    pooled = ", ".join(f"{r.method}: {seed_count(r)}" for r in runs if seed_count(r) > 1)
    if not pooled:
        return None
    return (f"Rows with several training seeds ({pooled}): each metric is the mean over the seeds of each seed's "
            "test-set value, ± their std (ddof 1): the paper's \"mean ± std over runs\".")


def _psnr_note(runs: Sequence[MetricsFile], psnr_spread: str) -> str:
    if runs and all(seed_count(r) > 1 for r in runs):
        return "PSNR ours: ± is the std over training seeds (every row pools several). Paper: mean ± std over runs."
    if psnr_spread == "seed_std":
        seeds = sorted({r.noise_seeds for r in runs if r.noise_seeds is not None})
        over = f"{'/'.join(map(str, seeds))} restoration noise seeds" if seeds else "restoration noise seeds"
        missing = [r.method for r in runs if "psnr" in r.per_image and r.per_image["psnr"].seed_std is None
                   and seed_count(r) == 1]
        note = f"PSNR ours: mean ± std of the per-seed mean PSNR over {over} (seed_std)"
        if missing:
            note += f"; no seed_std in {', '.join(missing)} (mean only)"
        return note + ". Paper: mean ± std over runs."
    return (
        "PSNR ours: mean ± half-width of the 95% percentile-bootstrap interval of the mean over test images "
        "((high - low) / 2). Paper: mean ± std over runs (a different spread)."
    )


def _ipr_note(runs: Sequence[MetricsFile], k: int, features: str) -> str:
    backbones = sorted({r.identity_backbone for r in runs if r.identity_backbone}) if features == "identity" else []
    space = f"{features} features" + (f" ({', '.join(backbones)})" if backbones else "")
    return f"iPrecision ours: {space}, neighbourhood size k = {k}. Paper: FaceNet identity features (k not stated)."


def _validate_choices(psnr_spread: str | None, ipr_k: int, ipr_features: str) -> None:
    if psnr_spread is not None and psnr_spread not in PSNR_SPREADS:
        raise ConfigError(f"psnr_spread = {psnr_spread!r}; allowed: {', '.join(PSNR_SPREADS)}")
    if isinstance(ipr_k, bool) or not isinstance(ipr_k, int) or ipr_k < 1:
        raise ConfigError(f"ipr_k = {ipr_k!r}; allowed: a positive integer neighbourhood size")
    if ipr_features not in ("identity", "inception"):
        raise ConfigError(f"ipr_features = {ipr_features!r}; allowed: identity, inception")


def _arms(runs: Mapping[str, MetricsFile], arms: Mapping, task: str, table: str) -> dict:
    """{arm key: run or None}; the used runs must be of ``task``."""
    found = {key: runs.get(method) for key, method in arms.items()}
    _check_task([r for r in found.values() if r is not None], task, table)
    return found


def table6(
    runs: Mapping[str, MetricsFile],
    arms: Mapping[int, str],
    *,
    paper: Mapping | None = None,
    psnr_spread: str = "seed_std",
    ipr_k: int = 1,
    ipr_features: str = "identity",
    task: str = "bfr",
) -> Table:
    """Table 6, the number of skip connections: one row per n in the paper or in ``arms`` ({n: method}).

    ``psnr_spread``: "seed_std" (std of per-seed means over noise seeds, the paper's "over runs") or "ci95"
    (half-width of the bootstrap CI over images). iPrecision is read at ``ipr_k`` in ``ipr_features``.
    """
    _validate_choices(psnr_spread, ipr_k, ipr_features)
    paper = paper or load_paper_numbers()
    paper_rows = {int(n): row for n, row in paper["table6"]["rows"].items()}
    arms = {int(n): m for n, m in arms.items()}
    found = _arms(runs, arms, task, "table6")
    columns = (PSNR, LPIPS, SSIM, FID, IPRECISION)
    rows = []
    for n in sorted(set(paper_rows) | set(found)):
        run = found.get(n)
        ours = {c.metric: _measure(run, c, missing="not run", psnr_spread=psnr_spread, ipr_k=ipr_k, ipr_features=ipr_features) for c in columns}
        rows.append(Row(str(n), arms.get(n), "run" if run else "not run", ours, paper_rows.get(n)))
    used = [r for r in found.values() if r is not None]
    notes = [
        "Δ = ours − paper.",
        _psnr_note(used, psnr_spread),
        _ipr_note(used, ipr_k, ipr_features),
        "not run: no metrics for that number of skips (skip nodes are 8..min(R, 256) px at resolution R: "
        "4 at 64 px, 6 from 256 px); not in paper: the paper printed no such row.",
    ]
    notes += [n for n in [_seeds_note(used), _evaluation_note(used)] if n]
    return build_table("table6", paper["table6"]["title"], "n", columns, rows, notes,
                  spread_name={"psnr": psnr_spread})


def table7(
    runs: Mapping[str, MetricsFile],
    arms: Mapping[str, str],
    *,
    paper: Mapping | None = None,
    task: str = "bfr",
) -> Table:
    """Table 7, adversarial data augmentation: ``arms`` = {"N": method without, "Y": method with}."""
    unknown = sorted(set(arms) - {"N", "Y"})
    if unknown:
        raise ConfigError(f"table7 arms has key(s) {unknown}; allowed: 'N' (no adversarial augmentation), 'Y'")
    paper = paper or load_paper_numbers()
    found = _arms(runs, arms, task, "table7")
    columns = (PSNR, SSIM, LPIPS, FID)
    rows = []
    for label, paper_row in paper["table7"]["rows"].items():
        run = found.get(label)
        ours = {c.metric: _measure(run, c, missing="not run", psnr_spread=None, ipr_k=1, ipr_features="identity") for c in columns}
        rows.append(Row(label, arms.get(label), "run" if run else "not run", ours, paper_row))
    used = [r for r in found.values() if r is not None]
    notes = ["Δ = ours − paper.", "PSNR, SSIM, LPIPS: means over test images."]
    notes += [n for n in [_seeds_note(used), _evaluation_note(used)] if n]
    return build_table("table7", paper["table7"]["title"], "Adv. Aug.", columns, rows, notes)


def table8(
    runs: Mapping[str, MetricsFile],
    methods: Mapping[str, str],
    *,
    preference: pd.DataFrame | None = None,
    paper: Mapping | None = None,
    ipr_k: int = 1,
    ipr_features: str = "identity",
    task: str = "bfr",
) -> Table:
    """Table 8, comparison on BFR: ``methods`` = {row label: metrics method name}, in row order.

    Labels in :data:`EXTERNAL_METHODS` without a metrics file say "not provided". ``preference`` is
    :func:`faceres.report.human_study.aggregate_votes`'s result (indexed by the questionnaire's method names,
    which may be either the metrics method name or the row label); None means "no votes".
    """
    _validate_choices(None, ipr_k, ipr_features)
    paper = paper or load_paper_numbers()
    found = _arms(runs, methods, task, "table8")
    columns = (PSNR, LPIPS_3, IPRECISION, PREFERENCE)
    rows = []
    for label, method in methods.items():
        run = found[label]
        missing = "not provided" if label in EXTERNAL_METHODS else "not run"
        ours = {c.metric: _measure(run, c, missing=missing, psnr_spread=None, ipr_k=ipr_k, ipr_features=ipr_features) for c in columns[:3]}
        ours["preference"] = _preference(preference, method, label)
        rows.append(Row(label, method, "run" if run else missing, ours, paper["table8"]["rows"].get(label)))
    used = [r for r in found.values() if r is not None]
    notes = ["Δ = ours − paper.", "PSNR, LPIPS: means over test images.", _ipr_note(used, ipr_k, ipr_features)]
    if preference is None:
        notes.append("Preference: no human-study votes yet (faceres.report.human_study builds the questionnaire).")
    else:
        total = int(preference["total"].iloc[0]) if len(preference) else 0
        level = float(preference["ci_level"].iloc[0]) if len(preference) else 0.95
        notes.append(
            f"Preference ours: share of {total} human-study votes, with its {level:.0%} Wilson score interval in "
            "brackets; "
            "not in study: the method was not among the questionnaire's choices. "
            "Paper: 100 samples × 5 experts."
        )
    notes.append("DEG: the degraded input, evaluated as if it were a restoration.")
    notes += [n for n in [_seeds_note(used), _evaluation_note(used)] if n]
    return build_table("table8", paper["table8"]["title"], "Method", columns, rows, notes)


def _preference(preference: pd.DataFrame | None, method: str, label: str) -> Measured:
    if preference is None:
        return Measured(None, missing="no votes")
    for name in (method, label):
        if name in preference.index:
            row = preference.loc[name]
            return Measured(
                float(row["preference_pct"]),
                interval=(float(row["ci_low_pct"]), float(row["ci_high_pct"])),
                extra={"votes": int(row["votes"]), "total": int(row["total"])},
            )
    return Measured(None, missing="not in study")


SR_FACTORS = {"sr8": 8, "sr16": 16}


def sr_table(
    runs_by_task: Mapping[str, Mapping[str, MetricsFile]],
    methods: Mapping[str, str],
    *,
    resolution: int | None = None,
    ipr_k: int = 1,
) -> Table:
    """The super-resolution tasks (appendix Figs. 14, 15; the paper printed no SR numbers): one row per task
    and method ({label: method}, e.g. {"Bicubic": "deg", "Ours (BFR model, zero-shot)": "main"})."""
    _validate_choices(None, ipr_k, "identity")
    columns = (PSNR, SSIM, LPIPS, FID, IPRECISION)
    rows, used = [], []
    for task, factor in SR_FACTORS.items():
        runs = runs_by_task.get(task, {})
        found = _arms(runs, methods, task, "sr")
        size = f", {resolution // factor} → {resolution} px" if resolution else ""
        for label, method in methods.items():
            run = found[label]
            used += [run] if run else []
            ours = {c.metric: _measure(run, c, missing="not run", psnr_spread=None, ipr_k=ipr_k,
                                       ipr_features="identity") for c in columns}
            rows.append(Row(f"{factor}x SR{size}: {label}", method, "run" if run else "not run", ours, None))
    notes = [
        "The paper trained a model per SR task and printed only figures (appendix Figs. 14, 15): no numbers to "
        "set beside these.",
        "Bicubic: the low-resolution input upsampled back (bicubic), scored as if it were a restoration.",
        _ipr_note(used, ipr_k, "identity"),
    ]
    notes += [n for n in [_seeds_note(used), _evaluation_note(used)] if n]
    return build_table("sr", "Super-resolution (8x, 16x)", "Task: method", columns, rows, notes, compare=False)


def strata_table(runs: Mapping[str, MetricsFile], labels: Mapping[str, str], *, ipr_k: int = 1) -> Table:
    """Metrics by degradation strength (bfr): one row per method with strata and bin of the inputs' downsampling
    factor (:mod:`faceres.metrics.strata`): PSNR, SSIM, LPIPS, identity distance and iPrecision@``ipr_k``, each
    mean with its bootstrap interval. ``labels``: {row label: method} for the methods named in the report (e.g.
    Table 8's "DEG", "Ours"), in that order first; every other run with strata follows under its method name."""
    _validate_choices(None, ipr_k, "identity")
    _check_task(list(runs.values()), STRATIFIED_TASK, "strata")
    named = {method: label for label, method in labels.items()}
    order = [m for m in labels.values() if m in runs] + sorted(m for m in runs if m not in named)
    columns = (PSNR, SSIM, LPIPS, IDENTITY_DISTANCE, IPRECISION)
    rows, extra, used, levels = [], [], [], set()
    for method in order:
        strata = run_strata(runs[method])
        if strata is None:
            continue
        used.append(runs[method])
        levels.add(strata.ci_level)
        for b in strata.bins:
            stats = {**b.metrics, "iprecision": b.iprecision.get(ipr_k)}
            missing = "no images" if b.n == 0 else "n/a"
            seed_stds = runs[method].extra.get(STRATA_TRAINING_STD, {}).get(b.name, {})
            ours = {c.metric: Measured(None, missing=missing) if stats.get(c.metric) is None else
                    Measured(stats[c.metric].mean, spread=seed_stds.get(c.metric), interval=stats[c.metric].ci95)
                    for c in columns}
            rows.append(Row(f"{named.get(method, method)}: {b.name} (n = {b.n})", method, "run", ours, None))
            extra.append({"bin": b.name, "interval": b.interval, "n": b.n})
    regular = ", ".join(f"{b.name} = {b.interval}" for b in REGULAR_BINS)
    level = next(iter(levels)) if len(levels) == 1 else None
    interval = f"[its {level:.0%} percentile-bootstrap interval over the bin's images]" if level else \
        "[its percentile-bootstrap interval over the bin's images, where computed]"
    notes = [
        f"Bins of each test input's BFR downsampling factor (data/degraded/{STRATIFIED_TASK}/manifest.csv, column "
        f"{SCALE_COLUMN}): {regular}; a factor outside them gets a bin of its own. n: images in the bin.",
        f"Each cell: the mean over the bin's images {interval}.",
        "ID distance: Euclidean distance between the identity embeddings of the restoration and its ground truth "
        "(dlib ResNet-128; dlib calls two faces the same person below 0.6).",
        f"iPrecision ours: identity features, k = {ipr_k}: the share of the bin's restorations inside their own "
        "ground truth's k-NN ball, the radii from the whole test set as pooled, so the bins' n-weighted mean is "
        "the pooled iPrecision.",
        "DEG: the degraded input, evaluated as if it were a restoration; a method below DEG in a bin harms there.",
    ]
    if not rows:
        notes.insert(0, f"No method has per-bin metrics (metrics/METHOD/{STRATIFIED_TASK}.json without 'strata': "
                        "rerun the evaluate stages).")
    notes += [n for n in [_seeds_note(used), _evaluation_note(used)] if n]
    table = build_table("strata", "Metrics by degradation strength (BFR downsampling factor)", "Method: bin",
                        columns, rows, notes, compare=False)
    data = table.data
    if rows:
        data = pd.concat([data.iloc[:, :3], pd.DataFrame.from_records(extra), data.iloc[:, 3:]], axis=1)
    return dataclasses.replace(table, data=data)


@dataclass(frozen=True)
class TrendCheck:
    """Spearman rank correlation of one metric with alpha, and whether it has the paper's claimed sign."""

    metric: str
    claim: str | None  # "decreasing" / "increasing" / None (the paper claims nothing)
    rho: float          # NaN when it cannot be formed (fewer than 2 runs, or a constant metric)
    n: int

    @property
    def shown(self) -> bool | None:
        """True/False: the sign of rho agrees/disagrees with the claim; None: no claim or no rho."""
        if self.claim is None or math.isnan(self.rho):
            return None
        return self.rho < 0 if self.claim == "decreasing" else self.rho > 0

    def describe(self) -> str:
        if math.isnan(self.rho):
            return f"cannot tell (n = {self.n})"
        verdict = {True: ": claim shown", False: ": claim NOT shown", None: ""}[self.shown]
        return f"ρ = {format_number(self.rho, 2, signed=True)} (n = {self.n}){verdict}"


def alpha_trend(values: Mapping[float, float | None], metric: str, claim: str | None) -> TrendCheck:
    """Spearman rho of ``metric`` against alpha over the alphas that have a value."""
    pairs = [(a, v) for a, v in sorted(values.items()) if v is not None]
    rho = float("nan")
    if len(pairs) >= 2 and len({v for _, v in pairs}) > 1:
        rho = float(stats.spearmanr([a for a, _ in pairs], [v for _, v in pairs]).statistic)
    return TrendCheck(metric=metric, claim=claim, rho=rho, n=len(pairs))


def alpha_table(
    runs: Mapping[str, MetricsFile],
    arms: Mapping[float, str],
    *,
    paper: Mapping | None = None,
    task: str = "bfr",
) -> Table:
    """The alpha grid (appendix C.4): one row per alpha in ``arms`` ({alpha: method}); PSNR, FID, LPIPS, SSIM.

    The paper printed no numbers, only a direction (PSNR falls, FID improves, i.e. falls, as alpha grows):
    a last row gives each metric's Spearman rho against alpha and, for PSNR and FID, whether its sign agrees.
    """
    paper = paper or load_paper_numbers()
    title = paper.get("alpha", {}).get("title", "alpha")
    if not arms:  # e.g. a small experiment whose params.yaml has no alpha arms: say so, do not fail the report
        note = "No arm varies α here (params.yaml ablations.arms), and the main model differs from the base."
        return build_table("alpha", title, "α", (PSNR, FID, LPIPS, SSIM), [], [note], compare=False)
    bad = [a for a in arms if isinstance(a, bool) or not isinstance(a, (int, float)) or not a >= 0]
    if bad:
        raise ConfigError(f"alpha arm(s) {bad}; allowed: non-negative numbers")
    claims = paper.get("alpha", {}).get("claim", {})
    found = _arms(runs, arms, task, "alpha")
    columns = (PSNR, FID, LPIPS, SSIM)
    rows, by_metric = [], {c.metric: {} for c in columns}
    for alpha in sorted(found):
        run = found[alpha]
        ours = {c.metric: _measure(run, c, missing="not run", psnr_spread=None, ipr_k=1, ipr_features="identity") for c in columns}
        for c in columns:
            by_metric[c.metric][float(alpha)] = ours[c.metric].value
        rows.append(Row(f"{alpha:g}", arms[alpha], "run" if run else "not run", ours, None))
    trends = [alpha_trend(by_metric[c.metric], c.metric, claims.get(c.metric)) for c in columns]
    trailing = [("Spearman ρ vs α", "") + tuple(t.describe() for t in trends)]
    notes = []
    for t, c in zip(trends, columns):
        if t.claim is not None:
            direction = "falls" if t.claim == "decreasing" else "rises"
            better = " (improves)" if (t.claim == "decreasing") != c.higher_is_better else ""
            notes.append(f"Paper (C.4): {c.header} {direction}{better} as α grows; our runs: {t.describe()}.")
    notes.append("Trend = sign of Spearman's rank correlation over the alphas run; with a handful of arms it is "
                 "a direction, not a significance test. The paper printed no numbers for this ablation.")
    used = [r for r in found.values() if r is not None]
    notes += [n for n in [_seeds_note(used), _evaluation_note(used)] if n]
    return build_table("alpha", title, "α", columns, rows, notes,
                  compare=False, trailing=trailing)


__all__ = [
    "Column", "Measured", "Table", "TrendCheck", "alpha_table", "alpha_trend", "latex_escape",
    "table6", "table7", "table8", "sr_table", "strata_table", "PSNR_SPREADS"
]
