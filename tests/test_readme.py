"""The README leads: what it is, the two commands, what you get, then the results; the reference material lives
in docs/; every repository path it names is one a clone has; it promises no committed file a clone lacks."""

from __future__ import annotations

import re
import subprocess
from pathlib import PurePosixPath

from faceres.pipeline.publish import BEGIN
from tests.conftest import REPO

COMPACT_EXP_SHOW = "dvc exp show --md --drop '.*' --keep 'Experiment|^(skips|alpha|aug)$|(main|deg)\\.bfr\\.'"


def _readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def _tracked() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return set(listed.splitlines())


def test_the_readme_leads_with_the_two_commands_and_what_they_give_before_the_results():
    readme = _readme()
    headings = re.findall(r"^## (.+)$", readme, re.M)
    assert headings[:3] == ["Two commands", "Results: the reference study", "Restoring your own photos"]
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "repro"], ["make", "test"]]
    results = readme.index(BEGIN)
    for lead in (COMPACT_EXP_SHOW, "http://127.0.0.1:5000/#/experiments/1/runs", "reports/report.html",
                 "faceres restore --generator docs/results/generator.pt --input photo.jpg --out restored"):
        assert 0 < readme.index(lead) < results, lead
    assert len(readme.split()) < 7000  # was 8,757 words, the results tables (~1,900) included


def test_the_reference_material_lives_in_docs():
    readme = _readme()
    for moved, home in (("<!-- parameter-reference:start", "parameters.md"), ("### Several nodes", "gpu-and-cluster.md"),
                        ("### Arms in parallel", "gpu-and-cluster.md"), ("## Benchmarks", "benchmarks.md")):
        assert moved not in readme and f"`docs/{home}`" in readme, moved
    assert "## Several nodes" in (REPO / "docs" / "gpu-and-cluster.md").read_text()
    assert "## Time budget" in (REPO / "docs" / "benchmarks.md").read_text()


def test_every_repository_path_the_readme_names_is_in_a_clone():
    tracked = _tracked()
    folders = {str(parent) for path in tracked for parent in PurePosixPath(path).parents}
    named = set(re.findall(r"`((?:docs|bench|tests|stages|faceres)/[\w./-]*\w)`", _readme()))
    named = {p for p in named if not re.search(r"/[A-Z]+(\.|/|$)", p)}  # placeholders: stages/X.py, models/ARM
    assert len(named) > 10
    assert sorted(p for p in named if p not in tracked and p not in folders) == []


def test_no_file_is_promised_as_committed_that_a_clone_lacks():
    tracked, readme = _tracked(), _readme()
    for generated in ("reports/summary.json", "dvc.lock"):
        if generated not in tracked:
            assert not re.search(rf"`{re.escape(generated)}` is committed", readme), generated
            assert f"`{generated}`" in readme  # and the README says where it comes from instead
