"""The paper's claims (spec section 5), one line per claim and metric, checked on this run's test images.

A claim says that one method beats another on a metric, or that a metric moves one way along an ordered list of
methods (more skips, larger alpha). It is checked on the first and last method of the list that were run (the
steps between are listed too):

- per-image metrics (PSNR, SSIM, LPIPS, and iPrecision@k as each image's 0/1 "inside its own ball") are compared
  image by image on the same test images (paired by name): the mean difference, with a 95% percentile-bootstrap
  interval of it over images (:func:`faceres.metrics.stats.bootstrap_mean_ci`, seeded: reports are reproducible);
- FID is one number for the whole test set: no interval, and its verdict rests on the sign alone.

Verdicts: ``shown`` (the claimed sign, its interval clear of 0), ``within noise`` (the interval holds 0),
``contradicted`` (the other sign, its interval clear of 0), ``partly`` (shown from first to last, but a step
between is contradicted), ``not run`` (fewer than two of the methods have metrics; the reason is given).
The verdict is mechanical; why a claim fails is for the reader's analysis, beside the report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from faceres.core.errors import DataError
from faceres.metrics.stats import bootstrap_mean_ci
from faceres.report.comparison_table import DASH, Table, format_number
from faceres.metrics.metrics_file import MetricsFile

CI_LEVEL = 0.95
N_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same metrics give the same intervals in every report

SHOWN, WITHIN_NOISE, CONTRADICTED, PARTLY, NOT_RUN = "shown", "within noise", "contradicted", "partly", "not run"
PER_IMAGE = ("psnr", "ssim", "lpips", "iprecision")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "iprecision": True, "fid": False}
HEADERS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "iprecision": "iPrecision@{k}", "fid": "FID"}
DECIMALS = {"psnr": 2, "ssim": 4, "lpips": 4, "iprecision": 3, "fid": 1}


@dataclass(frozen=True)
class Claim:
    """``text`` (the paper's words, shortened), the methods in order ({label: method}: the claim is that each
    ``metric`` gets better from the first towards the last, or worse with ``better=False``)."""

    text: str
    methods: Mapping[str, str | None]  # None: no such arm
    metrics: tuple[str, ...]
    better: bool = True


@dataclass(frozen=True)
class Difference:
    """``to`` minus ``frm`` on one metric: values of each, their difference, its interval (None for FID) and
    the number of paired test images (None for FID)."""

    frm: str
    to: str
    value_from: float
    value_to: float
    difference: float
    interval: tuple[float, float] | None
    n: int | None

    def sign(self) -> int:
        """+1 / -1: the difference is clear of 0 on that side (FID: its sign); 0: within noise."""
        low, high = self.interval if self.interval is not None else (self.difference, self.difference)
        return 1 if low > 0 else -1 if high < 0 else 0


@dataclass(frozen=True)
class ClaimCheck:
    """One line of the claims table: a claim on one metric, its verdict and the numbers behind it."""

    claim: str
    metric: str
    verdict: str
    overall: Difference | None
    steps: tuple[Difference, ...] = ()
    reason: str = ""


def paired_difference(frm: pd.DataFrame, to: pd.DataFrame, column: str, labels: tuple[str, str],
                      rng: np.random.Generator) -> Difference:
    """Mean of (to - frm) over the test images both scored (paired by ``name``; non-finite values, e.g. the
    infinite PSNR of an exact copy, dropped), with its percentile-bootstrap interval."""
    for frame, label in ((frm, labels[0]), (to, labels[1])):
        if column not in frame.columns:
            raise DataError(f"per-image metrics of {label}: no column {column!r} (evaluate it, or drop the claim)")
    pairs = frm[["name", column]].merge(to[["name", column]], on="name", suffixes=("_from", "_to"))
    a, b = pairs[f"{column}_from"].to_numpy(float), pairs[f"{column}_to"].to_numpy(float)
    keep = np.isfinite(a) & np.isfinite(b)
    if not keep.any():
        raise DataError(f"per-image metrics of {labels[0]} and {labels[1]}: no test image with {column} in both")
    a, b = a[keep], b[keep]
    interval = bootstrap_mean_ci(b - a, level=CI_LEVEL, n_resamples=N_RESAMPLES, rng=rng)
    return Difference(labels[0], labels[1], float(a.mean()), float(b.mean()), float((b - a).mean()), interval,
                      int(keep.sum()))


def _difference(runs, per_image, metric: str, column: str, frm: tuple[str, str], to: tuple[str, str], rng) -> Difference:
    (label_a, method_a), (label_b, method_b) = frm, to
    if metric == "fid":
        a, b = runs[method_a].fid, runs[method_b].fid
        if a is None or b is None:
            raise DataError(f"metrics of {method_a if a is None else method_b}: no FID (evaluate it, or drop the claim)")
        return Difference(label_a, label_b, a, b, b - a, None, None)
    return paired_difference(per_image[method_a], per_image[method_b], column, (label_a, label_b), rng)


def _verdict(claimed_sign: int, overall: Difference, steps: Sequence[Difference]) -> str:
    sign = overall.sign()
    if sign == 0:
        return WITHIN_NOISE
    if sign != claimed_sign:
        return CONTRADICTED
    return PARTLY if any(step.sign() == -claimed_sign for step in steps) else SHOWN


def _why_missing(method: str | None, not_run: Mapping[str, str]) -> str:
    if method is None:
        return "no such arm in params.yaml ablations.arms"
    return f"{method}, {not_run[method]}" if method in not_run else f"{method} has no metrics"


def check_claims(claims: Sequence[Claim], runs: Mapping[str, MetricsFile], per_image: Mapping[str, pd.DataFrame],
                 *, not_run: Mapping[str, str] = {}, ipr_k: int = 1) -> list[ClaimCheck]:
    """Every claim on each of its metrics. ``runs``: {method: metrics} of the task; ``per_image``: {method: its
    per-image table (``name`` and one column per metric, iPrecision as ``iprecision_k<k>``)}; ``not_run``:
    {method: why it has no metrics}, quoted when a claim cannot be checked."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    checks = []
    for claim in claims:
        ran = [(label, method) for label, method in claim.methods.items() if method in runs and method in per_image]
        if len(ran) < 2:
            reason = "; ".join(f"{label}: {_why_missing(method, not_run)}" for label, method in claim.methods.items()
                               if method not in runs)
            checks.append(ClaimCheck(claim.text, DASH, NOT_RUN, None, reason=reason))
            continue
        for metric in claim.metrics:
            column = f"iprecision_k{ipr_k}" if metric == "iprecision" else metric
            steps = tuple(_difference(runs, per_image, metric, column, a, b, rng) for a, b in zip(ran, ran[1:]))
            overall = steps[0] if len(steps) == 1 else _difference(runs, per_image, metric, column, ran[0], ran[-1], rng)
            improving = 1 if HIGHER_IS_BETTER[metric] else -1
            claimed_sign = improving if claim.better else -improving
            reason = "; ".join(f"{label} left out: {_why_missing(method, not_run)}"
                               for label, method in claim.methods.items() if method not in runs)
            checks.append(ClaimCheck(claim.text, metric, _verdict(claimed_sign, overall, steps), overall,
                                     steps if len(steps) > 1 else (), reason))
    return checks


def _number(value: float, metric: str, *, signed: bool = False) -> str:
    return format_number(value, DECIMALS[metric], signed=signed)


def describe(difference: Difference, metric: str) -> str:
    """"a → b: 19.04 → 19.65, Δ +0.61 [+0.52, +0.70]" (FID: no interval)."""
    text = (f"{difference.frm} → {difference.to}: {_number(difference.value_from, metric)} → "
            f"{_number(difference.value_to, metric)}, Δ {_number(difference.difference, metric, signed=True)}")
    if difference.interval is not None:
        low, high = difference.interval
        text += f" [{_number(low, metric, signed=True)}, {_number(high, metric, signed=True)}]"
    return text


def claims_table(checks: Sequence[ClaimCheck], *, ipr_k: int = 1, title: str = "The paper's claims on this run") -> Table:
    """The claims as a report table: claim, metric, first → last with Δ [95% CI], n, verdict, steps between."""
    header = tuple((h, (h,)) for h in ("Claim", "Metric", "This run: Δ [95% CI]", "n", "Verdict", "Steps"))
    rows, records = [], []
    for check in checks:
        metric_name = HEADERS.get(check.metric, check.metric).format(k=ipr_k)
        overall = describe(check.overall, check.metric) if check.overall else DASH
        n = str(check.overall.n) if check.overall and check.overall.n is not None else DASH
        steps = "; ".join(describe(step, check.metric) for step in check.steps) or DASH
        verdict = check.verdict + (f" ({check.reason})" if check.reason else "")
        rows.append((check.claim, metric_name, overall, n, verdict, steps))
        d = check.overall
        records.append({
            "claim": check.claim, "metric": check.metric, "verdict": check.verdict,
            "from": d.frm if d else None, "to": d.to if d else None,
            "value_from": d.value_from if d else None, "value_to": d.value_to if d else None,
            "difference": d.difference if d else None,
            "ci_low": d.interval[0] if d and d.interval else None, "ci_high": d.interval[1] if d and d.interval else None,
            "n_images": d.n if d else None, "reason": check.reason or None,
        })
    notes = (
        f"Δ = last minus first of the methods run; per-image metrics paired by test image, with the {CI_LEVEL:.0%} "
        f"percentile-bootstrap interval of the mean difference ({N_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}).",
        "FID is a statistic of the whole set: no interval, so its verdict is the sign of Δ alone.",
        "shown: the claimed direction, interval clear of 0; within noise: the interval holds 0; contradicted: the "
        "other direction, interval clear of 0; partly: first to last shown, a step between contradicted.",
    )
    return Table(name="claims", title=title, header=header, rows=tuple(rows), data=pd.DataFrame.from_records(records),
                 notes=notes)


def read_per_image(paths: Mapping[str, Path]) -> dict[str, pd.DataFrame]:
    """{method: per-image table} of the methods whose per-image CSV exists."""
    tables = {}
    for method, path in paths.items():
        if Path(path).is_file():
            try:
                tables[method] = pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: not a per-image metrics CSV ({' '.join(str(exc).split())})") from None
    return tables


def not_run_reasons(metrics_root: Path, task: str) -> dict[str, str]:
    """{method: reason} from the evaluate stage's placeholders (``{"status", "reason"}``) under ``metrics_root``."""
    reasons = {}
    for path in sorted(Path(metrics_root).glob(f"*/{task}.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # not a placeholder: load_metrics_dir reports a broken file
        if isinstance(data, dict) and "status" in data:
            reasons[path.parent.name] = str(data.get("reason") or data["status"])
    return reasons


def paper_claims(skips_arms: Mapping[int, str], aug_arms: Mapping[str, str], alpha_arms: Mapping[float, str],
                 main: str, degraded: str) -> list[Claim]:
    """The claims of spec section 5 over this run's arms ({skips: method}, {"N"/"Y": method}, {alpha: method})."""
    up_to_4 = {f"{n} skips": m for n, m in sorted(skips_arms.items()) if n <= 4}
    by_alpha = {f"α {a:g}": m for a, m in sorted(alpha_arms.items())}
    claims = [
        Claim("More skips, up to 4, raise PSNR, SSIM, iPrecision and lower LPIPS (Table 6)", up_to_4,
              ("psnr", "ssim", "iprecision", "lpips")),
        Claim("6 skips are worse than 4 (Table 6)", {"4 skips": skips_arms.get(4, main), "6 skips": skips_arms.get(6)},
              ("psnr", "ssim", "iprecision", "lpips"), better=False),
        Claim("Adversarial augmentation improves PSNR, SSIM, LPIPS and FID (Table 7)",
              {f"aug {k}": aug_arms[k] for k in ("N", "Y") if k in aug_arms}, ("psnr", "ssim", "lpips", "fid")),
        Claim("Larger alpha lowers PSNR (C.4)", by_alpha, ("psnr",), better=False),
        Claim("Larger alpha improves FID (C.4)", by_alpha, ("fid",)),
        Claim("Ours beats the degraded input on LPIPS, FID and iPrecision (Table 8)", {"DEG": degraded, "Ours": main},
              ("lpips", "fid", "iprecision")),
    ]
    return claims


__all__ = ["Claim", "ClaimCheck", "Difference", "check_claims", "claims_table", "paired_difference", "paper_claims",
           "read_per_image", "not_run_reasons"]
