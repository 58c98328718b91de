"""dvc.yaml's deps match the code: each stage depends on every faceres module its script can import.

DVC reruns a stage only when one of its deps changes; a module the stage imports but does not list would
leave its outputs stale after an edit (review: architecture.md 3.1). The imports are read from the source
(every `import faceres...` / `from faceres... import`, also inside functions; faceres.core.imports, the reader the
cache keys use too), followed transitively from `stages/<stage>.py`; the deps may list a module's file or a
folder above it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from faceres.core.imports import import_closure
from tests.conftest import REPO

def imported_modules(script: Path) -> set[Path]:
    """Every faceres module file reachable from `script` through imports (the library's reader)."""
    return import_closure([script])


def _stages() -> dict[str, tuple[str, list[str]]]:
    """stage name -> (command, deps), with foreach stages expanded for one item (their deps do not vary)."""
    stages = {}
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        body = stage["do"] if "foreach" in stage else stage
        stages[name] = (body["cmd"], [d for d in body.get("deps", []) if "${" not in d])
    return stages


def test_every_stage_lists_the_modules_its_script_imports():
    missing = {}
    for name, (command, deps) in _stages().items():
        script = REPO / command.split()[1]
        assert script.is_file(), (name, command)
        assert str(script.relative_to(REPO)) in deps, f"{name}: its script is not a dep"
        covered = [REPO / d for d in deps]
        for module in sorted(imported_modules(script)):
            if not any(module == dep or dep in module.parents for dep in covered):
                missing.setdefault(name, []).append(str(module.relative_to(REPO)))
    assert missing == {}


def test_the_import_reader_follows_lazy_imports_and_packages(tmp_path):
    # faceres.pipeline.train imports the training loop inside a function: the loop's modules count
    modules = {str(p.relative_to(REPO)) for p in imported_modules(REPO / "stages" / "train.py")}
    assert {"faceres/pipeline/__init__.py", "faceres/pipeline/train.py", "faceres/train/loop.py",
            "faceres/models/generator.py", "faceres/core/streams.py", "faceres/config/schema.py"} <= modules
    assert "faceres/report/tables.py" not in modules  # training does not reach the report


def test_the_layout_names_the_manifest_prepare_writes():
    from faceres.data.prepare import MANIFEST
    from faceres.pipeline import layout

    assert layout.MANIFEST == MANIFEST
