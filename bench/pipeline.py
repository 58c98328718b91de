"""Wall time of the default pipeline: every stage of `dvc repro` in a fresh clone, then a no-op `dvc repro`.

    python bench/pipeline.py                  # copy the working tree into a temp repo, run there (the env must exist)
    python bench/pipeline.py --here           # time `dvc repro` in this checkout instead
    python bench/pipeline.py -S profiles.cpu.epochs=1   # with parameter overrides (written to the clone's params)

Stage times come from DVC's own output ("Running stage 'X'"), time-stamped as it streams. Target (issue 6):
the default pipeline under 20 minutes on a 2-core machine, a no-op `dvc repro` under 5 seconds. Training
runs are cached by fingerprint in $FACERES_CACHE; the clone gets a fresh, empty one so nothing is reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from faceres.pipeline.dvc import copy_checkout, run_dvc, set_params

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--here", action="store_true", help="run in this checkout instead of a fresh clone")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="run the fresh copy in DIR and keep it (reports, mlruns) instead of a temp dir")
    parser.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.setdefault("FACERES_WEIGHT_SOURCES", "hub_cache,pypi")
    scratch = None
    if args.here:
        workdir = REPO
    else:
        scratch = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="faceres-pipeline-"))
        workdir = scratch / "repo"
        copy_checkout(REPO, workdir)  # the working tree as it is, committed into a new repository
        env["FACERES_CACHE"] = str(scratch / "cache")
        weights = Path(os.environ.get("FACERES_CACHE", Path.home() / ".cache" / "faceres")) / "weights"
        if weights.is_dir():  # the pretrained weights are not what is being timed
            shutil.copytree(weights, scratch / "cache" / "weights")
    if args.overrides:
        set_params(workdir / "params.yaml", args.overrides)
    print(f"dvc repro in {workdir}")
    run = run_dvc(["repro"], workdir, env, echo=lambda line: print(line, flush=True))
    if run.returncode:
        print(run.output[-3000:])
    total, code = run.seconds, run.returncode
    print(f"\nstages ({len(run.stages)}), slowest first:")
    for name, seconds in sorted(run.stages, key=lambda s: -s[1]):
        print(f"  {seconds:8.1f} s  {name}")
    print(f"total: {total:.1f} s ({total / 60:.1f} min) - target < 20 min; exit code {code}")
    noop = run_dvc(["repro"], workdir, env)
    noop_code = noop.returncode
    print(f"no-op dvc repro: {noop.seconds:.2f} s - target < 5 s; exit code {noop_code}")
    if scratch is not None and not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return code or noop_code


if __name__ == "__main__":
    sys.exit(main())
