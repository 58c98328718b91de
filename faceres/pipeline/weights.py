"""Stage `weights`: fill and verify the pretrained-network cache; record what was verified (data/weights.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from faceres.core.errors import user_errors_exit
from faceres.pipeline import stage_args
from faceres.pipeline.layout import Layout


def run(out: Path | None, networks: Sequence[str] | None = None, sources: str | None = None) -> None:
    """Materialize `networks` (default: all) from `sources`; write the verified record to `out` if given."""
    from faceres.weights.catalog import NETWORKS
    from faceres.weights.store import ensure_weights, weights_report

    ensure_weights(networks or NETWORKS, sources=sources)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(weights_report(), indent=2) + "\n")


@user_errors_exit
def main(argv: Sequence[str] = ()) -> None:
    stage_args(argv, "python stages/weights.py", 0, 0)
    run(Layout().weights_record)
