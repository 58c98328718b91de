"""`faceres publish-results`: what lands in docs/results and in the README, on a hand-made finished run."""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from faceres.core.errors import DataError
from faceres.restore.photos import DETECT_SIZE, load_template
from faceres.pipeline.publish import BEGIN, END, keep_rows, publish_results, update_readme

TABLE8 = """**Table 8: comparison**

| Method | Run | PSNR ↑ ours | PSNR ↑ paper |
|---|---|---|---|
| DEG | deg | 20.50 | not in paper |
| DFDNet | — | not provided | 23.68 |
| Ours | main | 19.58 | 28.01 |

- Δ = ours − paper."""

LANDMARKS = np.array([[90, 110], [166, 110], [128, 150], [100, 190], [156, 190]], float)  # at DETECT_SIZE px


class OneFace:
    """A detector that finds the same five landmarks in every image."""

    def __call__(self, image, upsample=1):
        assert image.shape == (DETECT_SIZE, DETECT_SIZE, 3)
        return [LANDMARKS.copy()]


def test_keep_rows_keeps_title_header_notes_and_the_named_rows():
    kept = keep_rows(TABLE8, ("DEG", "Ours"))
    assert "| DEG | deg |" in kept and "| Ours | main |" in kept and "DFDNet" not in kept
    assert kept.startswith("**Table 8: comparison**") and kept.endswith("- Δ = ours − paper.")
    assert "| Method | Run |" in kept and "|---|---|---|---|" in kept


def test_update_readme_replaces_only_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{BEGIN}\nold\n{END}\nafter: hand-written\n")
    update_readme(readme, f"{BEGIN}\nnew\n{END}")
    assert readme.read_text() == f"# x\n\nbefore\n{BEGIN}\nnew\n{END}\nafter: hand-written\n"
    readme.write_text("no markers\n")
    with pytest.raises(DataError, match="README.md: needs the lines"):
        update_readme(readme, "x")
    assert readme.read_text() == "no markers\n"  # nothing lost


def _finished_run(root):
    reports = root / "reports"
    for folder in ("tables", "figures", "plots", "pdf"):
        (reports / folder).mkdir(parents=True)
    (reports / "report.md").write_text("# report\n")
    (reports / "summary.json").write_text('{"main": {}}\n')
    (reports / "tables" / "table8.md").write_text(TABLE8 + "\n")
    (reports / "tables" / "table8.csv").write_text("Method,psnr\nDEG,20.5\n")
    (reports / "tables" / "table8.tex").write_text("\\begin{table}\n")
    (reports / "tables" / "table6.md").write_text("**Table 6**\n\n| n | Run |\n|---|---|\n| 0 | skips0 |\n")
    Image.new("RGB", (8, 8)).save(reports / "figures" / "qualitative_1.png")
    (reports / "pdf" / "figure8.pdf").write_bytes(b"%PDF")
    generator = root / "models" / "main" / "generator.pt"
    generator.parent.mkdir(parents=True)
    generator.write_bytes(b"weights" * 1000)
    faces = root / "faces"
    faces.mkdir()
    for i in range(6):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(faces / f"{i}.png")
    return reports, generator, faces


def test_publish_results_copies_the_run_hashes_the_generator_and_rewrites_the_readme(tmp_path):
    reports, generator, faces = _finished_run(tmp_path)
    out = tmp_path / "docs" / "results"
    out.mkdir(parents=True)
    (out / "stale.png").write_bytes(b"old")  # an earlier publication's leftover
    readme = tmp_path / "README.md"
    readme.write_text(f"## Results\n\nhand-written reading\n\n{BEGIN}\n{END}\n\n## Next\n")

    published = publish_results(reports, generator, faces, out, readme=readme, detector=OneFace())

    digest = hashlib.sha256(generator.read_bytes()).hexdigest()
    assert published == {"generator": str(out / "generator.pt"), "sha256": digest}
    assert (out / "generator.pt.sha256").read_text() == f"{digest}  generator.pt\n"
    assert subprocess.run(["sha256sum", "-c", "generator.pt.sha256"], cwd=out, capture_output=True).returncode == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["alignment_template.json", "figures/qualitative_1.png", "generator.pt", "generator.pt.sha256",
                     "report.md", "summary.json", "tables/table6.md", "tables/table8.csv", "tables/table8.md"]
    template = load_template(out / "alignment_template.json", detector=None)
    np.testing.assert_allclose(template, LANDMARKS / DETECT_SIZE, atol=1e-6)
    text = readme.read_text()
    assert text.startswith("## Results\n\nhand-written reading\n\n" + BEGIN) and text.endswith(END + "\n\n## Next\n")
    generated = text.split(BEGIN)[1].split(END)[0]
    assert "**Table 6**" in generated and "| Ours | main |" in generated and "DFDNet" not in generated
    assert "(docs/results/figures/qualitative_1.png)" in generated


def test_publish_results_without_a_finished_run_says_what_is_missing_and_keeps_the_old_results(tmp_path):
    reports, generator, faces = _finished_run(tmp_path)
    (reports / "summary.json").unlink()
    out = tmp_path / "results"
    out.mkdir()
    (out / "report.md").write_text("the last publication\n")
    with pytest.raises(DataError, match="summary.json: not found; allowed: the reports folder of a finished run"):
        publish_results(reports, generator, faces, out, detector=OneFace())
    assert (out / "report.md").read_text() == "the last publication\n"
    with pytest.raises(DataError, match="generator.pt: not found"):
        publish_results(reports, tmp_path / "none" / "generator.pt", faces, out, detector=OneFace())


@pytest.mark.parametrize("content, message", [
    ("{", "not an alignment template"),
    (json.dumps({"landmarks": [[0.3, 0.4]] * 4}), r"landmarks of shape \[4, 2\]"),
    (json.dumps({"landmarks": [[0.3, 1.4]] * 5}), r"allowed: 5 \[x, y\] pairs inside \(0, 1\)"),
])
def test_a_bad_alignment_template_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "alignment_template.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as error:
        load_template(path, detector=None)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_the_published_seed_is_the_one_with_the_lowest_validation_lpips_at_the_end(tmp_path):
    import json

    import pandas as pd

    from faceres.pipeline.publish import best_validated_generator

    finals = {"main": 0.36, "main_s1": 0.33, "main_s2": 0.35}
    for method, final in finals.items():
        folder = tmp_path / "trajectories" / method
        folder.mkdir(parents=True)
        # main_s2 is the best earlier in training and per bin: only the end, over all faces, counts
        rows = [{"step": 100, "bin": "all", "lpips": 0.2 if method == "main_s2" else 0.5},
                {"step": 200, "bin": "all", "lpips": final}, {"step": 200, "bin": "x0.8-2", "lpips": 0.1}]
        pd.DataFrame(rows).to_csv(folder / "validation.csv", index=False)
    generator, why = best_validated_generator(tmp_path / "models", tmp_path / "trajectories", list(finals))
    assert generator == tmp_path / "models" / "main_s1" / "generator.pt"
    assert why["published"] == "main_s1" and why["validation_lpips"] == finals
    json.dumps(why)  # written as generator.json
    generator, why = best_validated_generator(tmp_path / "models", tmp_path / "none", ["main", "main_s1"])
    assert generator == tmp_path / "models" / "main" / "generator.pt" and "no validation" in why["criterion"]


def test_verdict_changes_set_the_last_study_beside_this_one(tmp_path):
    import pandas as pd

    from faceres.pipeline.publish import _changes_markdown, verdict_changes

    old = pd.DataFrame({"claim": ["A", "A", "B"], "metric": ["psnr", "fid", "psnr"],
                        "verdict": ["shown", "contradicted", "within noise"], "difference": [0.5, 3.0, 0.1]})
    new = pd.DataFrame({"claim": ["A", "A", "C"], "metric": ["psnr", "fid", "psnr"], "scale_bin": [None, None, "x2-4"],
                        "verdict": ["shown", "undecided at this scale", "shown"], "difference": [0.4, -1.0, 0.2]})
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    changes = verdict_changes(tmp_path / "old.csv", tmp_path / "new.csv").set_index(["claim", "metric"])
    assert changes.loc[("A", "psnr"), ["verdict_before", "verdict_now", "changed"]].tolist() == ["shown", "shown", False]
    assert changes.loc[("A", "fid"), ["verdict_before", "verdict_now", "changed"]].tolist() == [
        "contradicted", "undecided at this scale", True]
    assert changes.loc[("B", "psnr"), "verdict_now"] == "not checked"  # dropped since
    assert changes.loc[("C", "psnr"), "verdict_before"] == "not checked"  # new
    markdown = _changes_markdown(verdict_changes(tmp_path / "old.csv", tmp_path / "new.csv"))
    assert "| A | fid | contradicted | +3 | **undecided at this scale** | -1 |" in markdown
    assert "| C | psnr, x2-4 | not checked | — | **shown** | +0.2 |" in markdown
    first = verdict_changes(None, tmp_path / "new.csv")  # nothing published before
    assert set(first["verdict_before"]) == {"not checked"}
