"""The claims table: paired differences against a brute-force bootstrap, and the verdict rule over training seeds
and validation trajectories on hand-made cases whose verdict is known by construction."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from faceres.core.errors import DataError
from faceres.report.claims import (
    CONTRADICTED,
    NOT_RUN,
    SHOWN,
    UNDECIDED,
    Claim,
    TrajectoryLine,
    check_claims,
    claims_table,
    decide,
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


def _trajectory(steps, values, bin_name="all") -> pd.DataFrame:
    return pd.DataFrame({"step": steps, "bin": bin_name, "psnr": values})


SEED_TRAJECTORY_STEPS = [100, 200, 300, 400]


def test_decide_hand_made_cases():
    held = TrajectoryLine((100, 200, 300, 400), (-0.1, 0.2, 0.3, 0.4), {})
    flips_late = TrajectoryLine((100, 200, 300, 400), (0.1, 0.2, -0.05, 0.4), {})  # step 300 is in the last half
    flips_early = TrajectoryLine((100, 200, 300, 400), (-0.3, 0.2, 0.3, 0.4), {})  # step 100 is not
    assert decide(+1, [+1, +1], held) == (SHOWN, "")
    assert decide(+1, [+1, +1, +1], flips_early)[0] == SHOWN
    assert decide(-1, [+1, +1], held) == (CONTRADICTED, "")  # found +1, claimed -1, held at +1
    verdict, why = decide(+1, [+1, +1], flips_late)
    assert verdict == UNDECIDED and "step 300" in why
    verdict, why = decide(+1, [+1, 0], held)
    assert verdict == UNDECIDED and "1 of 2 seeds within the interval" in why
    verdict, why = decide(+1, [+1, -1], held)
    assert verdict == UNDECIDED and "disagree" in why
    verdict, why = decide(+1, [+1], held)
    assert verdict == UNDECIDED and "1 training seed" in why  # no replication, whatever its interval
    assert decide(+1, [+1, +1], None)[0] == UNDECIDED  # no trajectory scored
    verdict, why = decide(-1, [-1, -1], None, has_trajectory=False)  # FID: the seeds alone, and it says so
    assert verdict == SHOWN and "FID" in why


def _seeded_arms(gain_by_seed: dict[int, float], n: int = 200):
    """Two arms with seeds 0 and 1: arm b beats arm a by gain_by_seed[seed] dB on every image (plus noise)."""
    rng = np.random.default_rng(0)
    names = [str(i) for i in range(n)]
    tables, runs, families = {}, {}, {"a": {}, "b": {}}
    for seed, gain in gain_by_seed.items():
        base = rng.normal(20, 2, n)
        for arm, values in (("a", base), ("b", base + gain + rng.normal(0, 0.3, n))):
            method = arm if seed == 0 else f"{arm}_s{seed}"
            tables[method], runs[method] = per_image(names, psnr=values), run(method)
            families[arm][seed] = method
    return tables, runs, families


def test_a_verdict_needs_every_seed_beyond_its_interval_and_a_stable_trajectory():
    claim = Claim("b beats a", {"a": "a", "b": "b"}, ("psnr",))
    rising = {m: _trajectory(SEED_TRAJECTORY_STEPS, [20.0, 20.5, 21.0, 21.5] if m.startswith("b") else [20.0] * 4)
              for m in ("a", "a_s1", "b", "b_s1")}
    tables, runs, families = _seeded_arms({0: 1.0, 1: 0.8})
    (check,) = check_claims([claim], runs, tables, families=families, trajectories=rising)
    assert check.verdict == SHOWN and [c.seed for c in check.seeds] == [0, 1]
    assert [c.difference.difference for c in check.seeds] == pytest.approx([1.0, 0.8], abs=0.06)
    assert check.overall.difference == pytest.approx(0.9, abs=0.05) and check.overall.interval is None
    assert check.trajectory.steps == (100, 200, 300, 400) and check.trajectory.mean == pytest.approx((0, .5, 1, 1.5))

    tables, runs, families = _seeded_arms({0: 1.0, 1: 0.0})  # the second seed shows nothing
    (check,) = check_claims([claim], runs, tables, families=families, trajectories=rising)
    assert check.verdict == UNDECIDED and "within the interval" in check.reason

    tables, runs, families = _seeded_arms({0: 1.0, 1: 0.8})
    late_flip = dict(rising, b_s1=_trajectory(SEED_TRAJECTORY_STEPS, [20.0, 20.5, 18.0, 21.5]))  # mean -0.5 at 300
    (check,) = check_claims([claim], runs, tables, families=families, trajectories=late_flip)
    assert check.verdict == UNDECIDED and "step 300" in check.reason
    markdown = claims_table([check], scale="64 px, width 0.125, 400 steps").to_markdown()
    assert "undecided at this scale" in markdown and "64 px, width 0.125" in markdown
    assert re.search(r"s0: \+(0\.9|1\.0)\d \[\+0\.\d\d, \+1\.\d\d\]; s1: \+0\.\d\d", markdown)


def test_the_degraded_input_pairs_with_every_seed_and_its_trajectory_is_constant():
    names = [str(i) for i in range(100)]
    rng = np.random.default_rng(1)
    deg = rng.normal(20, 2, 100)
    tables = {"deg": per_image(names, psnr=deg), "main": per_image(names, psnr=deg + 0.5),
              "main_s1": per_image(names, psnr=deg + 0.6), "main_s2": per_image(names, psnr=deg + 0.7)}
    runs = {m: run(m) for m in tables}
    families = {"main": {0: "main", 1: "main_s1", 2: "main_s2"}}
    trajectories = {"deg": _trajectory([0], [20.0]), **{m: _trajectory(SEED_TRAJECTORY_STEPS, [19.5, 20.2, 20.4, 20.6])
                                                        for m in ("main", "main_s1", "main_s2")}}
    claim = Claim("ours beats DEG", {"DEG": "deg", "Ours": "main"}, ("psnr",))
    (check,) = check_claims([claim], runs, tables, families=families, trajectories=trajectories)
    assert [c.seed for c in check.seeds] == [0, 1, 2]
    assert [c.difference.difference for c in check.seeds] == pytest.approx([0.5, 0.6, 0.7])
    assert check.trajectory.mean == pytest.approx((-0.5, 0.2, 0.4, 0.6)) and check.verdict == SHOWN  # -0.5 is early


def test_fid_interval_is_the_seed_spread_and_a_bin_claim_uses_its_images_only():
    names = [str(i) for i in range(40)]
    bins = ["x0.8-2"] * 20 + ["x4-8"] * 20
    tables = {"a": per_image(names, psnr=np.r_[np.full(20, 25.0), np.full(20, 18.0)]).assign(scale_bin=bins),
              "a_s1": per_image(names, psnr=np.r_[np.full(20, 25.0), np.full(20, 18.0)]).assign(scale_bin=bins),
              "b": per_image(names, psnr=np.r_[np.full(20, 24.0), np.full(20, 20.0)]).assign(scale_bin=bins),
              "b_s1": per_image(names, psnr=np.r_[np.full(20, 24.0), np.full(20, 20.0)]).assign(scale_bin=bins)}
    runs = {"a": run("a", fid=100.0), "a_s1": run("a_s1", fid=104.0), "b": run("b", fid=97.0),
            "b_s1": run("b_s1", fid=90.0)}
    families = {"a": {0: "a", 1: "a_s1"}, "b": {0: "b", 1: "b_s1"}}
    fid_claim = Claim("b has the lower FID", {"a": "a", "b": "b"}, ("fid",))
    (fid,) = check_claims([fid_claim], runs, tables, families=families)
    margin = max(np.std([100, 104], ddof=1), np.std([97, 90], ddof=1))  # 4.95: b's spread
    assert fid.seeds[0].difference.interval == pytest.approx((-3 - margin, -3 + margin))  # within: -3 +- 4.95
    assert fid.seeds[1].difference.interval == pytest.approx((-14 - margin, -14 + margin))  # beyond
    assert fid.verdict == UNDECIDED and fid.trajectory is None
    mild = Claim("b beats a on mild inputs", {"a": "a", "b": "b"}, ("psnr",), scale_bin="x0.8-2")
    strong = Claim("b beats a on strong inputs", {"a": "a", "b": "b"}, ("psnr",), scale_bin="x4-8")
    low, high = check_claims([mild, strong], runs, tables, families=families)
    assert low.overall.difference == pytest.approx(-1.0) and low.overall.n == 20
    assert high.overall.difference == pytest.approx(2.0) and high.overall.n == 20
    assert low.verdict == UNDECIDED and "no validation trajectory" in low.reason  # contradicted by seeds, unchecked


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
    names = [str(i) for i in range(100)]
    tables = {m: per_image(names, psnr=base + gain, ssim=np.full(100, 0.5), lpips=np.full(100, 0.3),
                           iprecision_k1=np.ones(100)) for m, gain in (("skips0", 0), ("skips2", 1), ("main", 1.5))}
    runs = {m: run(m) for m in tables}
    claims = paper_claims({0: "skips0", 1: "skips1", 2: "skips2", 4: "main"}, {}, {}, main="main", degraded="deg")
    check = check_claims(claims[:1], runs, tables)[0]
    assert check.metric == "psnr" and check.verdict == UNDECIDED and "1 training seed" in check.reason
    assert check.overall.difference == pytest.approx(1.5) and len(check.steps) == 2
    assert [s.difference for s in check.steps] == pytest.approx([1.0, 0.5])
    assert "1 skips left out: skips1 has no metrics" in check.reason
