"""The paper's claims (spec section 5), one line per claim and metric, decided over training seeds and checked
for stability along training (issue 24).

A claim says that one arm beats another on a metric, or that a metric moves one way along an ordered list of
arms (more skips, larger alpha). It is checked from the first to the last arm of the list that were run (the
steps between are listed too), and for each training seed the two arms share (``ablations.seeds``; the
degraded input has no seed and pairs with every seed):

- per-image metrics (PSNR, SSIM, LPIPS, identity distance, and iPrecision@k as each image's 0/1 "inside its own
  ball") are compared image by image on the same test images (paired by name): the seed's mean difference,
  with a 95% percentile-bootstrap interval of it over images (:func:`faceres.metrics.stats.bootstrap_mean_ci`,
  seeded: reports are reproducible);
- FID is one number per test set: a seed's interval is its difference ± the larger of the two arms' FID std
  over training seeds (how much FID moves with the seed alone).

The trajectory: the same difference on the validation split at every snapshot of training (trajectories/ARM,
:mod:`faceres.pipeline.trajectory`; FID has none), averaged over the seeds.

Verdicts (:func:`decide`): ``shown`` / ``contradicted`` only when the difference is beyond its interval, in the
claimed / the other direction, for every seed (two seeds at least), and the trajectory's sign was that same
one at every point of the last half of training; otherwise ``undecided at this scale``, with the reason (a
seed within its interval, seeds disagreeing, a flip at step S, one training seed only). ``not run``: fewer
than two of the arms have metrics. A claim on a downsampling bin (``Claim.scale_bin``) uses that bin's test
images and trajectory rows. The verdict is mechanical; why a claim fails is for the reader, beside the report.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from faceres.core.errors import DataError
from faceres.metrics.stats import bootstrap_mean_ci
from faceres.metrics.strata import BIN_COLUMN, REGULAR_BINS
from faceres.report.comparison_table import DASH, Table, format_number
from faceres.metrics.metrics_file import MetricsFile

CI_LEVEL = 0.95
N_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same metrics give the same intervals in every report

SHOWN, CONTRADICTED, UNDECIDED, NOT_RUN = "shown", "contradicted", "undecided at this scale", "not run"
PER_IMAGE = ("psnr", "ssim", "lpips", "identity_distance", "iprecision")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "identity_distance": False, "iprecision": True,
                    "fid": False}
HEADERS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "identity_distance": "ID distance",
           "iprecision": "iPrecision@{k}", "fid": "FID"}
DECIMALS = {"psnr": 2, "ssim": 4, "lpips": 4, "identity_distance": 3, "iprecision": 3, "fid": 1}
NO_SEED = None  # the seed key of a method without training seeds (the degraded input, an external method)


@dataclass(frozen=True)
class Claim:
    """``text`` (the paper's words, shortened), the arms in order ({label: arm}: the claim is that each
    ``metric`` gets better from the first towards the last, or worse with ``better=False``); ``scale_bin``: a
    downsampling bin of the test inputs (:mod:`faceres.metrics.strata`), None for all of them."""

    text: str
    methods: Mapping[str, str | None]  # None: no such arm
    metrics: tuple[str, ...]
    better: bool = True
    scale_bin: str | None = None


@dataclass(frozen=True)
class Difference:
    """``to`` minus ``frm`` on one metric: values of each, their difference, its interval and the number of
    paired test images (None for FID)."""

    frm: str
    to: str
    value_from: float
    value_to: float
    difference: float
    interval: tuple[float, float] | None
    n: int | None

    def sign(self) -> int:
        """+1 / -1: the difference is clear of 0 on that side; 0: within its interval (or none to judge by)."""
        if self.interval is None:
            return 0
        low, high = self.interval
        return 1 if low > 0 else -1 if high < 0 else 0


@dataclass(frozen=True)
class SeedCheck:
    """One training seed's final difference on the test split."""

    seed: int | None
    difference: Difference


@dataclass(frozen=True)
class TrajectoryLine:
    """A claim's validation difference (last arm minus first) at each snapshot step: the mean over seeds and
    each seed's own."""

    steps: tuple[int, ...]
    mean: tuple[float, ...]
    per_seed: Mapping[int | None, tuple[float, ...]]

    def last_half(self) -> list[tuple[int, float]]:
        """(step, mean difference) of the points in the last half of training (step >= half the last step)."""
        end = self.steps[-1]
        return [(step, value) for step, value in zip(self.steps, self.mean) if step >= end / 2]


@dataclass(frozen=True)
class ClaimCheck:
    """One line of the claims table: a claim on one metric, its verdict and the numbers behind it. ``overall``:
    first to last arm, values and difference averaged over the seeds (no interval: see ``seeds``)."""

    claim: str
    metric: str
    verdict: str
    overall: Difference | None
    seeds: tuple[SeedCheck, ...] = ()
    steps: tuple[Difference, ...] = ()
    trajectory: TrajectoryLine | None = None
    reason: str = ""
    scale_bin: str | None = None


def decide(claimed_sign: int, seed_signs: Sequence[int], trajectory: TrajectoryLine | None,
           has_trajectory: bool = True) -> tuple[str, str]:
    """(verdict, why) by the module's rule. `seed_signs`: each seed's +1 / -1 (beyond its interval) or 0;
    `trajectory`: the claim's validation line (None: none was scored); `has_trajectory` False: the metric has
    none by design (FID), and the verdict rests on the seeds, saying so."""
    if len(seed_signs) < 2:
        return UNDECIDED, f"{len(seed_signs)} training seed: no replication"
    if all(s == claimed_sign for s in seed_signs):
        found = claimed_sign
    elif all(s == -claimed_sign for s in seed_signs):
        found = -claimed_sign
    else:
        within = sum(1 for s in seed_signs if s == 0)
        why = (f"{within} of {len(seed_signs)} seeds within the interval" if within and len(set(seed_signs) - {0}) <= 1
               else "the seeds disagree in sign")
        return UNDECIDED, why
    verdict = SHOWN if found == claimed_sign else CONTRADICTED
    if not has_trajectory:
        return verdict, "FID: no trajectory (scored at the end only); the seeds alone"
    if trajectory is None:
        return UNDECIDED, "no validation trajectory to check its stability"
    flips = [step for step, value in trajectory.last_half() if np.sign(value) != found]
    if flips:
        return UNDECIDED, f"the validation difference had the other sign at step {flips[0]} (last half of training)"
    return verdict, ""


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


Families = Mapping[str, Mapping[int | None, str]]  # {arm: {training seed: method}}


def _rows_of_bin(table: pd.DataFrame, scale_bin: str | None, label: str) -> pd.DataFrame:
    if scale_bin is None:
        return table
    if BIN_COLUMN not in table.columns:
        raise DataError(f"per-image metrics of {label}: no column {BIN_COLUMN!r} (rerun its evaluate stage)")
    return table[table[BIN_COLUMN] == scale_bin]


def _fid_seed_std(runs: Mapping[str, MetricsFile], family: Mapping[int | None, str]) -> float | None:
    """FID's std over an arm's training seeds: 0 for a method without seeds, None with fewer than two."""
    if list(family) == [NO_SEED]:
        return 0.0
    values = [runs[m].fid for m in family.values() if m in runs and runs[m].fid is not None]
    return statistics.stdev(values) if len(values) > 1 else None


def _seed_difference(runs, per_image, metric: str, column: str, labels: tuple[str, str], methods: tuple[str, str],
                     fid_margin: float | None, scale_bin: str | None, rng) -> Difference:
    method_a, method_b = methods
    if metric == "fid":
        a, b = runs[method_a].fid, runs[method_b].fid
        if a is None or b is None:
            raise DataError(f"metrics of {method_a if a is None else method_b}: no FID (evaluate it, or drop the claim)")
        interval = None if fid_margin is None else (b - a - fid_margin, b - a + fid_margin)
        return Difference(*labels, a, b, b - a, interval, None)
    tables = [_rows_of_bin(per_image[m], scale_bin, m) for m in methods]
    return paired_difference(*tables, column, labels, rng)


def _paired_seeds(family_a: Mapping, family_b: Mapping) -> list[tuple[int | None, str, str]]:
    """[(seed, method of a, method of b)]: the seeds both arms have (a method without seeds pairs with each)."""
    if list(family_a) == [NO_SEED]:
        return [(seed, family_a[NO_SEED], m) for seed, m in family_b.items()]
    if list(family_b) == [NO_SEED]:
        return [(seed, m, family_b[NO_SEED]) for seed, m in family_a.items()]
    return [(seed, family_a[seed], family_b[seed]) for seed in family_a if seed in family_b]


def _trajectory(trajectories: Mapping[str, pd.DataFrame], pairs, column: str,
                scale_bin: str | None) -> TrajectoryLine | None:
    """The seeds' validation differences (b - a) at the steps every seed has; None when a method has none. A
    table of one row (the degraded input, step 0) is the same at every step."""
    lines = {}
    for seed, method_a, method_b in pairs:
        if method_a not in trajectories or method_b not in trajectories:
            return None
        sides = []
        for method in (method_a, method_b):
            table = trajectories[method]
            table = table[table["bin"] == (scale_bin or "all")][["step", column]]
            sides.append(table)
        a, b = sides
        if len(a) == 1 and len(b) > 1:
            merged = b.assign(a=float(a[column].iloc[0])).rename(columns={column: "b"})
        elif len(b) == 1 and len(a) > 1:
            merged = a.assign(b=float(b[column].iloc[0])).rename(columns={column: "a"})
        else:
            merged = a.merge(b, on="step", suffixes=("_a", "_b")).rename(columns={f"{column}_a": "a", f"{column}_b": "b"})
        lines[seed] = dict(zip(merged["step"].astype(int), (merged["b"] - merged["a"]).astype(float)))
    common = sorted(set.intersection(*(set(line) for line in lines.values()))) if lines else []
    if not common:
        return None
    per_seed = {seed: tuple(line[step] for step in common) for seed, line in lines.items()}
    mean = tuple(float(np.mean([values[i] for values in per_seed.values()])) for i in range(len(common)))
    return TrajectoryLine(tuple(common), mean, per_seed)


def _seed_mean(seeds: Sequence[SeedCheck], frm: str, to: str) -> Difference:
    """The seeds' values and differences averaged (no interval: each seed has its own)."""
    d = [c.difference for c in seeds]
    return Difference(frm, to, float(np.mean([x.value_from for x in d])), float(np.mean([x.value_to for x in d])),
                      float(np.mean([x.difference for x in d])), None, d[0].n if d else None)


def _why_missing(method: str | None, not_run: Mapping[str, str]) -> str:
    if method is None:
        return "no such arm in params.yaml ablations.arms"
    return f"{method}, {not_run[method]}" if method in not_run else f"{method} has no metrics"


def check_claims(claims: Sequence[Claim], runs: Mapping[str, MetricsFile], per_image: Mapping[str, pd.DataFrame],
                 *, families: Families | None = None, trajectories: Mapping[str, pd.DataFrame] | None = None,
                 not_run: Mapping[str, str] = {}, ipr_k: int = 1) -> list[ClaimCheck]:
    """Every claim on each of its metrics, decided by :func:`decide`. ``runs``: {method: metrics} of the task;
    ``per_image``: {method: its per-image table (``name``, one column per metric, iPrecision as
    ``iprecision_k<k>``, ``scale_bin`` for claims on a bin)}; ``families``: {arm: {training seed: method}} (an
    arm missing from it is one method without seeds); ``trajectories``: {method: trajectories/METHOD's table};
    ``not_run``: {method: why it has no metrics}, quoted when a claim cannot be checked."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    families = families or {}
    trajectories = trajectories or {}

    def family(arm: str | None) -> dict:
        members = families.get(arm, {NO_SEED: arm}) if arm is not None else {}
        return {seed: m for seed, m in members.items() if m in runs and m in per_image}

    checks = []
    for claim in claims:
        ran = [(label, arm) for label, arm in claim.methods.items() if family(arm)]
        if len(ran) < 2:
            reason = "; ".join(f"{label}: {_why_missing(arm, not_run)}" for label, arm in claim.methods.items()
                               if not family(arm))
            checks.append(ClaimCheck(claim.text, DASH, NOT_RUN, None, reason=reason, scale_bin=claim.scale_bin))
            continue
        left_out = "; ".join(f"{label} left out: {_why_missing(arm, not_run)}"
                             for label, arm in claim.methods.items() if not family(arm))
        for metric in claim.metrics:
            column = f"iprecision_k{ipr_k}" if metric == "iprecision" else metric

            def seed_checks(a, b) -> tuple[tuple[SeedCheck, ...], list]:
                """Each shared seed's test difference from arm `a` to arm `b`, and the (seed, method, method) pairs."""
                (label_a, arm_a), (label_b, arm_b) = a, b
                margin = None
                if metric == "fid":
                    stds = [_fid_seed_std(runs, family(arm)) for arm in (arm_a, arm_b)]
                    margin = None if None in stds else max(stds)
                pairs = _paired_seeds(family(arm_a), family(arm_b))
                return tuple(SeedCheck(seed, _seed_difference(runs, per_image, metric, column, (label_a, label_b),
                                                              (ma, mb), margin, claim.scale_bin, rng))
                             for seed, ma, mb in pairs), pairs

            try:
                seeds, pairs = seed_checks(ran[0], ran[-1])
            except DataError as missing:  # e.g. FID or a bin column not evaluated: this metric cannot be checked
                checks.append(ClaimCheck(claim.text, metric, NOT_RUN, None, reason=str(missing),
                                         scale_bin=claim.scale_bin))
                continue
            if not seeds:
                checks.append(ClaimCheck(claim.text, metric, UNDECIDED, None,
                                         reason=f"{ran[0][0]} and {ran[-1][0]} share no training seed",
                                         scale_bin=claim.scale_bin))
                continue
            steps = tuple(_seed_mean(seed_checks(a, b)[0], a[0], b[0]) for a, b in zip(ran, ran[1:])) \
                if len(ran) > 2 else ()
            trajectory = _trajectory(trajectories, pairs, metric, claim.scale_bin) if metric != "fid" else None
            improving = 1 if HIGHER_IS_BETTER[metric] else -1
            claimed_sign = improving if claim.better else -improving
            verdict, why = decide(claimed_sign, [c.difference.sign() for c in seeds], trajectory,
                                  has_trajectory=metric != "fid")
            reason = "; ".join(r for r in (why, left_out) if r)
            checks.append(ClaimCheck(claim.text, metric, verdict, _seed_mean(seeds, ran[0][0], ran[-1][0]), seeds,
                                     steps, trajectory, reason, claim.scale_bin))
    return checks


def _number(value: float, metric: str, *, signed: bool = False) -> str:
    return format_number(value, DECIMALS[metric], signed=signed)


def describe(difference: Difference, metric: str) -> str:
    """"a → b: 19.04 → 19.65, Δ +0.61 [+0.52, +0.70]" (no interval: none printed)."""
    text = (f"{difference.frm} → {difference.to}: {_number(difference.value_from, metric)} → "
            f"{_number(difference.value_to, metric)}, Δ {_number(difference.difference, metric, signed=True)}")
    return text + _interval_text(difference, metric)


def _interval_text(difference: Difference, metric: str) -> str:
    if difference.interval is None:
        return ""
    low, high = difference.interval
    return f" [{_number(low, metric, signed=True)}, {_number(high, metric, signed=True)}]"


def _seed_text(check: SeedCheck, metric: str) -> str:
    who = "" if check.seed is None else f"s{check.seed}: "
    return f"{who}{_number(check.difference.difference, metric, signed=True)}{_interval_text(check.difference, metric)}"


def _trajectory_text(line: TrajectoryLine | None, metric: str) -> str:
    if line is None:
        return DASH
    return ", ".join(f"{step}: {_number(value, metric, signed=True)}" for step, value in line.last_half())


def claims_table(checks: Sequence[ClaimCheck], *, ipr_k: int = 1, title: str = "The paper's claims on this run",
                 scale: str | None = None) -> Table:
    """The claims as a report table: claim, metric, first → last (means over seeds), each seed's Δ [95% CI],
    the validation Δ over the last half of training, verdict (with why), steps between. ``scale``: what every
    verdict holds at (resolution, width, steps, images), a note."""
    columns = ("Claim", "Metric", "First → last: mean over seeds", "Per seed: Δ [95% CI]",
               "Validation Δ, last half (step: Δ)", "Verdict", "Steps")
    header = tuple((h, (h,)) for h in columns)
    rows, records = [], []
    for check in checks:
        metric_name = HEADERS.get(check.metric, check.metric).format(k=ipr_k)
        if check.scale_bin is not None:
            metric_name += f", {check.scale_bin}"
        overall = describe(check.overall, check.metric) if check.overall else DASH
        per_seed = "; ".join(_seed_text(c, check.metric) for c in check.seeds) or DASH
        n = check.overall.n if check.overall and check.overall.n is not None else None
        if n is not None:
            per_seed += f" (n = {n})"
        steps = "; ".join(describe(step, check.metric) for step in check.steps) or DASH
        verdict = check.verdict + (f" ({check.reason})" if check.reason else "")
        trajectory = _trajectory_text(check.trajectory, check.metric) if check.metric != DASH else DASH
        rows.append((check.claim, metric_name, overall, per_seed, trajectory, verdict, steps))
        d = check.overall
        records.append({
            "claim": check.claim, "metric": check.metric, "scale_bin": check.scale_bin, "verdict": check.verdict,
            "from": d.frm if d else None, "to": d.to if d else None,
            "value_from": d.value_from if d else None, "value_to": d.value_to if d else None,
            "difference": d.difference if d else None, "n_images": d.n if d else None,
            "seeds": ";".join("-" if c.seed is None else str(c.seed) for c in check.seeds) or None,
            "seed_differences": ";".join(f"{c.difference.difference:.6g}" for c in check.seeds) or None,
            "seed_ci_low": ";".join("" if c.difference.interval is None else f"{c.difference.interval[0]:.6g}"
                                    for c in check.seeds) or None,
            "seed_ci_high": ";".join("" if c.difference.interval is None else f"{c.difference.interval[1]:.6g}"
                                     for c in check.seeds) or None,
            "validation_last_half": ";".join(f"{step}:{value:.6g}" for step, value in check.trajectory.last_half())
            if check.trajectory else None,
            "reason": check.reason or None,
        })
    notes = [
        f"Δ = last minus first of the arms run. Per seed: the per-image metrics paired by test image, with the "
        f"{CI_LEVEL:.0%} percentile-bootstrap interval of the mean difference ({N_RESAMPLES} resamples, seed "
        f"{BOOTSTRAP_SEED}); FID: Δ ± the larger of the two arms' FID std over training seeds. The degraded input "
        "has no training seed: it pairs with each seed of the other arm.",
        "Validation Δ: the same difference on the validation split, at each generator snapshot in the last half of "
        "training, averaged over the seeds (trajectories/ARM; no FID: a few hundred faces are too few for it).",
        "shown / contradicted: beyond its interval in the claimed / the other direction for every training seed "
        "(two at least), and the validation Δ of that sign at every point of the last half; otherwise undecided at "
        "this scale, with the reason. FID has no trajectory: its verdict rests on the seeds and says so.",
    ]
    if scale:
        notes.append(f"Every verdict holds at this scale only: {scale}.")
    return Table(name="claims", title=title, header=header, rows=tuple(rows), data=pd.DataFrame.from_records(records),
                 notes=tuple(notes))


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


def read_trajectories(paths: Mapping[str, Path]) -> dict[str, pd.DataFrame]:
    """{method: trajectory table} of the methods whose trajectories/METHOD/validation.csv exists."""
    tables = {}
    for method, path in paths.items():
        if Path(path).is_file():
            try:
                table = pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: not a trajectory CSV ({' '.join(str(exc).split())})") from None
            missing = [c for c in ("step", "bin") if c not in table.columns]
            if missing:
                raise DataError(f"{path}: no column(s) {', '.join(missing)}; allowed: the trajectory stage's CSV")
            tables[method] = table
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
              ("lpips", "fid", "iprecision", "identity_distance", "psnr")),
    ]
    claims += [Claim("Ours beats the degraded input at every degradation strength (Table 8 by downsampling bin)",
                     {"DEG": degraded, "Ours": main}, ("psnr", "identity_distance", "iprecision", "lpips"),
                     scale_bin=scale_bin.name) for scale_bin in REGULAR_BINS]
    return claims


__all__ = ["Claim", "ClaimCheck", "Difference", "SeedCheck", "TrajectoryLine", "check_claims", "claims_table", "decide",
           "paired_difference", "paper_claims", "read_per_image", "read_trajectories", "not_run_reasons"]
