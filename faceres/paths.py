"""Where faceres keeps machine-local caches (pretrained weights, training runs by fingerprint)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FACERES_CACHE"


def cache_root() -> Path:
    """``$FACERES_CACHE``, or ``~/.cache/faceres``: outside the repo, shared by DVC's experiment copies."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "faceres").expanduser()
