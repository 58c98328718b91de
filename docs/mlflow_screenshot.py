"""Screenshot of MLflow's compare view for the ablation arms' evaluation runs (docs/mlflow-compare.png).

    python docs/mlflow_screenshot.py [--repo PATH] [--out docs/mlflow-compare.png]

Starts `mlflow ui` on 127.0.0.1 over the repo's local store (mlruns/mlflow.db), opens the compare page of the
newest `evaluate` run of each arm in headless Chromium (Debian packages chromium, chromium-driver; `make
browser` installs them) and saves the page. Run it after `dvc repro`.
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
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "mlflow-compare.png")
    parser.add_argument("--experiment", default="faceres")
    args = parser.parse_args()
    store = f"sqlite:///{args.repo.resolve() / 'mlruns' / 'mlflow.db'}"
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
        url = f"{base}/#/compare-runs?{query}"

        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1400"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(url)
            time.sleep(12)  # the React app fetches the runs after load
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
        print(f"{args.out}: compare view of {len(run_ids)} evaluate runs ({url})")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
