"""Drive DVC on a checkout and tell which stages ran and how long each took.

Used by bench/pipeline.py (the time budget of the default pipeline) and by the experiment tests (which stages
`dvc exp run -S skips=...` recomputes). Stage names and times come from DVC's own output, time-stamped as it
streams: DVC prints "Running stage 'X':" before each stage it executes and nothing of that form for a stage
whose lock still matches.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import yaml

from faceres.config.loader import parse_override, set_dotted

STAGE_LINE = re.compile(r"Running stage '([^']+)'")


@dataclass
class DvcRun:
    """One DVC command's outcome: exit code, wall time, the stages it executed (in order) and their times."""

    command: list[str]
    returncode: int
    seconds: float
    stages: list[tuple[str, float]] = field(default_factory=list)
    output: str = ""

    @property
    def ran(self) -> list[str]:
        return [name for name, _ in self.stages]

    def check(self) -> "DvcRun":
        if self.returncode != 0:
            tail = "\n".join(self.output.splitlines()[-30:])
            raise RuntimeError(f"{' '.join(self.command)} exited {self.returncode}:\n{tail}")
        return self


def dvc_executable() -> str:
    """The dvc of this interpreter's environment (the project's .venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def run_dvc(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, echo: Callable[[str], None] | None = None
) -> DvcRun:
    """Run `dvc ARGS` in `cwd`, streaming its output; `echo` gets one line per stage start (progress)."""
    command = [dvc_executable(), *args]
    environment = dict(env if env is not None else os.environ)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    stages: list[tuple[str, float]] = []
    lines: list[str] = []
    current, current_start = None, start
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        match = STAGE_LINE.search(line)
        if match:
            now = time.perf_counter()
            if current is not None:
                stages.append((current, now - current_start))
            current, current_start = match.group(1), now
            if echo is not None:
                echo(f"[{now - start:7.1f} s] {current}")
    code = process.wait()
    end = time.perf_counter()
    if current is not None:
        stages.append((current, end - current_start))
    return DvcRun(command, code, end - start, stages, "".join(lines))


def set_params(params_file: Path, overrides: Sequence[str] | dict) -> None:
    """Write KEY=VALUE overrides (dotted keys, YAML values, as `dvc exp run -S`) into a params file."""
    params = yaml.safe_load(params_file.read_text())
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    for key, value in items:
        set_dotted(params, key, value, str(params_file))
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_checkout(source: Path, destination: Path, message: str = "copy of the working tree") -> Path:
    """A new git repository at `destination` holding `source`'s working tree (tracked and untracked files that
    git does not ignore, uncommitted edits included), committed once: a fresh clone of what is being tested."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=source,
                            capture_output=True, check=True).stdout.decode().split("\0")
    destination.mkdir(parents=True, exist_ok=True)
    for name in filter(None, listed):
        origin = source / name
        if origin.is_file():  # deleted-but-tracked files are skipped
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    git = ["git", "-c", "user.name=faceres", "-c", "user.email=faceres@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=destination, check=True)
    subprocess.run([*git, "add", "-A"], cwd=destination, check=True)
    subprocess.run([*git, "commit", "-q", "-m", message], cwd=destination, check=True)
    return destination
