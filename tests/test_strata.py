"""Metrics by degradation strength (issue 23 item 3): bins, per-bin summaries, identity distance, the evaluate
stage's strata and the report's table, against hand-computed values and brute-force numpy."""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from PIL import Image

from faceres.core.errors import DataError
from faceres.metrics.evaluate import EvalOptions, Networks
from faceres.metrics.manifold import paired_distances, precision_recall
from faceres.metrics.metrics_file import load_metrics_dir
from faceres.metrics.strata import (
    BIN_NAMES,
    SCALE_EDGES,
    assign_bins,
    parse_strata,
    scales_from_manifest,
    strata_summary,
    stratify,
)
from faceres.report.tables import strata_table
from tests.conftest import small_config
from tests.test_metrics import FakeEmbedder

OPTIONS = EvalOptions(n_bootstrap=200, seed=3, progress=False)


# --- bins ---------------------------------------------------------------------------------------------------

def test_bin_edges_half_open_the_last_closed_and_outside_factors_in_bins_of_their_own():
    assert SCALE_EDGES == (0.8, 2.0, 4.0, 8.0)
    cases = {0.5: "below_x0.8", 0.7999: "below_x0.8", 0.8: "x0.8-2", 1.9999: "x0.8-2", 2.0: "x2-4", 3.9999: "x2-4",
             4.0: "x4-8", 7.9999: "x4-8", 8.0: "x4-8", 8.0001: "above_x8", 16.0: "above_x8"}
    table = pd.DataFrame({"name": [f"i{i}" for i in range(len(cases))]})
    assigned = assign_bins(table, dict(zip(table["name"], cases)))
    assert list(assigned["scale_bin"]) == list(cases.values())
    assert list(assigned["scale"]) == list(cases)
    assert BIN_NAMES == ("below_x0.8", "x0.8-2", "x2-4", "x4-8", "above_x8")


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_factor_that_is_not_a_positive_number_is_a_one_line_error(bad):
    table = pd.DataFrame({"name": ["a", "b"]})
    with pytest.raises(DataError, match=r"^m\.csv: scale = .* for image 'b'; allowed: a number > 0$"):
        assign_bins(table, {"a": 2.0, "b": bad}, source="m.csv")


def test_an_image_without_a_factor_is_an_error_naming_the_source():
    table = pd.DataFrame({"name": ["a", "b", "c"]})
    with pytest.raises(DataError, match=r"^data/m\.csv: no scale for image\(s\) b, c; allowed: a factor"):
        assign_bins(table, {"a": 2.0}, source="data/m.csv")


# --- per-bin summaries against a hand-made table -------------------------------------------------------------

# Ten images: scale, psnr, lpips, identity distance, in own ball at k = 1 and k = 2.
HAND = pd.DataFrame.from_records([
    ("a", 0.80, 30.0, 0.10, 0.20, 1, 1),
    ("b", 1.50, 28.0, 0.12, 0.30, 0, 1),
    ("c", 1.99, 26.0, 0.14, 0.40, 0, 0),
    ("d", 2.00, 24.0, 0.20, 0.50, 1, 1),
    ("e", 3.00, 22.0, 0.22, 0.35, 1, 1),
    ("f", 4.00, 20.0, 0.30, 0.60, 0, 0),
    ("g", 6.00, 18.0, 0.32, 0.70, 0, 1),
    ("h", 7.00, 19.0, 0.34, 0.65, 1, 1),
    ("i", 8.00, 16.0, 0.40, 0.80, 0, 0),
    ("j", 5.00, 21.0, 0.28, 0.55, 1, 1),
], columns=["name", "scale", "psnr", "lpips", "identity_distance", "iprecision_k1", "iprecision_k2"])
HAND_BINS = {"x0.8-2": ["a", "b", "c"], "x2-4": ["d", "e"], "x4-8": ["f", "g", "h", "i", "j"]}


SHUFFLED = HAND.drop(columns="scale").sample(frac=1.0, random_state=1)  # the table's order must not matter


def _hand_strata(options=OPTIONS):
    return stratify(SHUFFLED, dict(zip(HAND["name"], HAND["scale"])), options, source="manifest.csv")


def test_bin_means_and_in_ball_shares_equal_the_hand_computed_values():
    strata = _hand_strata()
    assert list(strata["bins"]) == ["x0.8-2", "x2-4", "x4-8"]  # no image outside [0.8, 8]: no outer bins
    assert (strata["by"], strata["source"], strata["edges"], strata["ci_level"]) == \
        ("scale", "manifest.csv", [0.8, 2.0, 4.0, 8.0], 0.95)
    # by hand from the table above
    expected = {
        "x0.8-2": {"n": 3, "psnr": 28.0, "lpips": 0.12, "identity_distance": 0.30, "k1": 1 / 3, "k2": 2 / 3},
        "x2-4": {"n": 2, "psnr": 23.0, "lpips": 0.21, "identity_distance": 0.425, "k1": 1.0, "k2": 1.0},
        "x4-8": {"n": 5, "psnr": 18.8, "lpips": 0.328, "identity_distance": 0.66, "k1": 0.4, "k2": 0.6},
    }
    for name, want in expected.items():
        got = strata["bins"][name]
        assert got["n"] == want["n"]
        assert set(got["metrics"]) == {"psnr", "lpips", "identity_distance", "iprecision"}  # no ssim column: none
        for metric in ("psnr", "lpips", "identity_distance"):
            assert got["metrics"][metric]["mean"] == pytest.approx(want[metric], abs=1e-12)
            values = HAND.set_index("name").loc[HAND_BINS[name], metric].to_numpy()
            assert got["metrics"][metric]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert got["metrics"]["iprecision"]["1"]["mean"] == pytest.approx(want["k1"], abs=1e-12)
        assert got["metrics"]["iprecision"]["2"]["mean"] == pytest.approx(want["k2"], abs=1e-12)
    assert strata["bins"]["x0.8-2"]["interval"] == "[0.8, 2)" and strata["bins"]["x4-8"]["interval"] == "[4, 8]"
    json.dumps(strata, allow_nan=False)  # strict JSON


def test_bin_intervals_are_the_pooled_bootstrap_on_the_bins_images_with_a_stream_per_bin_and_metric():
    strata = _hand_strata()
    values = SHUFFLED["psnr"][SHUFFLED["name"].isin(HAND_BINS["x4-8"])].to_numpy()  # in the table's order
    rng = np.random.default_rng(np.random.SeedSequence(OPTIONS.seed, spawn_key=(zlib.crc32(b"psnr@x4-8"),)))
    reference = scipy.stats.bootstrap((values,), np.mean, n_resamples=OPTIONS.n_bootstrap, confidence_level=0.95,
                                      method="percentile", rng=rng).confidence_interval
    assert strata["bins"]["x4-8"]["metrics"]["psnr"]["ci95"] == pytest.approx([reference.low, reference.high], abs=1e-12)
    no_ci = _hand_strata(dataclasses.replace(OPTIONS, ci_level=None))
    assert "ci95" not in no_ci["bins"]["x4-8"]["metrics"]["psnr"] and no_ci["ci_level"] is None


def test_an_empty_bin_is_listed_with_n_0_and_outside_bins_only_when_populated():
    per_image = pd.DataFrame({"name": ["a", "b", "c"], "psnr": [20.0, 21.0, 25.0]})
    strata = stratify(per_image, {"a": 3.0, "b": 0.5, "c": 12.0}, OPTIONS)
    assert list(strata["bins"]) == ["below_x0.8", "x0.8-2", "x2-4", "x4-8", "above_x8"]
    assert strata["bins"]["x0.8-2"] == {"interval": "[0.8, 2)", "low": 0.8, "high": 2.0, "n": 0, "metrics": {}}
    assert strata["bins"]["above_x8"]["high"] is None and strata["bins"]["above_x8"]["n"] == 1
    one = strata["bins"]["below_x0.8"]["metrics"]["psnr"]
    assert one == {"mean": 21.0, "ci95": [21.0, 21.0]}  # one image: no std (not NaN in the JSON)
    json.dumps(strata, allow_nan=False)


# --- identity distance and iPrecision by bin against brute force --------------------------------------------

def test_identity_distance_is_the_euclidean_distance_of_each_pair():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 128)).astype(np.float32), rng.normal(size=(30, 128))
    np.testing.assert_allclose(paired_distances(a, b), np.linalg.norm(a.astype(np.float64) - b, axis=1), rtol=1e-13)
    assert paired_distances(a, a).tolist() == [0.0] * 30
    with pytest.raises(DataError, match="same shape"):
        paired_distances(a, b[:29])


def test_bins_iprecision_is_the_share_inside_the_own_ball_of_the_full_set_and_weights_back_to_the_pooled():
    rng = np.random.default_rng(4)
    n, ks = 60, (1, 2, 3)
    real = rng.normal(size=(n, 16))
    fake = real + rng.normal(scale=0.6, size=(n, 16))
    pooled = precision_recall(real, fake, ks, paired=True)
    per_image = pd.DataFrame({"name": [f"im{i:02d}" for i in range(n)],
                              "identity_distance": paired_distances(fake, real)})
    for j, k in enumerate(ks):
        per_image[f"iprecision_k{k}"] = pooled.fake_in_own_real_ball[:, j].astype(np.int8)
    scales = dict(zip(per_image["name"], rng.uniform(0.8, 8.0, n)))
    strata = stratify(per_image, scales, OPTIONS)

    # brute force: the k-th nearest other real of each real (radii over ALL n), then membership per bin
    d_real = np.linalg.norm(real[:, None] - real[None], axis=2)
    np.fill_diagonal(d_real, np.inf)
    radii = np.sort(d_real, axis=1)
    own = np.linalg.norm(fake - real, axis=1)
    scale = np.array([scales[name] for name in per_image["name"]])
    masks = {"x0.8-2": scale < 2, "x2-4": (scale >= 2) & (scale < 4), "x4-8": scale >= 4}
    assert sum(m.sum() for m in masks.values()) == n
    for name, mask in masks.items():
        got = strata["bins"][name]
        assert got["n"] == mask.sum()
        assert got["metrics"]["identity_distance"]["mean"] == pytest.approx(own[mask].mean(), rel=1e-12)
        for k in ks:
            assert got["metrics"]["iprecision"][str(k)]["mean"] == pytest.approx(
                (own[mask] <= radii[mask, k - 1]).mean(), abs=1e-12)
    for k in ks:
        weighted = sum(b["n"] * b["metrics"]["iprecision"][str(k)]["mean"] for b in strata["bins"].values()) / n
        assert weighted == pytest.approx(pooled.iprecision[k], abs=1e-12)


# --- the manifest --------------------------------------------------------------------------------------------

MANIFEST_HEAD = "image_id,split,identity,gt_file,input_file,lr_file,task,seed,scale,noise_sigma,jpeg_quality\n"


def test_scales_from_manifest_keys_the_split_rows_by_ground_truth_name(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text(MANIFEST_HEAD
                    + "a,test,1,images/test/a.png,test/a.png,,bfr,1,0.8,3.0,70\n"
                    + "b,test,2,images/test/b.png,test/b.png,,bfr,2,7.123456789012345,3.0,70\n"
                    + "c,train,2,images/train/c.png,train/c.png,,bfr,3,2.0,3.0,70\n")
    assert scales_from_manifest(path) == {"a": 0.8, "b": 7.123456789012345}
    assert scales_from_manifest(path, split="train") == {"c": 2.0}


@pytest.mark.parametrize("body, message", [
    ("image_id,split,gt_file\na,test,a.png\n", r"no column\(s\) scale; allowed: a bfr degradation manifest"),
    (MANIFEST_HEAD + "a,test,1,images/test/a.png,test/a.png,,bfr,1,big,3.0,70\n",
     r"scale = 'big' for images/test/a.png; allowed: a number > 0"),
    (MANIFEST_HEAD + "a,test,1,images/test/a.png,test/a.png,,bfr,1,2.0,3.0,70\n"
     + "a,test,1,images/test/a.png,test/a.png,,bfr,1,3.0,3.0,70\n", r"two test rows for image 'a'"),
])
def test_bad_manifests_are_one_line_errors_naming_the_file(tmp_path, body, message):
    path = tmp_path / "manifest.csv"
    path.write_text(body)
    with pytest.raises(DataError, match=rf"^{path}: {message}"):
        scales_from_manifest(path)
    with pytest.raises(DataError, match="no degradation manifest; run the degrade stage"):
        scales_from_manifest(tmp_path / "absent.csv")


# --- reading the block back, the report table, summary.json ----------------------------------------------------

def _doc(method: str, strata: dict | None) -> dict:
    doc = {"method": method, "task": "bfr", "n_images": 10, "metrics": {"psnr": {"mean": 22.0}}}
    return doc if strata is None else {**doc, "strata": strata}


def _write_runs(root: Path, docs: list[dict]):
    for doc in docs:
        (root / doc["method"]).mkdir(parents=True)
        (root / doc["method"] / "bfr.json").write_text(json.dumps(doc, allow_nan=False))
    return load_metrics_dir(root, "bfr")


def test_strata_read_back_and_the_one_line_errors_of_a_bad_block(tmp_path):
    strata = json.loads(json.dumps(_hand_strata()))
    parsed = parse_strata("m.json", strata)
    assert [b.name for b in parsed.bins] == ["x0.8-2", "x2-4", "x4-8"] and parsed.ci_level == 0.95
    assert parsed.bins[2].n == 5 and parsed.bins[2].metrics["psnr"].mean == pytest.approx(18.8)
    assert parsed.bins[0].iprecision[2].mean == pytest.approx(2 / 3)
    bad = json.loads(json.dumps(strata))
    bad["bins"]["x2-4"]["metrics"]["psnr"]["mean"] = "high"
    with pytest.raises(DataError, match=r"^m\.json: strata\.bins\.x2-4\.metrics\.psnr\.mean = 'high'; allowed"):
        parse_strata("m.json", bad)
    bad = json.loads(json.dumps(strata))
    bad["bins"]["x1-2"] = bad["bins"].pop("x2-4")
    with pytest.raises(DataError, match=r"^m\.json: unknown bin\(s\) 'x1-2' in strata\.bins; allowed: below_x0\.8, x0\.8-2"):
        parse_strata("m.json", bad)
    bad = json.loads(json.dumps(strata))
    bad["bins"]["x2-4"]["n"] = -1
    with pytest.raises(DataError, match=r"strata\.bins\.x2-4\.n = -1; allowed: an integer >= 0"):
        parse_strata("m.json", bad)


def test_the_report_table_and_summary_show_every_method_by_bin_deg_included(tmp_path):
    strata = _hand_strata()
    runs = _write_runs(tmp_path / "metrics", [_doc("deg", strata), _doc("main", strata), _doc("skips0", strata),
                                               _doc("gpen", None)])
    table = strata_table(runs, {"DEG": "deg", "GPEN": "gpen", "Ours": "main"}, ipr_k=1)
    labels = [row[0] for row in table.rows]
    assert labels == [f"{method}: {name} (n = {n})" for method in ("DEG", "Ours", "skips0")
                      for name, n in (("x0.8-2", 3), ("x2-4", 2), ("x4-8", 5))]  # gpen: no strata, no rows
    row = dict(zip(table.flat_header, table.rows[5]))  # Ours, x4-8
    ci = strata["bins"]["x4-8"]["metrics"]["psnr"]["ci95"]
    assert row["PSNR ↑"] == f"18.80 [{ci[0]:.2f}, {ci[1]:.2f}]"
    assert row["SSIM ↑"] == "n/a" and row["ID distance ↓"].startswith("0.660 [")
    assert row["iPrecision ↑"].startswith("0.400 [")
    data = table.data
    assert list(data.columns[:6]) == ["Method: bin", "method", "status", "bin", "interval", "n"]
    assert list(data["n"]) == [3, 2, 5] * 3 and list(data["method"]) == ["deg"] * 3 + ["main"] * 3 + ["skips0"] * 3
    assert data.loc[5, "psnr"] == pytest.approx(18.8) and data.loc[5, "iprecision"] == pytest.approx(0.4)
    assert data.loc[5, "psnr_ci_low"] == pytest.approx(ci[0])
    assert any("n-weighted mean is the pooled iPrecision" in note for note in table.notes)
    paths = table.write(tmp_path / "tables")
    assert "DEG: x0.8-2 (n = 3)" in paths["md"].read_text() and paths["csv"].is_file()

    summary = strata_summary(runs, ipr_k=2)
    assert set(summary) == {"deg", "main", "skips0"}
    assert summary["deg"]["x0.8-2"] == {"n": 3, "psnr": pytest.approx(28.0), "lpips": pytest.approx(0.12),
                                        "identity_distance": pytest.approx(0.30), "iprecision_k2": pytest.approx(2 / 3)}
    empty = strata_table({}, {"DEG": "deg"})
    assert empty.rows == () and "No method has per-bin metrics" in empty.notes[0]


# --- the evaluate stage --------------------------------------------------------------------------------------

def _face(rng: np.random.Generator) -> np.ndarray:
    """A smooth random 32x32 RGB image (upsampled noise), so the fake identity features differ between images."""
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((32, 32), Image.Resampling.BICUBIC))


def test_the_evaluate_stage_writes_strata_for_deg_and_an_arm_from_the_bfr_manifest(tmp_path):
    from faceres.pipeline.evaluate import evaluate_method

    rng = np.random.default_rng(2)
    names = [f"{i:04d}" for i in range(12)]
    scales = [0.9, 1.2, 1.9, 2.0, 2.5, 3.5, 3.9, 4.0, 5.0, 6.5, 7.7, 8.0]
    prepared, degraded, restored, out = (tmp_path / d for d in ("prepared", "degraded", "restored", "metrics"))
    for folder in (prepared / "images" / "test", degraded / "bfr" / "test",
                   *(restored / "main" / "bfr" / f"seed{k}" for k in (0, 1))):
        folder.mkdir(parents=True)
    rows = []
    for name, scale in zip(names, scales):
        gt = _face(rng)
        Image.fromarray(gt).save(prepared / "images" / "test" / f"{name}.png")
        noisy = lambda s: np.clip(gt + rng.normal(0, s, gt.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy(4 * scale)).save(degraded / "bfr" / "test" / f"{name}.png")
        for k in (0, 1):
            Image.fromarray(noisy(6)).save(restored / "main" / "bfr" / f"seed{k}" / f"{name}.png")
        rows.append({"image_id": name, "split": "test", "identity": name, "gt_file": f"images/test/{name}.png",
                     "input_file": f"test/{name}.png", "lr_file": "", "task": "bfr", "scale": scale})
    pd.DataFrame(rows).to_csv(degraded / "bfr" / "manifest.csv", index=False)
    (restored / "main" / "status.json").write_text(json.dumps({"status": "ok"}))
    config = small_config()
    config = dataclasses.replace(config, evaluate=dataclasses.replace(
        config.evaluate, metrics=("psnr", "ssim", "ipr"), ks=(1, 2), bootstrap=50))
    networks = Networks(fid_inception=None, lpips_backbone=None, identity_embedder=FakeEmbedder)

    for method in ("deg", "main"):
        documents = evaluate_method(config, method, ["bfr"], prepared, degraded, restored, out / method,
                                    networks=networks)
        document = json.loads((out / method / "bfr.json").read_text())
        assert document == documents["bfr"]
        per_image = pd.read_csv(out / method / "per_image" / "bfr.csv", dtype={"name": str})
        assert list(per_image["name"]) == names and list(per_image["scale"]) == scales
        assert list(per_image["scale_bin"]) == ["x0.8-2"] * 3 + ["x2-4"] * 4 + ["x4-8"] * 5
        # the document's pooled identity distance and its strata are the per-image CSV's, summarized
        assert document["metrics"]["identity_distance"]["mean"] == pytest.approx(per_image["identity_distance"].mean())
        options = EvalOptions(seed=config.seed, n_bootstrap=50, progress=False)
        assert document["strata"] == json.loads(json.dumps(stratify(
            per_image, dict(zip(names, scales)), options, source=degraded / "bfr" / "manifest.csv")))
        bins = document["strata"]["bins"]
        assert [bins[b]["n"] for b in bins] == [3, 4, 5]
        weighted = sum(b["n"] * b["metrics"]["iprecision"]["1"]["mean"] for b in bins.values()) / 12
        assert weighted == pytest.approx(document["metrics"]["iprecision"]["identity"]["1"], abs=1e-12)
        assert set(bins["x2-4"]["metrics"]) == {"psnr", "ssim", "identity_distance", "iprecision"}
    assert document["noise_seeds"] == 2


def test_the_report_stage_writes_the_strata_table_and_summary_json_carries_the_strata_per_method(tmp_path):
    from faceres.pipeline import report

    strata = _hand_strata()
    docs = [_doc("deg", strata), _doc("main", strata), _doc("skips0", None)]
    _write_runs(tmp_path / "metrics", docs)
    out = tmp_path / "reports"
    paths = report.run(small_config(), tmp_path / "metrics", tmp_path / "prepared", tmp_path / "degraded",
                       tmp_path / "restored", out, tmp_path / "weights.json", track=False, models_root=tmp_path / "models")
    summary = json.loads(paths["summary"].read_text())
    assert set(summary) == {"deg", "main", "skips0"} and "strata" not in summary["skips0"]["bfr"]
    for method in ("deg", "main"):
        assert summary[method]["bfr"]["psnr"] == 22.0  # the pooled numbers stay beside the strata
        assert summary[method]["bfr"]["strata"]["x4-8"] == {
            "n": 5, "psnr": pytest.approx(18.8), "lpips": pytest.approx(0.328),
            "identity_distance": pytest.approx(0.66), "iprecision_k1": pytest.approx(0.4)}
    assert (out / "tables" / "strata.csv").is_file()
    assert "**Metrics by degradation strength" in paths["md"].read_text()
    assert "DEG: x0.8-2 (n = 3)" in paths["md"].read_text()
    assert report._flat(summary["deg"]["bfr"])["strata/x2-4/psnr"] == pytest.approx(23.0)  # MLflow's names
