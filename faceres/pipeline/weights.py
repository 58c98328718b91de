"""Stage `weights`: fill and verify the pretrained-network cache; record what was verified (data/weights.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from faceres.core.errors import user_errors_exit
from faceres.core.files import write_json
from faceres.pipeline import stage_args
from faceres.pipeline.layout import Layout


def run(out: Path | None, networks: Sequence[str] | None = None, sources: str | None = None) -> None:
    """Materialize `networks` (default: all) from `sources`; write the verified record to `out` if given."""
    from faceres.weights.catalog import NETWORKS
    from faceres.weights.store import ensure_weights, weights_report

    ensure_weights(networks or NETWORKS, sources=sources)
    if out is not None:
        write_json(out, weights_report())  # atomic: the old record or the new one, never half of one


@user_errors_exit
def main(argv: Sequence[str] = ()) -> None:
    stage_args(argv, "python stages/weights.py", 0, 0)
    run(Layout().weights_record)
