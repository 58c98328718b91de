"""The claims table: paired differences against a brute-force bootstrap and hand-made cases whose verdict is
known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceres.core.errors import DataError
from faceres.report.claims import (
    CONTRADICTED,
    NOT_RUN,
    PARTLY,
    SHOWN,
    WITHIN_NOISE,
    Claim,
    check_claims,
    claims_table,
    paired_difference,
    paper_claims,
)
from faceres.metrics.metrics_file import MetricsFile


def per_image(names, **columns) -> pd.DataFrame:
    return pd.DataFrame({"name": list(names), **{k: np.asarray(v, float) for k, v in columns.items()}})


def run(method: str, fid: float | None = None) -> MetricsFile:
    from pathlib import Path

    return MetricsFile(path=Path(f"{method}/bfr.json"), method=method, task="bfr", fid=fid)


def test_paired_difference_pairs_by_name_and_matches_a_brute_force_bootstrap():
    rng = np.random.default_rng(5)
    names = [f"{i:04d}" for i in range(300)]
    a = rng.normal(20.0, 2.0, 300)
    b = a + rng.normal(0.3, 1.0, 300)  # a paired gain of ~0.3 dB with per-image noise of 1 dB
    frm = per_image(names, psnr=a)
    to = per_image(names, psnr=b).iloc[::-1]  # another row order: pairing must go by name
    diff = paired_difference(frm, to, "psnr", ("A", "B"), np.random.default_rng(0))
    assert diff.n == 300 and diff.difference == pytest.approx(float((b - a).mean()), abs=1e-12)
    assert diff.value_from == pytest.approx(a.mean()) and diff.value_to == pytest.approx(b.mean())
    # brute force: resample image indices, 20,000 times, percentile interval
    draws = np.random.default_rng(1).integers(0, 300, size=(20000, 300))
    means = (b - a)[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    assert diff.interval[0] == pytest.approx(low, abs=0.02) and diff.interval[1] == pytest.approx(high, abs=0.02)
    # an unpaired interval would be ~2.9x wider (the images' own spread of 2 dB): pairing is what makes it this narrow
    assert diff.interval[1] - diff.interval[0] < 0.3


def test_paired_difference_drops_non_finite_values_and_unmatched_names():
    frm = per_image(["a", "b", "c", "d"], psnr=[10.0, np.inf, 12.0, 13.0])
    to = per_image(["a", "b", "c", "e"], psnr=[11.0, 30.0, 14.0, 99.0])
    diff = paired_difference(frm, to, "psnr", ("A", "B"), np.random.default_rng(0))
    assert diff.n == 2 and diff.difference == pytest.approx(1.5)  # a: +1, c: +2; b infinite, d/e unmatched
    with pytest.raises(DataError, match="per-image metrics of B: no column 'ssim'"):
        paired_difference(frm.assign(ssim=0.5), to, "ssim", ("A", "B"), np.random.default_rng(0))


def _arms(psnr_by_method: dict[str, np.ndarray], lpips_by_method: dict[str, np.ndarray] | None = None):
    names = [f"{i}" for i in range(len(next(iter(psnr_by_method.values()))))]
    tables = {}
    for method, psnr in psnr_by_method.items():
        columns = {"psnr": psnr}
        if lpips_by_method:
            columns["lpips"] = lpips_by_method[method]
        tables[method] = per_image(names, **columns)
    return tables


def test_verdicts_follow_the_sign_and_the_interval():
    rng = np.random.default_rng(0)
    base = rng.normal(20, 2, 200)
    flat = base + rng.permutation(np.r_[np.full(100, 0.5), np.full(100, -0.5)])  # a mean difference of 0
    tables = _arms({"s0": base, "s2": base + 1.0, "s4": base + 2.0, "flat": flat, "worse": base - 1.0})
    runs = {m: run(m) for m in tables}
    claims = [
        Claim("more skips", {"0": "s0", "2": "s2", "4": "s4"}, ("psnr",)),
        Claim("flat", {"0": "s0", "x": "flat"}, ("psnr",)),
        Claim("wrong way", {"0": "s0", "w": "worse"}, ("psnr",)),
        Claim("claimed worse", {"0": "s0", "w": "worse"}, ("psnr",), better=False),
        Claim("a step back", {"0": "s0", "4": "s4", "w": "s2"}, ("psnr",)),  # 0 -> 2: +1 overall, 4 -> 2: -1
    ]
    checks = check_claims(claims, runs, tables)
    assert [c.verdict for c in checks] == [SHOWN, WITHIN_NOISE, CONTRADICTED, SHOWN, PARTLY]
    first = checks[0]
    assert first.overall.frm == "0" and first.overall.to == "4" and first.overall.difference == pytest.approx(2.0)
    assert first.overall.interval == pytest.approx((2.0, 2.0)) and first.overall.n == 200
    assert [(s.frm, s.to) for s in first.steps] == [("0", "2"), ("2", "4")]


def test_lower_is_better_metrics_and_fid_without_interval():
    names = [str(i) for i in range(50)]
    tables = {"deg": per_image(names, lpips=np.full(50, 0.46), iprecision_k1=np.r_[np.ones(10), np.zeros(40)]),
              "main": per_image(names, lpips=np.full(50, 0.30), iprecision_k1=np.r_[np.ones(4), np.zeros(46)])}
    runs = {"deg": run("deg", fid=329.0), "main": run("main", fid=99.0)}
    claim = Claim("ours beats DEG", {"DEG": "deg", "Ours": "main"}, ("lpips", "fid", "iprecision"))
    lpips, fid, ipr = check_claims([claim], runs, tables)
    assert lpips.verdict == SHOWN and lpips.overall.difference == pytest.approx(-0.16)
    assert fid.verdict == SHOWN and fid.overall.interval is None and fid.overall.difference == pytest.approx(-230.0)
    assert ipr.verdict == CONTRADICTED and ipr.overall.difference == pytest.approx(-0.12)  # 4/50 vs 10/50


def test_a_claim_whose_arm_was_not_run_says_why_and_the_table_renders_it():
    names = [str(i) for i in range(20)]
    tables = {"main": per_image(names, psnr=np.full(20, 20.0))}
    runs = {"main": run("main")}
    claims = paper_claims({0: "skips0", 4: "main", 6: "skips6"}, {"N": "noaug", "Y": "main"}, {}, main="main",
                          degraded="deg")
    reason = "skip nodes are 8..64 px at 64 px: 4 at most"
    checks = check_claims(claims, runs, tables, not_run={"skips6": reason})
    six = next(c for c in checks if c.claim.startswith("6 skips"))
    assert six.verdict == NOT_RUN and f"6 skips: skips6, {reason}" in six.reason
    assert all(c.verdict == NOT_RUN for c in checks)  # nothing but main has metrics
    table = claims_table(checks)
    markdown = table.to_markdown()
    assert reason in markdown and "| not run" in markdown
    assert list(table.data["verdict"]) == [NOT_RUN] * len(checks)


def test_a_missing_middle_arm_is_left_out_of_the_line_with_its_reason():
    rng = np.random.default_rng(3)
    base = rng.normal(20, 2, 100)
    tables = _arms({"skips0": base, "skips2": base + 1, "main": base + 1.5})
    runs = {m: run(m) for m in tables}
    claims = paper_claims({0: "skips0", 1: "skips1", 2: "skips2", 4: "main"}, {}, {}, main="main", degraded="deg")
    check = check_claims(claims[:1], runs, {m: t.assign(ssim=0.5, lpips=0.3, iprecision_k1=1.0)
                                            for m, t in tables.items()})[0]
    assert check.metric == "psnr" and check.verdict == SHOWN
    assert check.overall.difference == pytest.approx(1.5) and len(check.steps) == 2
    assert "1 skips left out: skips1 has no metrics" in check.reason
