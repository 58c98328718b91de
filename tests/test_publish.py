"""`faceres publish-results`: what lands in docs/results and in the README, on a hand-made finished run."""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

import torch

from faceres.core.errors import DataError
from faceres.models.build import ModelConfig, generator_from_config
from faceres.models.io import load_generator, save_generator
from faceres.restore.photos import DETECT_SIZE, attach_template, choose_template, generator_template, load_template
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


def _trained_generator(path):
    """A generator file as training writes it (save_generator: no alignment template)."""
    config = ModelConfig(resolution=64, skips=2, width=0.125)
    torch.manual_seed(0)
    save_generator(path, generator_from_config(config), config, arm="main", step=22)
    return path


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
    generator = _trained_generator(root / "models" / "main" / "generator.pt")
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

    digest = hashlib.sha256((out / "generator.pt").read_bytes()).hexdigest()
    assert published == {"generator": str(out / "generator.pt"), "sha256": digest}
    # the published generator: the trained weights stored as float16, plus the template of its training faces
    trained, public = torch.load(generator, weights_only=True), torch.load(out / "generator.pt", weights_only=True)
    assert public.keys() - trained.keys() == {"alignment_template", "stored_dtype"}
    assert public["state_dict"].keys() == trained["state_dict"].keys()
    for k, v in trained["state_dict"].items():
        assert public["state_dict"][k].dtype == torch.float16
        assert torch.equal(public["state_dict"][k], v.half())  # float16 rounding of the trained value, nothing else
    landmarks, measured_on = generator_template(out / "generator.pt")
    np.testing.assert_allclose(landmarks, LANDMARKS / DETECT_SIZE, atol=1e-6)
    assert measured_on == str(faces)
    assert generator_template(generator) is None  # training's own file is left as training wrote it
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


# --- the generator file carries its alignment template (issue 25, item 4) ------------------------------------

def test_a_generator_with_its_template_still_loads_and_restores_as_before(tmp_path):
    trained = _trained_generator(tmp_path / "generator.pt")
    attach_template(trained, LANDMARKS / DETECT_SIZE, "celeba train faces", out=tmp_path / "published.pt")
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    plain, carrying = load_generator(trained), load_generator(tmp_path / "published.pt")
    with torch.no_grad():
        assert torch.equal(plain(images, noise_mode="const"), carrying(images, noise_mode="const"))
    landmarks, measured_on = generator_template(tmp_path / "published.pt")
    np.testing.assert_allclose(landmarks, LANDMARKS / DETECT_SIZE, atol=1e-6)
    assert measured_on == "celeba train faces"


def test_restore_aligns_like_the_generators_template_by_default_and_says_which(tmp_path):
    carrying = tmp_path / "published.pt"
    attach_template(_trained_generator(tmp_path / "generator.pt"), LANDMARKS / DETECT_SIZE, "celeba faces",
                    out=carrying)
    faces = tmp_path / "prepared"  # a workspace's prepared faces: another template, ignored for `carrying`
    faces.mkdir()
    for i in range(6):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(faces / f"{i}.png")
    other = np.array([[60, 100], [196, 100], [128, 160], [80, 200], [176, 200]], float)

    class OtherFace(OneFace):
        def __call__(self, image, upsample=1):
            return [other.copy()]

    template, which = choose_template(carrying, None, faces, OtherFace())
    np.testing.assert_allclose(template, LANDMARKS / DETECT_SIZE, atol=1e-6)
    assert which == f"aligning faces like the generator's training faces (the template in {carrying}, measured " \
                    "on celeba faces)"
    template, which = choose_template(tmp_path / "generator.pt", None, faces, OtherFace())  # none carried
    np.testing.assert_allclose(template, other / DETECT_SIZE)
    assert which.startswith(f"{tmp_path / 'generator.pt'} carries no alignment template: aligning faces like {faces}")
    chosen = tmp_path / "chosen.json"  # --aligned-like wins over the carried template
    chosen.write_text(json.dumps({"landmarks": (other / DETECT_SIZE).tolist(), "measured_on": "x"}))
    template, which = choose_template(carrying, chosen, faces, OtherFace())
    np.testing.assert_allclose(template, other / DETECT_SIZE)
    assert which == f"aligning faces like {chosen} (--aligned-like)"


def test_a_generator_without_a_template_outside_a_workspace_is_one_line_naming_both(tmp_path):
    trained = _trained_generator(tmp_path / "generator.pt")
    with pytest.raises(DataError) as error:
        choose_template(trained, None, tmp_path / "data" / "prepared" / "images" / "train", OneFace())
    message = str(error.value)
    assert message.startswith(f"{trained} carries no alignment template and {tmp_path / 'data'}")
    assert "allowed: --aligned-like" in message and "\n" not in message


def test_a_template_only_attaches_to_a_generator_file(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="other.pt: not a faceres generator file"):
        attach_template(tmp_path / "other.pt", LANDMARKS / DETECT_SIZE, "x")
    with pytest.raises(DataError, match=r"allowed: 5 \[x, y\] pairs inside \(0, 1\)"):
        attach_template(_trained_generator(tmp_path / "g.pt"), LANDMARKS, "x")  # pixels, not fractions
