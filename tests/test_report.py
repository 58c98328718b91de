"""Report tables, figures and documents from fixture metrics files, checked against hand-computed values."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceres.core.errors import ConfigError, DataError
from faceres.report.document import ReportFigure, RunInfo, comparability_statement, write_report
from faceres.report.tables import alpha_table, table6, table7, table8
from faceres.report.figures import (
    alpha_tradeoff,
    figure8,
    figure8_data,
    figure9,
    figure10,
    save_figure,
    sr_figure,
    write_figure8_data,
)
from faceres.report.build import ReportInputs, build_report
from faceres.metrics.metrics_file import load_metrics, load_metrics_dir
from faceres.report.paper_numbers import load_paper_numbers
from faceres.pipeline.design import COMPARISON, FIGURE8
from faceres.report.human_study import preference_from_counts
from faceres.report.tables import latex_escape

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "paper.md"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics_doc(method, *, task="bfr", psnr=None, seed_std=None, ci=None, ssim=None, lpips=None, fid=None,
                ipr_identity=None, inception=None, n_images=40, profile="cpu", data_source="synthetic"):
    """A metrics document in the evaluate stage's format with only the given metrics."""
    metrics = {}
    if psnr is not None:
        metrics["psnr"] = {"mean": psnr, "std": 2.0, **({"ci95": list(ci)} if ci else {}),
                           **({"seed_std": seed_std} if seed_std is not None else {})}
    if ssim is not None:
        metrics["ssim"] = {"mean": ssim, "std": 0.05}
    if lpips is not None:
        metrics["lpips"] = {"mean": lpips, "std": 0.04}
    if fid is not None:
        metrics["fid"] = {"value": fid}
    if ipr_identity is not None:
        metrics["iprecision"] = {"identity": {str(k + 1): v for k, v in enumerate(ipr_identity)}}
    if inception is not None:  # {"iprecision": [k=1..4], "irecall": [...]}
        for name, values in inception.items():
            metrics.setdefault(name, {})["inception"] = {str(k + 1): v for k, v in enumerate(values)}
    return {"method": method, "task": task, "n_images": n_images, "profile": profile, "data_source": data_source,
            "identity_backbone": "dlib-resnet-128", "noise_seeds": 3, "metrics": metrics}


def write_doc(root: Path, doc: dict) -> Path:
    path = root / doc["method"] / f"{doc['task']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


FIXTURE_DOCS = [
    # skips arms: skips1 has no FID, skips3 is not a paper row, skips6 is not run.
    metrics_doc("skips0", psnr=20.00, seed_std=0.50, ci=(19.6, 20.4), ssim=0.5500, lpips=0.3500, fid=30.00, ipr_identity=[0.300, 0.40]),
    metrics_doc("skips1", psnr=22.00, seed_std=0.20, ci=(21.7, 22.3), ssim=0.6000, lpips=0.3200, ipr_identity=[0.800, 0.85]),
    metrics_doc("skips2", psnr=23.00, seed_std=0.10, ci=(22.8, 23.2), ssim=0.6500, lpips=0.2800, fid=26.00, ipr_identity=[0.900, 0.95]),
    metrics_doc("skips3", psnr=23.50, seed_std=0.08, ci=(23.3, 23.7), ssim=0.6700, lpips=0.2700, fid=25.50, ipr_identity=[0.920, 0.96]),
    metrics_doc("skips4", psnr=24.10, seed_std=0.04, ci=(23.7, 24.5), ssim=0.7100, lpips=0.2500, fid=25.00, ipr_identity=[0.950, 0.97],
                inception={"iprecision": [0.50, 0.60, 0.65, 0.70], "irecall": [0.45, 0.55, 0.62, 0.68]}),
    metrics_doc("aug0", psnr=23.80, ssim=0.7000, lpips=0.2600, fid=26.50),
    metrics_doc("deg", psnr=19.50, lpips=0.5000, ipr_identity=[0.100],
                inception={"iprecision": [0.10, 0.15, 0.20, 0.25], "irecall": [0.12, 0.18, 0.22, 0.30]}),
    metrics_doc("gpen", psnr=22.50, lpips=0.3000, ipr_identity=[0.700],
                inception={"iprecision": [0.40, 0.50, 0.55, 0.60], "irecall": [0.35, 0.45, 0.50, 0.55]}),
    metrics_doc("dfdnet", psnr=21.00, lpips=0.4000, ipr_identity=[0.400]),  # no inception features
    metrics_doc("alpha0.1", psnr=25.00, ssim=0.74, lpips=0.30, fid=40.0),
    metrics_doc("alpha1", psnr=24.10, ssim=0.71, lpips=0.25, fid=25.0),
    metrics_doc("alpha10", psnr=22.00, ssim=0.66, lpips=0.24, fid=20.0),
]
SKIPS_ARMS = {0: "skips0", 1: "skips1", 2: "skips2", 3: "skips3", 4: "skips4", 6: "skips6"}
AUG_ARMS = {"N": "aug0", "Y": "skips4"}
ALPHA_ARMS = {0.1: "alpha0.1", 1.0: "alpha1", 10.0: "alpha10"}


@pytest.fixture
def metrics_root(tmp_path) -> Path:
    root = tmp_path / "metrics"
    for doc in FIXTURE_DOCS:
        write_doc(root, doc)
    return root


@pytest.fixture
def runs(metrics_root):
    return load_metrics_dir(metrics_root, "bfr")


def row_of(table, label):
    return dict(zip(table.flat_header, next(r for r in table.rows if r[0] == label)))


# --- inputs -------------------------------------------------------------------------------------------------

def test_load_metrics_reads_the_documented_format(tmp_path):
    path = write_doc(tmp_path, metrics_doc("skips4", psnr=24.1, seed_std=0.04, ci=(23.7, 24.5), fid=35.2,
                                           inception={"iprecision": [0.5, 0.6, 0.65, 0.7]}))
    run = load_metrics(path)
    assert (run.method, run.task, run.n_images, run.profile, run.noise_seeds) == ("skips4", "bfr", 40, "cpu", 3)
    assert run.per_image["psnr"].mean == 24.1 and run.per_image["psnr"].seed_std == 0.04
    assert run.per_image["psnr"].ci95 == (23.7, 24.5)
    assert run.fid == 35.2
    assert run.manifold_value("iprecision", "inception", 3) == 0.65
    assert run.manifold_value("iprecision", "identity", 1) is None
    assert "ssim" not in run.per_image


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["metrics"].update(pnsr={"mean": 1.0}), "unknown key(s) 'pnsr' in metrics"),
        (lambda d: d["metrics"]["psnr"].pop("mean"), "metrics.psnr has no 'mean'"),
        (lambda d: d["metrics"]["psnr"].update(mean="24"), "metrics.psnr.mean = '24'"),
        (lambda d: d["metrics"]["psnr"].update(ci95=[25.0, 24.0]), "low must not exceed high"),
        (lambda d: d["metrics"]["iprecision"]["inception"].update({"0": 0.5}), "has key '0'"),
        (lambda d: d["metrics"]["iprecision"]["inception"].update({"2": 1.5}), "allowed: a number in [0.0, 1.0]"),
        (lambda d: d["metrics"]["iprecision"].update(facenet={"1": 0.5}), "unknown key(s) 'facenet'"),
        (lambda d: d.pop("task"), "'task' must be a non-empty string"),
        (lambda d: d.update(n_images=0), "'n_images' = 0"),
        (lambda d: d["metrics"].update(fid={"value": float("nan")}), "metrics.fid.value"),
    ],
)
def test_bad_metrics_files_give_one_line_errors_naming_file_and_key(tmp_path, mutate, expected):
    doc = metrics_doc("m", psnr=24.0, ci=(23.0, 25.0), fid=30.0, inception={"iprecision": [0.5]})
    mutate(doc)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError) as info:
        load_metrics(path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_unreadable_metrics_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_metrics(tmp_path / "bad.json")
    with pytest.raises(DataError, match="metrics file not found"):
        load_metrics(tmp_path / "absent.json")


def test_metrics_dir_checks_method_and_task_against_the_path(tmp_path):
    doc = metrics_doc("skips4")
    path = tmp_path / "skips2" / "bfr.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="does not match its folder 'skips2'"):
        load_metrics_dir(tmp_path, "bfr")
    assert load_metrics_dir(tmp_path / "absent", "bfr") == {}


def test_summary_metrics_has_the_five_headline_numbers_of_every_evaluated_method_and_task(metrics_root):
    from faceres.metrics.metrics_file import summary_metrics

    write_doc(metrics_root, metrics_doc("skips4", task="sr8", psnr=21.0, ssim=0.6, lpips=0.3, fid=50.0,
                                        ipr_identity=[0.5, 0.6]))
    (metrics_root / "gfpgan").mkdir()  # an external method not provided: a placeholder, not a row
    (metrics_root / "gfpgan" / "bfr.json").write_text(json.dumps(
        {"method": "gfpgan", "task": "bfr", "status": "not_provided", "reason": "no folder"}))
    summary = summary_metrics(metrics_root, ipr_k=1)
    assert "gfpgan" not in summary
    assert set(summary) == {doc["method"] for doc in FIXTURE_DOCS}
    # Copied by hand from FIXTURE_DOCS: the means, FID's value, iPrecision@1 on identity features only.
    assert summary["skips4"] == {
        "bfr": {"psnr": 24.10, "ssim": 0.7100, "lpips": 0.2500, "fid": 25.00, "iprecision_k1": 0.950},
        "sr8": {"psnr": 21.0, "ssim": 0.6, "lpips": 0.3, "fid": 50.0, "iprecision_k1": 0.5},
    }
    assert summary["deg"] == {"bfr": {"psnr": 19.50, "lpips": 0.5000, "iprecision_k1": 0.100}}  # what it has
    assert summary_metrics(metrics_root, ipr_k=2)["skips0"]["bfr"]["iprecision_k2"] == 0.40
    assert summary_metrics(metrics_root / "absent") == {}


def _spec_tables(text: str) -> dict[str, list[list[str]]]:
    """The markdown tables under 'Table 6/7/8' headings of paper.md: {name: rows of cells}."""
    tables, current = {}, None
    for line in text.splitlines():
        heading = re.match(r"Table (\d) - ", line)
        if heading:
            current = f"table{heading.group(1)}"
            tables[current] = []
        elif current and line.startswith("|") and not set(line) <= set("|- "):
            tables[current].append([c.strip() for c in line.strip("|").split("|")])
    return {name: rows[1:] for name, rows in tables.items()}  # drop header lines


@pytest.mark.skipif(not SPEC.is_file(), reason=f"{SPEC} not present (the shared spec sits beside the repo)")
def test_paper_numbers_yaml_matches_the_spec_tables():
    spec = _spec_tables(SPEC.read_text())
    paper = load_paper_numbers()
    order = {"table6": ["psnr", "lpips", "ssim", "fid", "iprecision"], "table7": ["psnr", "ssim", "lpips", "fid"],
             "table8": ["psnr", "lpips", "iprecision", "preference"]}
    for name, metrics in order.items():
        rows = paper[name]["rows"]
        assert [str(k) for k in rows] == [r[0] for r in spec[name]]
        for cells in spec[name]:
            row = rows[int(cells[0])] if name == "table6" else rows[cells[0]]
            for metric, cell in zip(metrics, cells[1:]):
                mean, _, std = cell.partition("+-")
                assert row[metric] == float(mean)
                if std:
                    assert row[f"{metric}_std"] == float(std)


# --- tables -------------------------------------------------------------------------------------------------

def test_table6_rows_values_and_hand_computed_deltas(runs):
    t = table6(runs, SKIPS_ARMS)
    assert [r[0] for r in t.rows] == ["0", "1", "2", "3", "4", "6"]
    four = row_of(t, "4")
    assert four["Run"] == "skips4"
    assert four["PSNR ↑ ours"] == "24.10 ± 0.04" and four["PSNR ↑ paper"] == "27.43 ± 0.03"
    assert four["PSNR ↑ Δ"] == "-3.33"                       # 24.10 - 27.43
    assert four["LPIPS ↓ Δ"] == "+0.0151"                    # 0.2500 - 0.2349
    assert four["SSIM ↑ Δ"] == "-0.0216"                     # 0.7100 - 0.7316
    assert four["FID ↓ Δ"] == "+5.81"                        # 25.00 - 19.19
    assert four["iPrecision ↑ ours"] == "0.950" and four["iPrecision ↑ Δ"] == "-0.032"  # identity k=1
    one = row_of(t, "1")
    assert one["FID ↓ ours"] == "n/a" and one["FID ↓ Δ"] == "—" and one["FID ↓ paper"] == "20.49"
    three = row_of(t, "3")
    assert three["PSNR ↑ ours"] == "23.50 ± 0.08" and three["PSNR ↑ paper"] == "not in paper" and three["PSNR ↑ Δ"] == "—"
    six = row_of(t, "6")
    assert six["PSNR ↑ ours"] == "not run" and six["PSNR ↑ paper"] == "27.07 ± 0.04" and six["Run"] == "skips6"
    data = t.data.set_index("n")
    assert data.loc["0", "psnr_delta"] == pytest.approx(20.00 - 21.16)
    assert data.loc["0", "psnr_seed_std"] == 0.50 and data.loc["0", "psnr_paper_std"] == 0.45
    assert data.loc["6", "status"] == "not run" and math.isnan(data.loc["6", "psnr"])
    assert math.isnan(data.loc["3", "psnr_paper"])
    assert any("seed" in n for n in t.notes) and any("k = 1" in n for n in t.notes)


def test_table6_bootstrap_spread_and_other_k(runs):
    t = table6(runs, {4: "skips4"}, psnr_spread="ci95", ipr_k=2)
    four = row_of(t, "4")
    assert four["PSNR ↑ ours"] == "24.10 ± 0.40"  # (24.5 - 23.7) / 2
    assert four["iPrecision ↑ ours"] == "0.970"
    assert any("bootstrap" in n for n in t.notes) and any("k = 2" in n for n in t.notes)
    assert row_of(t, "0")["Run"] == "—" and row_of(t, "0")["PSNR ↑ ours"] == "not run"
    with pytest.raises(ConfigError, match="psnr_spread"):
        table6(runs, {4: "skips4"}, psnr_spread="std")
    with pytest.raises(ConfigError, match="ipr_k"):
        table6(runs, {4: "skips4"}, ipr_k=0)


def test_table6_refuses_a_run_of_another_task(tmp_path):
    path = write_doc(tmp_path, metrics_doc("skips4", task="sr8", psnr=24.0))
    with pytest.raises(ConfigError, match="task 'sr8'"):
        table6({"skips4": load_metrics(path)}, {4: "skips4"})


def test_table7(runs):
    t = table7(runs, AUG_ARMS)
    assert [r[0] for r in t.rows] == ["N", "Y"]
    n, y = row_of(t, "N"), row_of(t, "Y")
    assert n["PSNR ↑ ours"] == "23.80" and n["PSNR ↑ Δ"] == "-2.68"   # 23.80 - 26.48
    assert y["FID ↓ Δ"] == "+5.23"                                      # 25.00 - 19.77
    assert y["SSIM ↑ Δ"] == "-0.0034"                                   # 0.7100 - 0.7134
    missing = table7(runs, {"N": "aug0", "Y": "aug1"})
    assert row_of(missing, "Y")["PSNR ↑ ours"] == "not run"
    with pytest.raises(ConfigError, match="allowed: 'N'"):
        table7(runs, {"yes": "aug1"})


def test_table8_missing_external_method_and_votes(runs):
    t = table8(runs, COMPARISON)
    assert [r[0] for r in t.rows] == ["DEG", "DFDNet", "GFPGAN", "GPEN", "Ours"]
    gfpgan = row_of(t, "GFPGAN")
    assert gfpgan["PSNR ↑ ours"] == "not provided" and gfpgan["PSNR ↑ paper"] == "24.19" and gfpgan["PSNR ↑ Δ"] == "—"
    assert row_of(t, "Ours")["PSNR ↑ ours"] == "not run"  # no "main" metrics file in the fixture
    assert row_of(t, "GPEN")["PSNR ↑ Δ"] == "-1.41"          # 22.50 - 23.91
    assert row_of(t, "GPEN")["iPrecision ↑ Δ"] == "-0.073"   # 0.700 - 0.773
    assert row_of(t, "DEG")["PSNR ↑ paper"] == "not in paper"
    assert all(row_of(t, m)["Preference (%) ↑ ours"] == "no votes" for m in ("DFDNet", "GPEN", "Ours"))

    mapping = {"DEG": "deg", "DFDNet": "dfdnet", "GFPGAN": "gfpgan", "GPEN": "gpen", "Ours": "skips4"}
    votes = preference_from_counts({"dfdnet": 1, "gfpgan": 0, "gpen": 3, "skips4": 16})
    t = table8(runs, mapping, preference=votes)
    ours = row_of(t, "Ours")
    assert ours["Preference (%) ↑ ours"].startswith("80.0 [")   # 16 / 20
    assert ours["Preference (%) ↑ Δ"] == "+3.6"                 # 80.0 - 76.4
    assert row_of(t, "GFPGAN")["Preference (%) ↑ ours"].startswith("0.0 [")
    assert row_of(t, "DEG")["Preference (%) ↑ ours"] == "not in study"
    data = t.data.set_index("Method")
    assert data.loc["GPEN", "preference"] == 15.0 and data.loc["GPEN", "preference_votes"] == 3
    assert data.loc["GPEN", "preference_total"] == 20


def test_alpha_table_states_whether_the_claimed_trend_shows(runs):
    t = alpha_table(runs, ALPHA_ARMS)
    assert [r[0] for r in t.rows[:3]] == ["0.1", "1", "10"]
    trend = dict(zip(t.flat_header, t.rows[-1]))
    # PSNR 25.0 > 24.1 > 22.0 and FID 40 > 25 > 20 as alpha grows: rho = -1, the paper's claim holds for both.
    assert trend["PSNR ↑"] == "ρ = -1.00 (n = 3): claim shown"
    assert trend["FID ↓"] == "ρ = -1.00 (n = 3): claim shown"
    assert trend["LPIPS ↓"] == "ρ = -1.00 (n = 3)"  # no claim in the paper
    assert any("PSNR falls as α grows" in n and "claim shown" in n for n in t.notes)


def test_alpha_trend_hand_computed_rho(tmp_path):
    # alpha ranks 1,2,3; PSNR 25, 26, 24 has ranks 2,3,1: d = -1,-1,2, rho = 1 - 6*6/(3*(9-1)) = -0.5.
    # FID 20, 30, 40 rises with alpha: the claim (FID improves, i.e. falls) is not shown.
    docs = [metrics_doc(f"a{a}", psnr=p, fid=f) for a, p, f in ((0.1, 25.0, 20.0), (1, 26.0, 30.0), (10, 24.0, 40.0))]
    runs = {d["method"]: load_metrics(write_doc(tmp_path, d)) for d in docs}
    t = alpha_table(runs, {0.1: "a0.1", 1.0: "a1", 10.0: "a10", 100.0: "a100"})
    trend = dict(zip(t.flat_header, t.rows[-1]))
    assert trend["PSNR ↑"] == "ρ = -0.50 (n = 3): claim shown"
    assert trend["FID ↓"] == "ρ = +1.00 (n = 3): claim NOT shown"
    assert trend["SSIM ↑"] == "cannot tell (n = 0)"
    assert row_of(t, "100")["PSNR ↑"] == "not run"


def test_table_files_csv_markdown_latex(runs, tmp_path):
    t = table6(runs, SKIPS_ARMS)
    paths = t.write(tmp_path / "tables")
    back = pd.read_csv(paths["csv"])
    assert list(back["n"]) == [0, 1, 2, 3, 4, 6]
    assert back.loc[back["n"] == 2, "fid_delta"].item() == pytest.approx(26.00 - 19.17)
    md = paths["md"].read_text().splitlines()
    table_lines = [l for l in md if l.startswith("|")]
    assert len(table_lines) == 2 + 6 and len({l.count(" | ") for l in table_lines if "---" not in l}) == 1
    tex = paths["tex"].read_text()
    assert r"\begin{tabular}{llrrrrrrrrrrrrrrr}" in tex and r"\multicolumn{3}{c}{PSNR $\uparrow$}" in tex
    assert r"24.10 $\pm$ 0.04" in tex and tex.count(r"\\") >= 8
    assert latex_escape("skips_4 & 50% #1") == r"skips\_4 \& 50\% \#1"


# --- figures ------------------------------------------------------------------------------------------------

def assert_png_pdf(paths):
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"


def test_figure8_lines_and_files(runs, tmp_path):
    fig = figure8(figure8_data(runs, FIGURE8))
    left, right = fig.axes
    # The fixture has inception data for deg, gpen and skips4 but no "main": Ours appears once mapped to skips4.
    assert [l.get_label() for l in left.lines] == ["DEG*", "GPEN"]
    fig = figure8(figure8_data(runs, {"DEG*": "deg", "GPEN": "gpen", "GFPGAN*": "gfpgan", "DFDNet": "dfdnet", "Ours": "skips4"}))
    left, right = fig.axes
    assert [l.get_label() for l in left.lines] == ["DEG*", "GPEN", "Ours"] == [l.get_label() for l in right.lines]
    assert left.get_xlabel() == right.get_xlabel() == "Neighborhood Sizes"
    assert (left.get_ylabel(), right.get_ylabel()) == ("iPrecision", "iRecall")
    ours_left, ours_right = left.lines[2], right.lines[2]
    assert list(ours_left.get_xdata()) == [1, 2, 3, 4]
    assert list(ours_left.get_ydata()) == [0.50, 0.60, 0.65, 0.70]
    assert list(ours_right.get_ydata()) == [0.45, 0.55, 0.62, 0.68]
    assert len({l.get_marker() for l in left.lines}) == 3
    assert left.get_legend() is not None
    assert_png_pdf(save_figure(fig, tmp_path / "figure8"))
    with pytest.raises(DataError, match=r"no metrics file has inception .*methods with a file: DFDNet\)"):
        figure8(figure8_data(runs, {"GFPGAN*": "gfpgan", "DFDNet": "dfdnet"}))
    with pytest.raises(DataError, match=r"methods with a file: none\)"):
        figure8(figure8_data(runs, {"GFPGAN*": "gfpgan"}))


def test_figure8_plot_data_files(runs, tmp_path):
    data = figure8_data(runs, {"DFDNet": "dfdnet", "Ours": "skips4", "GFPGAN*": "gfpgan"})
    assert list(data["method"]) == ["DFDNet"] * 4 + ["Ours"] * 4  # gfpgan has no file: left out
    assert data["iprecision"].iloc[:4].isna().all()
    paths = write_figure8_data(data, tmp_path)
    long = pd.read_csv(paths["csv"])
    assert list(long.columns) == ["method", "k", "iprecision", "irecall"]
    assert long.loc[(long["method"] == "Ours") & (long["k"] == 3), "irecall"].item() == 0.62
    wide = pd.read_csv(paths["iprecision"])
    assert list(wide.columns) == ["k", "DFDNet", "Ours"] and list(wide["Ours"]) == [0.50, 0.60, 0.65, 0.70]
    records = json.loads(paths["json"].read_text())
    assert records[0] == {"method": "DFDNet", "k": 1, "iprecision": None, "irecall": None}


def test_training_curves_of_every_arm_in_one_long_table_and_one_figure(tmp_path):
    from faceres.report.figures import training_curves, training_figure

    (tmp_path / "main.csv").write_text("step,g_l1,g_adversarial,d_loss\n10,0.30,0.9,1.2\n20,0.25,0.8,1.1\n")
    (tmp_path / "skips0.csv").write_text("step,g_adversarial,g_l1,d_loss\n10,1.0,0.40,1.3\n")  # other column order
    data = training_curves({"main": tmp_path / "main.csv", "skips0": tmp_path / "skips0.csv",
                            "skips6": tmp_path / "absent.csv"})  # an arm not run has no curve: left out
    assert list(data.columns) == ["method", "step", "d_loss", "g_adversarial", "g_l1"]
    assert data.to_dict("records") == [
        {"method": "main", "step": 10, "d_loss": 1.2, "g_adversarial": 0.9, "g_l1": 0.30},
        {"method": "main", "step": 20, "d_loss": 1.1, "g_adversarial": 0.8, "g_l1": 0.25},
        {"method": "skips0", "step": 10, "d_loss": 1.3, "g_adversarial": 1.0, "g_l1": 0.40},
    ]
    figure = training_figure(data)
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["g_l1", "g_adversarial", "d_loss"]  # g_feature was not logged
    assert [line.get_label() for line in panels[0].get_lines()] == ["main", "skips0"]
    assert list(panels[0].get_lines()[0].get_ydata()) == [0.30, 0.25]
    with pytest.raises(DataError, match="no arm has a curve.csv"):
        training_figure(training_curves({"skips6": tmp_path / "absent.csv"}))


def test_the_gradient_share_note_averages_the_main_arms_second_half(tmp_path):
    from faceres.report.figures import GRADIENT_SHARES, gradient_share_note, training_curves, training_figure

    rows = ["step,share_l1,share_feature,share_style,share_adversarial",
            "10,0.10,0.40,0.40,0.10", "20,0.20,0.30,0.30,0.20",  # first half: left out
            "30,0.30,0.20,0.20,0.30", "40,0.25,0.25,0.25,0.25"]
    (tmp_path / "main.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "alpha3.csv").write_text("step,g_l1\n10,0.3\n")  # an arm without shares (an older run)
    data = training_curves({"main": tmp_path / "main.csv", "alpha3": tmp_path / "alpha3.csv"})
    # steps 30 and 40 are past half of 40: l1 (0.30 + 0.25) / 2 = 27.5% -> "28%", feature 22.5% -> "22%" (half
    # to even), adversarial 27.5% -> "28%"
    assert gradient_share_note(data) == (
        "Gradient shares of the objective's terms on the output image (norm of each weighted term's gradient over "
        "their sum), main arm, mean over steps 30-40: l1 28%, feature 22%, style 22%, adversarial 28%.")
    assert gradient_share_note(data, arm="alpha3") is None
    panels = [ax for ax in training_figure(data, GRADIENT_SHARES).axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == list(GRADIENT_SHARES)


def test_alpha_tradeoff_axes(runs, tmp_path):
    fig = alpha_tradeoff(runs, ALPHA_ARMS)
    ax_psnr, ax_fid = fig.axes
    assert len(ax_psnr.lines) == 1 and len(ax_fid.lines) == 1
    assert list(ax_psnr.lines[0].get_xdata()) == [0.1, 1.0, 10.0]
    assert list(ax_psnr.lines[0].get_ydata()) == [25.0, 24.1, 22.0]
    assert list(ax_fid.lines[0].get_ydata()) == [40.0, 25.0, 20.0]
    assert ax_psnr.get_xscale() == "log"
    assert_png_pdf(save_figure(fig, tmp_path / "alpha"))
    fig = alpha_tradeoff(runs, {0.0: "alpha0.1", 1.0: "alpha1"})
    assert fig.axes[0].get_xscale() == "symlog"


def _folder(root: Path, name: str, ids, size, colour_base) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for i, image_id in enumerate(ids):
        array = np.full((size, size, 3), (colour_base + 10 * i) % 256, np.uint8)
        array[0, 0] = (1, 2, 3)
        Image.fromarray(array).save(folder / f"{image_id}.png")
    return folder


def test_qualitative_grids(tmp_path):
    ids = ["a01", "b02"]
    gt = _folder(tmp_path, "gt", ids, 32, 200)
    inp = _folder(tmp_path, "in", ids, 32, 10)
    skips = {n: _folder(tmp_path, f"s{n}", ids, 32, 50 + 30 * n) for n in (0, 2)}
    fig = figure9(inp, skips, gt, ids)
    assert len(fig.axes) == 2 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["Input", "n = 0", "n = 2", "GT"]
    assert fig.axes[4].get_ylabel() == "b02"
    shown = np.asarray(fig.axes[6].images[0].get_array())  # row b02, column n = 2
    np.testing.assert_array_equal(shown, np.asarray(Image.open(skips[2] / "b02.png")))
    assert_png_pdf(save_figure(fig, tmp_path / "fig9"))

    seeds = {s: _folder(tmp_path, f"seed{s}", ids[:1], 32, 90 + s) for s in range(3)}
    fig = figure10(inp, seeds, ids[:1], gt)
    assert [ax.get_title() for ax in fig.axes] == ["Input", "seed 0", "seed 1", "seed 2", "GT"]

    low = _folder(tmp_path, "low", ids, 4, 30)
    ours = _folder(tmp_path, "ours", ids, 32, 120)
    fig = sr_figure(low, {"Ours": ours}, gt, ids, factor=8)
    assert [ax.get_title() for ax in fig.axes[:4]] == ["Input", "Bicubic", "Ours", "GT"]
    assert np.asarray(fig.axes[1].images[0].get_array()).shape == (32, 32, 3)
    assert np.asarray(fig.axes[0].images[0].get_array()).shape == (4, 4, 3)
    with pytest.raises(DataError, match=r"x 16 != ground truth"):
        sr_figure(low, {"Ours": ours}, gt, ids, factor=16)
    with pytest.raises(DataError, match="no image 'zz'"):
        figure9(inp, skips, gt, ["zz"])
    odd = _folder(tmp_path, "odd", ids, 24, 0)
    with pytest.raises(DataError, match="24x24 px does not fit"):
        figure9(inp, {0: odd}, gt, ids)


# --- report -------------------------------------------------------------------------------------------------

def test_comparability_statement():
    assert "NOT comparable" in comparability_statement(RunInfo(profile="cpu", data_source="synthetic", resolution=128))
    assert "synthetic" in comparability_statement(RunInfo(profile="paper", data_source="synthetic"))
    assert comparability_statement(RunInfo(profile="paper", data_source="folder")) is None


def test_report_contains_every_table_and_figure(runs, tmp_path):
    tables = [table6(runs, SKIPS_ARMS), table7(runs, AUG_ARMS), table8(runs, COMPARISON), alpha_table(runs, ALPHA_ARMS)]
    fig_paths = save_figure(alpha_tradeoff(runs, ALPHA_ARMS), tmp_path / "out" / "figures" / "alpha")
    figures = [ReportFigure("Alpha", fig_paths["png"], "caption here", pdf=fig_paths["pdf"]),
               ReportFigure("Figure 8", None, missing="no inception features")]
    info = RunInfo(profile="cpu", data_source="synthetic", git_commit="abc1234", date="2025-01-02",
                   weights={"vgg16.ckpt": "f" * 64})
    paths = write_report(tmp_path / "out", tables=tables, figures=figures, run_info=info)
    md, page = paths["md"].read_text(), paths["html"].read_text()
    for table in tables:
        assert table.title in md and table.title in page
        for row in table.rows:  # every cell of every table, in both documents
            assert table.to_markdown().split("\n")[4 + table.rows.index(row)] in md
    assert md.count("\n| ") >= sum(len(t.rows) for t in tables)
    assert "](figures/alpha.png)" in md and "no inception features" in md
    assert page.count('src="data:image/png;base64,') == 1
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from outside the file
    assert "NOT comparable" in md and "NOT comparable" in page
    assert "f" * 64 in md and "f" * 64 in page and "abc1234" in page
    for table in tables:
        assert page.count(f'<table class="results" id="{table.name}"') == 1


def test_build_report_end_to_end(metrics_root, tmp_path):
    out = tmp_path / "report"
    paths = build_report(out, ReportInputs(
        metrics_root=metrics_root, run_info=RunInfo(profile="cpu", data_source="synthetic"),
        skips_arms=SKIPS_ARMS, aug_arms=AUG_ARMS, alpha_arms=ALPHA_ARMS,
        comparison={"DEG": "deg", "DFDNet": "dfdnet", "GFPGAN": "gfpgan", "GPEN": "gpen", "Ours": "skips4"},
        figure8_methods={"DEG*": "deg", "GPEN": "gpen", "GFPGAN*": "gfpgan", "DFDNet": "dfdnet", "Ours": "skips4"},
    ))
    for name in ("table6", "table7", "table8", "alpha", "strata"):
        for suffix in ("csv", "md", "tex"):
            assert (out / "tables" / f"{name}.{suffix}").is_file()
    for stem in ("figure8", "alpha_tradeoff"):  # PNGs alone in figures/ (DVC image plots), PDFs in pdf/
        assert_png_pdf({"png": out / "figures" / f"{stem}.png", "pdf": out / "pdf" / f"{stem}.pdf"})
    assert {p.suffix for p in (out / "figures").iterdir()} == {".png"}
    assert (out / "plots" / "figure8_irecall.csv").is_file()
    assert paths["html"].read_text().count("data:image/png;base64,") == 2  # no curves given: no curves figure
    assert re.search(r"\| no votes +\|", paths["md"].read_text())
    with pytest.raises(ConfigError, match="without the questionnaire's key_csv"):
        build_report(out, ReportInputs(
            metrics_root=metrics_root, run_info=RunInfo(profile="cpu", data_source="synthetic"), skips_arms={},
            aug_arms={}, alpha_arms=ALPHA_ARMS, comparison=COMPARISON, figure8_methods=FIGURE8,
            votes_csvs=[tmp_path / "votes.csv"]))


def test_alpha_table_without_alpha_arms_is_an_empty_table_that_says_why(runs, tmp_path):
    t = alpha_table(runs, {})
    assert t.rows == () and t.data.empty
    assert any("No arm varies α" in note for note in t.notes)
    t.write(tmp_path)
    assert "No arm varies" in (tmp_path / "alpha.md").read_text()


# --- the metrics document: one format, written by the evaluate stage, read by the report -----------------

def test_metrics_document_round_trip_and_the_evaluate_stage_writer():
    from faceres.config.schema import load_config
    from faceres.pipeline.evaluate import report_document
    from faceres.metrics.metrics_file import MetricsFile, PerImageStat, parse_metrics

    built = MetricsFile(
        path=Path("m.json"), method="skips4", task="bfr", n_images=3, profile="cpu", noise_seeds=2,
        per_image={"psnr": PerImageStat(24.0, 1.5, (23.0, 25.0), 0.1), "lpips": PerImageStat(0.3)},
        fid=41.5, manifold={"iprecision": {"identity": {1: 0.5, 2: 0.75}}},
    )
    assert parse_metrics(built.to_document(), "m.json") == built

    # evaluate_folders' summary shape -> the document, written out by hand
    summary = {"n_pairs": 3, "metrics": {
        "psnr": {"mean": 24.0, "std": 1.5, "n": 3, "ci_level": 0.95, "ci_low": 23.0, "ci_high": 25.0},
        "ssim": {"mean": 0.7, "std": 0.1, "n": 3, "ci_level": None, "ci_low": None, "ci_high": None},
        "fid": {"value": 41.5},
        "ipr": {q: {"k1": {"mean": 0.5}, "k2": {"mean": 0.75}} for q in ("precision", "recall", "iprecision", "irecall")},
    }}
    config = load_config()
    document = report_document("skips4", "bfr", summary, config, seed_psnr=[24.0, 24.2])
    by_k = {"identity": {"1": 0.5, "2": 0.75}}
    assert document == {
        "method": "skips4", "task": "bfr", "n_images": 3, "profile": config.profile, "data_source": config.data.source,
        "identity_backbone": document["identity_backbone"], "noise_seeds": 2,
        "metrics": {"psnr": {"mean": 24.0, "std": 1.5, "ci95": [23.0, 25.0], "seed_std": pytest.approx(0.1414213562)},
                    "ssim": {"mean": 0.7, "std": 0.1}, "fid": {"value": 41.5},
                    "precision": by_k, "recall": by_k, "iprecision": by_k, "irecall": by_k},
    }
    assert list(document) == ["method", "task", "n_images", "profile", "data_source", "identity_backbone",
                              "noise_seeds", "metrics"]
    assert parse_metrics(document).manifold_value("irecall", "identity", 2) == 0.75


def test_the_report_page_renders_in_chromium_with_every_table_and_figure(metrics_root, tmp_path, browser):
    from selenium.webdriver.common.by import By

    paths = build_report(tmp_path / "report", ReportInputs(
        metrics_root=metrics_root, run_info=RunInfo(profile="cpu", data_source="synthetic"),
        skips_arms=SKIPS_ARMS, aug_arms=AUG_ARMS, alpha_arms=ALPHA_ARMS, comparison=COMPARISON,
        figure8_methods=FIGURE8,
    ))
    browser.get(paths["html"].as_uri())
    text = browser.find_element(By.TAG_NAME, "body").text
    for title in ("Table 6", "Table 7", "Table 8", "Figure 8"):
        assert title in text, title
    assert len(browser.find_elements(By.TAG_NAME, "table")) >= 4
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 2  # Figure 8 and the alpha trade-off, inlined
    # every image decoded (a broken data URI has naturalWidth 0) and shown at a readable size
    for image in images:
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 300
    # the skips table's 4-skip row shows the fixture's PSNR, as the Markdown does
    assert "24.10" in text
