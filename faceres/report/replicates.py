"""Training seeds as the unit of replication: an arm's runs (its own and its replicates', ``ablations.seeds``;
:func:`faceres.config.arms.seeds_of`) pooled into one row of a table.

A pooled run holds, for every metric, the mean over the arm's training seeds of each seed's test-set value (a
seed's PSNR is already the mean over its test images and restoration noise seeds), and in ``extra``:
``training_seeds`` (the seeds pooled) and ``training_std`` ({metric: std over those seeds, ddof = 1}; also per
downsampling bin under ``strata_training_std``). That std is what the paper's "mean ± std over runs" is, and
what the tables print as ± when an arm has two seeds or more. An arm with one seed is its run, unchanged.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence

from faceres.metrics.metrics_file import PER_IMAGE_METRICS, MetricsFile, PerImageStat
from faceres.metrics.strata import BIN_NAMES, run_strata

TRAINING_SEEDS = "training_seeds"
TRAINING_STD = "training_std"
STRATA_TRAINING_STD = "strata_training_std"


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def training_std(run: MetricsFile, metric: str) -> float | None:
    """The std over training seeds of `metric` ('psnr', ..., 'fid', 'iprecision') of a pooled run, else None."""
    return run.extra.get(TRAINING_STD, {}).get(metric)


def seed_count(run: MetricsFile) -> int:
    return len(run.extra.get(TRAINING_SEEDS, ())) or 1


def pool_runs(runs: Sequence[MetricsFile], name: str, seeds: Sequence[int], ipr_k: int) -> MetricsFile:
    """One run of the arm `name` from its seeds' `runs` (same task and test images), as the module says."""
    assert len(runs) == len(seeds) >= 1, (len(runs), seeds)
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    stds: dict[str, float] = {}
    per_image = {}
    for metric in PER_IMAGE_METRICS:
        if all(metric in r.per_image for r in runs):
            mean, stds[metric] = _mean_std([r.per_image[metric].mean for r in runs])
            per_image[metric] = PerImageStat(mean)
    fid = None
    if all(r.fid is not None for r in runs):
        fid, stds["fid"] = _mean_std([r.fid for r in runs])
    manifold: dict = {}
    for quantity, spaces in first.manifold.items():
        for space, by_k in spaces.items():
            for k in by_k:
                values = [r.manifold_value(quantity, space, k) for r in runs]
                if all(v is not None for v in values):
                    mean, std = _mean_std(values)
                    manifold.setdefault(quantity, {}).setdefault(space, {})[k] = mean
                    if (quantity, space, k) == ("iprecision", "identity", ipr_k):
                        stds["iprecision"] = std
    extra = {TRAINING_SEEDS: list(seeds), TRAINING_STD: stds}
    strata = _pooled_strata(runs, ipr_k)
    if strata is not None:
        extra["strata"], extra[STRATA_TRAINING_STD] = strata
    return dataclasses.replace(first, method=name, per_image=per_image, fid=fid, manifold=manifold, extra=extra,
                               noise_seeds=first.noise_seeds)


def _pooled_strata(runs: Sequence[MetricsFile], ipr_k: int) -> tuple[dict, dict] | None:
    """(a strata block of the seeds' per-bin means, {bin: {metric: std over seeds}}), or None when a seed has none."""
    strata = [run_strata(r) for r in runs]
    if any(s is None for s in strata):
        return None
    block = dict(runs[0].extra["strata"])
    bins, stds = {}, {}
    for name in BIN_NAMES:
        per_seed = [next((b for b in s.bins if b.name == name), None) for s in strata]
        if any(b is None for b in per_seed):
            continue
        first = per_seed[0]
        metrics, bin_stds = {}, {}
        for metric in first.metrics:
            mean, bin_stds[metric] = _mean_std([b.metrics[metric].mean for b in per_seed])
            metrics[metric] = {"mean": mean}
        if all(ipr_k in b.iprecision for b in per_seed):
            mean, bin_stds["iprecision"] = _mean_std([b.iprecision[ipr_k].mean for b in per_seed])
            metrics["iprecision"] = {str(ipr_k): {"mean": mean}}
        raw = runs[0].extra["strata"]["bins"][name]
        bins[name] = {"interval": raw["interval"], "low": raw["low"], "high": raw.get("high"), "n": first.n,
                      "metrics": metrics}
        stds[name] = bin_stds
    block["bins"] = bins
    block["ci_level"] = None
    return block, stds


def pool_families(runs: Mapping[str, MetricsFile], families: Mapping[str, Mapping[int, str]],
                  ipr_k: int) -> dict[str, MetricsFile]:
    """`runs` with each arm of `families` ({arm: {training seed: method}}) in place of its methods: pooled over
    the seeds that have metrics (methods of no family are kept as they are)."""
    members = {method for seeds in families.values() for method in seeds.values()}
    pooled = {method: run for method, run in runs.items() if method not in members}
    for arm, seeds in families.items():
        present = [(seed, method) for seed, method in seeds.items() if method in runs]
        if present:
            pooled[arm] = pool_runs([runs[m] for _, m in present], arm, [s for s, _ in present], ipr_k)
    return pooled
