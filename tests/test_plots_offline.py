"""`dvc plots show` draws offline: .dvc/config names a template with the Vega libraries inlined (`faceres
plots-template`), so the page links nothing, and in a browser cut off from the network every interactive plot
of dvc.yaml is drawn: one line per method, one point per row of its data."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent
CURVE_METHODS, CURVE_STEPS = ("main", "skips0", "noaug"), range(0, 22, 2)
FIGURE8_METHODS, KS = ("main", "deg"), range(1, 5)


def _run(*command: str, cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """`dvc plots show` of the project's plots (dvc.yaml, .dvc/config, .dvc/plots/) on hand-made report data."""
    repo = tmp_path_factory.mktemp("repo")
    _run(str(BIN / "dvc"), "init", "--no-scm", "-q", cwd=repo)
    (repo / ".dvc" / "config").write_text((REPO / ".dvc" / "config").read_text())
    (repo / ".dvc" / "plots").mkdir(exist_ok=True)
    for template in (REPO / ".dvc" / "plots").glob("*.json"):
        (repo / ".dvc" / "plots" / template.name).write_text(template.read_text())
    configured = subprocess.run([str(BIN / "dvc"), "config", "plots.html_template"], cwd=repo, capture_output=True,
                                text=True)
    if configured.returncode == 0 and configured.stdout.strip():  # as make setup does (else DVC's own page)
        _run(str(BIN / "faceres"), "plots-template", "--out", str(repo / ".dvc" / configured.stdout.strip()), cwd=repo)
    interactive = [p for p in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"] if isinstance(p, dict)]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": interactive}))
    plots = repo / "reports" / "plots"
    plots.mkdir(parents=True)
    (plots / "training_curves.csv").write_text("method,step,g_l1,g_adversarial\n" + "".join(
        f"{m},{s},{1 / (s + 1) + i:.4f},{0.5 + 0.01 * s * i:.4f}\n" for i, m in enumerate(CURVE_METHODS) for s in CURVE_STEPS))
    (plots / "figure8.csv").write_text("method,k,iprecision,irecall\n" + "".join(
        f"{m},{k},{0.1 * k + 0.05 * i:.3f},{0.2 * k - 0.05 * i:.3f}\n" for i, m in enumerate(FIGURE8_METHODS) for k in KS))
    _run(str(BIN / "dvc"), "plots", "show", "-o", "page", cwd=repo)
    return repo / "page" / "index.html"


def test_the_plots_page_holds_the_vega_libraries_and_links_nothing(page):
    html = page.read_text()
    assert "<script src=" not in html and "cdn.jsdelivr" not in html  # DVC's default page links all three
    assert "window.vegaEmbed=" in html and html.count("vegaEmbed('#") == 4


def test_every_interactive_plot_is_drawn_in_a_browser_without_network(page, browser):
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions",
                            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    browser.get(page.as_uri())
    expected = {"training_l1": (CURVE_METHODS, CURVE_STEPS), "training_adversarial": (CURVE_METHODS, CURVE_STEPS),
                "figure8_iprecision": (FIGURE8_METHODS, KS), "figure8_irecall": (FIGURE8_METHODS, KS)}
    count_marks = """return Array.from(document.querySelectorAll('body > div[id]')).map(function (div) {
        const drawn = function (selector) {
            return Array.from(div.querySelectorAll(selector)).filter(function (p) {
                return (p.getAttribute('d') || '').length > 0; }).length; };
        return [div.id, drawn('svg g.mark-line.role-mark path'), drawn('svg g.mark-symbol.role-mark path')]; });"""
    for _ in range(100):  # vega-embed draws asynchronously
        drawn = {name: (lines, points) for name, lines, points in browser.execute_script(count_marks)}
        if all(drawn.get(name, (0, 0))[1] for name in expected):
            break
        time.sleep(0.1)
    assert drawn == {name: (len(methods), len(methods) * len(xs)) for name, (methods, xs) in expected.items()}
