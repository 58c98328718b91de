"""The DVC pipeline: one module per stage of dvc.yaml, each the one place where that stage reads its inputs,
calls the library and writes its outputs and its MLflow run; `stages/<stage>.py` calls its ``main``.

- :mod:`layout`: every path the pipeline reads and writes; :mod:`design`: the methods (main, arms, deg,
  external) and their labels; :mod:`status`: the not-run / not-provided records; :mod:`tracking`: MLflow.
- Stages: :mod:`weights`, :mod:`prepare`, :mod:`degrade`, :mod:`train`, :mod:`restore`, :mod:`evaluate`,
  :mod:`report`. :mod:`dvc` drives DVC itself (benchmarks and the experiment tests).
"""

from __future__ import annotations

from typing import Sequence

from faceres.core.errors import ConfigError


def stage_args(argv: Sequence[str], usage: str, at_least: int, at_most: int | None = None) -> list[str]:
    """A stage script's positional arguments, or a one-line usage error."""
    argv = list(argv)
    if len(argv) < at_least or (at_most is not None and len(argv) > at_most):
        raise ConfigError(f"usage: {usage}")
    return argv

