"""Where faceres keeps machine-local caches (pretrained weights, training runs by fingerprint, FID statistics),
how big they are, and pruning them (`faceres cache`)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FACERES_CACHE"


def cache_root() -> Path:
    """``$FACERES_CACHE``, or ``~/.cache/faceres``: outside the repo, shared by DVC's experiment copies."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "faceres").expanduser()


# The cache's parts: folder -> what it holds (faceres cache lists them; `prune` empties the prunable ones)
CACHE_PARTS = {
    "runs": "training runs and checkpoints by fingerprint: an identical run is copied, a stopped one resumed",
    "fid_stats": "Inception statistics and ground-truth features per evaluated folder (~32 MB each; recomputed "
                 "when missing)",
    "weights": "pretrained networks (VGG16, AlexNet, FID Inception, dlib): refilled by `faceres weights`",
}
PRUNABLE = ("runs", "fid_stats")  # weights are kept: at run time nothing may download them again offline


def cache_usage() -> list[dict]:
    """Per part: its folder, entries, bytes and the newest entry's age in days (0 entries: not there yet)."""
    import time

    rows = []
    for part, meaning in CACHE_PARTS.items():
        folder = cache_root() / part
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
        sizes = [_size(entry) for entry in entries]
        newest = max((entry.stat().st_mtime for entry in entries), default=None)
        rows.append({"part": part, "folder": folder, "entries": len(entries), "bytes": sum(sizes),
                     "newest_days": None if newest is None else (time.time() - newest) / 86400, "meaning": meaning})
    return rows


def prune_cache(part: str, older_than_days: float = 0.0, dry_run: bool = False) -> tuple[list[Path], int]:
    """Remove the entries of `part` (one of PRUNABLE) not modified for `older_than_days`; returns them and
    their bytes. `dry_run` only lists them."""
    import shutil
    import time

    from faceres.core.errors import ConfigError

    if part not in PRUNABLE:
        raise ConfigError(f"cache part {part!r}: allowed: {', '.join(PRUNABLE)} (weights are kept: "
                          "`faceres weights` refills them only from their offline sources)")
    folder = cache_root() / part
    cutoff = time.time() - older_than_days * 86400
    chosen = [e for e in sorted(folder.iterdir()) if e.stat().st_mtime <= cutoff] if folder.is_dir() else []
    freed = sum(_size(entry) for entry in chosen)
    if not dry_run:
        for entry in chosen:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return chosen, freed


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
