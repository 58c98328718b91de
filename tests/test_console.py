"""Console messages: the stages' lines on stdout through the `faceres` logger, -q keeps only warnings."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def _restore_not_run(tmp_path, *flags):
    (tmp_path / "models" / "skips0").mkdir(parents=True, exist_ok=True)
    (tmp_path / "models" / "skips0" / "train.json").write_text('{"status": "not_run", "reason": "test"}')
    return subprocess.run([sys.executable, "-m", "faceres.cli", *flags, "restore-arm", "skips0", "--task", "bfr",
                           "--no-track", "--params", str(REPO / "params.yaml")],
                          capture_output=True, text=True, cwd=tmp_path)


def test_stage_messages_show_by_default_and_not_with_quiet(tmp_path):
    shown = _restore_not_run(tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "restore skips0: not run (test)"
    quiet = _restore_not_run(tmp_path, "-q")
    assert quiet.returncode == 0 and quiet.stdout == "", quiet.stdout
