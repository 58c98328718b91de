"""Screenshots of MLflow's UI over the project's store: the experiment page (one parent run per experiment, its
stage runs unfolded below it: docs/mlflow-experiment.png) and the compare view of the ablation arms' evaluation
runs (docs/mlflow-compare.png).

    python docs/mlflow_screenshot.py [--repo PATH] [--experiment faceres-cpu-synthetic] [--docs docs]

Starts `mlflow ui` on 127.0.0.1 over the repo's local store (mlflow.db, MLflow's default), opens the pages in
headless Chromium (Debian packages chromium, chromium-driver; `make browser` installs them) and saves them.
Run it after `dvc repro`.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def arm_runs(store: str, experiment: str) -> tuple[str, list[str]]:
    """(experiment id, newest evaluate run id per arm, main first)."""
    import mlflow

    mlflow.set_tracking_uri(store)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"{store}: no MLflow experiment {experiment!r}; run dvc repro first")
    runs = mlflow.search_runs([found.experiment_id], filter_string="tags.stage = 'evaluate' and status = 'FINISHED'",
                              order_by=["start_time DESC"])
    runs = runs[runs["tags.arm"].notna()] if "tags.arm" in runs else runs.iloc[0:0]
    newest = runs.drop_duplicates("tags.arm")
    if newest.empty:
        raise SystemExit(f"{store}: no finished evaluate runs of arms; run dvc repro first")
    newest = newest.assign(order=newest["tags.arm"] != "main").sort_values(["order", "tags.arm"])
    return found.experiment_id, list(newest["run_id"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--docs", type=Path, default=REPO / "docs", help="where the two PNGs go")
    parser.add_argument("--experiment", default="faceres-cpu-synthetic", help="the default profile's experiment")
    args = parser.parse_args()
    store = f"sqlite:///{args.repo.resolve() / 'mlflow.db'}"
    experiment_id, run_ids = arm_runs(store, args.experiment)
    port = free_port()
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    server = subprocess.Popen([mlflow_bin, "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("mlflow ui did not start within 120 s")
                time.sleep(1)
        query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id])})
        pages = {"mlflow-experiment.png": f"{base}/#/experiments/{experiment_id}/runs",
                 "mlflow-compare.png": f"{base}/#/compare-runs?{query}"}

        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By

        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1100"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            args.docs.mkdir(parents=True, exist_ok=True)
            for name, url in pages.items():
                driver.get(url)
                time.sleep(12)  # the React app fetches the runs after load
                for close in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
                    close.click()  # MLflow 3's assistant panel
                    time.sleep(1)
                if name == "mlflow-experiment.png":  # unfold the newest parent run: its stage runs below it
                    toggles = driver.find_elements(By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']")
                    if toggles:
                        toggles[0].click()
                        time.sleep(3)
                driver.save_screenshot(str(args.docs / name))
                print(f"{args.docs / name}: {url}")
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
