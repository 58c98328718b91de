"""The DVC pipeline: one module per stage of dvc.yaml, each the one place where that stage reads its inputs,
calls the library and writes its outputs and its MLflow run; `stages/<stage>.py` calls its ``main``.

- :mod:`layout`: every path the pipeline reads and writes; :mod:`design`: the methods (main, arms, deg,
  external) and their labels; :mod:`status`: the not-run / not-provided records; :mod:`tracking`: MLflow.
- Stages: :mod:`weights`, :mod:`prepare`, :mod:`degrade`, :mod:`train`, :mod:`restore`, :mod:`evaluate`,
  :mod:`report`. :mod:`dvc` drives DVC itself (benchmarks and the experiment tests).
- Here: :func:`stage_args` (a stage script's arguments) and :func:`stop_with_parent` (every stage script calls it
  first: a stage does not outlive the dvc process that started it).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from faceres.core.errors import ConfigError

PARENT_POLL_S = 1.0  # how often the watchdog looks for a new parent process
_SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "ash", "fish"})  # what $SHELL may name
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_stopping = threading.Event()


def stage_args(argv: Sequence[str], usage: str, at_least: int, at_most: int | None = None) -> list[str]:
    """A stage script's positional arguments, or a one-line usage error."""
    argv = list(argv)
    if len(argv) < at_least or (at_most is not None and len(argv) > at_most):
        raise ConfigError(f"usage: {usage}")
    return argv


class StageStopped(KeyboardInterrupt):
    """SIGTERM raised in the stage's main thread: what it was doing unwinds as on Ctrl-C (a half-written
    ``<output>.tmp`` is removed, the MLflow run ends KILLED) and the stage exits with `error: interrupted`."""


def stop_with_parent(poll_seconds: float = PARENT_POLL_S) -> None:
    """Stop this stage, at its next Python step and replacing no output, when the process that started it (dvc)
    exits: a `kill -9` of dvc alone would otherwise leave it running as an orphan that writes outputs, MLflow
    runs and model versions dvc.lock never records. Two ways to notice, both ending in SIGTERM: on Linux the
    kernel's parent-death signal (prctl PR_SET_PDEATHSIG, kept across exec, so torchrun started in this process's
    place gets it too), and everywhere a thread that polls os.getppid() (the backstop where prctl is missing).
    DVC runs a stage's command through ``$SHELL -c`` (``/bin/sh`` where SHELL is unset). bash and zsh replace
    themselves by the command, so the parent is dvc; dash (Debian's /bin/sh) and fish do not, and a killed dvc
    leaves the shell alive, waiting on the stage: then the watchdog also watches the shell's own parent."""
    parent = os.getppid()
    lineage = [(os.getpid(), parent)]  # (process, the parent it must keep)
    if _is_shell_running_a_command(parent):
        lineage.append((parent, _parent_of(parent)))
    signal.signal(signal.SIGTERM, _raise_stopped)
    _request_parent_death_signal(signal.SIGTERM)
    # its first look also covers a parent that exited before the prctl call
    threading.Thread(target=_watch_parent, args=(lineage, poll_seconds), name="faceres-parent-watch",
                     daemon=True).start()


def _raise_stopped(signum: int, frame) -> None:
    if _stopping.is_set():  # the parent-death signal and the watchdog both fire: unwind once, undisturbed
        return
    _stopping.set()
    raise StageStopped(f"stopped by {signal.Signals(signum).name}")


def _watch_parent(lineage: list[tuple[int, int | None]], poll_seconds: float) -> None:
    # a process whose parent died is re-parented at once (to init or a subreaper), zombie parent or not
    while all(_parent_of(process) == parent for process, parent in lineage):
        time.sleep(poll_seconds)
    if not _stopping.is_set():
        os.kill(os.getpid(), signal.SIGTERM)


def _parent_of(pid: int) -> int | None:
    """The parent process id of `pid`, or None when it has gone (or, off Linux, for any process but this one)."""
    if pid == os.getpid():
        return os.getppid()
    try:  # /proc/PID/stat: "PID (COMMAND) STATE PPID ...", COMMAND may hold spaces and parentheses
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _is_shell_running_a_command(pid: int) -> bool:
    """Whether `pid` is a POSIX shell started as `SHELL -c COMMAND` (how DVC starts a stage), from
    /proc/PID/cmdline; False off Linux, where the watchdog watches the direct parent only."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return len(argv) > 2 and Path(argv[0].decode(errors="replace")).name in _SHELLS and b"-c" in argv[1:-1]


def _request_parent_death_signal(signum: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc: the watchdog alone
        pass

