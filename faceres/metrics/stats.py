"""Aggregates of per-image metric values: mean, sample standard deviation and a bootstrap confidence interval."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

from faceres.core.errors import ConfigError


@dataclass(frozen=True)
class Summary:
    """Aggregate of ``n`` per-image values. ``std`` is the sample standard deviation (ddof=1; NaN for n < 2).

    ``ci_low``/``ci_high`` bound the mean: a percentile bootstrap (resampling images with replacement) at
    ``ci_level``; None when no interval was asked for.
    """

    mean: float
    std: float
    n: int
    ci_level: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_mean_ci(values: np.ndarray, *, level: float, n_resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (1-D), drawn from the caller's seeded generator."""
    values = np.asarray(values, dtype=np.float64)
    if not 0.0 < level < 1.0:
        raise ConfigError(f"ci_level = {level}: allowed: a number in (0, 1)")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples = {n_resamples}: allowed: an integer >= 1")
    if values.size == 1:  # every resample is the one value (scipy refuses a sample of one)
        return float(values[0]), float(values[0])
    # batch: resample in chunks so the index matrix stays small whatever n and n_resamples are.
    interval = scipy.stats.bootstrap((values,), np.mean, n_resamples=n_resamples, batch=max(1, 2**22 // max(values.size, 1)),
                                     confidence_level=level, method="percentile", rng=rng).confidence_interval
    return float(interval.low), float(interval.high)


def summarize(
    values,
    *,
    ci_level: float | None = None,
    n_resamples: int = 1000,
    rng: np.random.Generator | None = None,
) -> Summary:
    """Mean, sample std and n of per-image ``values``; with ``ci_level`` (e.g. 0.95) also a bootstrap CI.

    A CI needs an explicit seeded ``rng`` (``np.random.default_rng(seed)``) so reports are reproducible.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ConfigError("cannot summarise an empty list of metric values")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    if ci_level is None:
        return Summary(mean=mean, std=std, n=int(values.size))
    if rng is None:
        raise ConfigError("summarize(ci_level=...) needs rng=np.random.default_rng(seed) for a reproducible CI")
    low, high = bootstrap_mean_ci(values, level=ci_level, n_resamples=n_resamples, rng=rng)
    return Summary(mean=mean, std=std, n=int(values.size), ci_level=ci_level, ci_low=low, ci_high=high)


def quantity_rng(seed: int, quantity: str) -> np.random.Generator:
    """The bootstrap generator of one named quantity (e.g. "psnr", "iprecision_k1"): a stream of its own under
    ``seed``, so a CI does not change when other quantities are added to a run."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(quantity.encode()),)))


def summarize_quantity(values, quantity: str, *, seed: int, ci_level: float | None, n_resamples: int) -> Summary:
    """:func:`summarize` of the per-image ``values`` of ``quantity``, its CI drawn from :func:`quantity_rng`."""
    return summarize(values, ci_level=ci_level, n_resamples=n_resamples, rng=quantity_rng(seed, quantity))
