"""`faceres cache`: what the machine-local cache holds, and pruning the parts that can be recomputed."""

from __future__ import annotations

import os
import time
from unittest import mock

import pytest

from faceres.core.errors import ConfigError
from faceres.core.cache import CACHE_ENV, cache_usage, prune_cache


@pytest.fixture
def cache(tmp_path):
    day = 86400
    now = time.time()
    (tmp_path / "fid_stats").mkdir()
    for name, size, age_days in (("old.npz", 3000, 40), ("new.npz", 500, 1)):
        path = tmp_path / "fid_stats" / name
        path.write_bytes(b"x" * size)
        os.utime(path, (now - age_days * day, now - age_days * day))
    run = tmp_path / "runs" / "abc123"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"y" * 700)
    (run / "final").mkdir()
    (run / "final" / "generator.pt").write_bytes(b"z" * 300)
    os.utime(run, (now - 10 * day, now - 10 * day))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "vgg16.pth").write_bytes(b"w" * 100)
    with mock.patch.dict(os.environ, {CACHE_ENV: str(tmp_path)}):
        yield tmp_path


def test_usage_counts_entries_and_bytes_per_part(cache):
    rows = {row["part"]: row for row in cache_usage()}
    assert (rows["fid_stats"]["entries"], rows["fid_stats"]["bytes"]) == (2, 3500)
    assert (rows["runs"]["entries"], rows["runs"]["bytes"]) == (1, 1000)  # a run folder with its files, nested
    assert (rows["weights"]["entries"], rows["weights"]["bytes"]) == (1, 100)
    assert rows["fid_stats"]["newest_days"] == pytest.approx(1, abs=0.01)


def test_prune_removes_only_entries_older_than_asked_and_never_the_weights(cache):
    removed, freed = prune_cache("fid_stats", older_than_days=30, dry_run=True)
    assert [p.name for p in removed] == ["old.npz"] and freed == 3000
    assert (cache / "fid_stats" / "old.npz").exists(), "a dry run removes nothing"
    removed, freed = prune_cache("fid_stats", older_than_days=30)
    assert sorted(p.name for p in (cache / "fid_stats").iterdir()) == ["new.npz"] and freed == 3000
    removed, freed = prune_cache("runs")
    assert freed == 1000 and list((cache / "runs").iterdir()) == []
    with pytest.raises(ConfigError, match="cache part 'weights': allowed: runs, fid_stats"):
        prune_cache("weights")
    assert (cache / "weights" / "vgg16.pth").exists()
