"""Publishing a finished run into the repository (the reference study's ``docs/results/``, issue 14).

:func:`publish_results` copies what a reader and a user need from the workspace and writes nothing by hand:

- from ``reports/``: ``report.md``, ``summary.json``, ``tables/`` (Markdown and CSV), ``figures/`` (PNG) and
  ``plots/`` (the figures' data);
- the main arm's ``generator.pt`` with ``generator.pt.sha256`` (``sha256sum -c`` format), carrying the
  alignment template measured on its training faces (also written as ``alignment_template.json``), so
  ``faceres restore`` aligns photos for it right after a clone, from any folder;
- into the README, between :data:`BEGIN` and :data:`END`: Tables 6 and 7, the alpha trade-off and Table 8's
  Ours vs DEG rows beside the paper's, a qualitative figure, the claims and the SR table (the text around the
  markers, the hand-written reading of the results, is left alone).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from faceres.core.errors import DataError
from faceres.core.files import atomic_directory, sha256_file

BEGIN = "<!-- results:begin (faceres publish-results writes this part) -->"
END = "<!-- results:end -->"
REPORT_FILES = ("report.md", "summary.json")
REPORT_FOLDERS = {"tables": (".md", ".csv"), "figures": (".png",), "plots": (".csv",)}
README_TABLES = ("table6", "table7", "alpha", "table8")  # then the qualitative figure, then:
README_AFTER_FIGURE = ("claims", "sr")
TABLE8_ROWS = ("DEG", "Ours")
QUALITATIVE = "qualitative_1.png"  # Figure 9: the skip arms side by side


def _copy_reports(reports: Path, out: Path) -> None:
    for name in REPORT_FILES:
        if not (reports / name).is_file():
            raise DataError(f"{reports / name}: not found; allowed: the reports folder of a finished run "
                            "(dvc repro or make study first)")
        shutil.copy2(reports / name, out / name)
    for folder, suffixes in REPORT_FOLDERS.items():
        (out / folder).mkdir()
        for path in sorted((reports / folder).glob("*")):
            if path.suffix in suffixes:
                shutil.copy2(path, out / folder / path.name)


def keep_rows(markdown_table: str, labels: tuple[str, ...]) -> str:
    """A table of :meth:`faceres.report.comparison_table.Table.to_markdown` with only the body rows whose first cell is in
    ``labels`` (title, header and notes kept)."""
    lines, out, body = markdown_table.splitlines(), [], False
    for line in lines:
        if not line.startswith("|"):
            out.append(line)
            body = False
            continue
        if re.fullmatch(r"\|[-:| ]+\|", line):
            body = True
            out.append(line)
            continue
        if not body or line.split("|")[1].strip() in labels:
            out.append(line)
    return "\n".join(out)


def results_section(out: Path, readme: Path) -> str:
    """The README's generated part: the published tables, each as the report printed it, and a figure."""
    link = Path(os.path.relpath(out, readme.parent)).as_posix()
    def tables(names):
        for name in names:
            path = out / "tables" / f"{name}.md"
            if path.is_file():
                text = path.read_text(encoding="utf-8").rstrip("\n")
                yield from (keep_rows(text, TABLE8_ROWS) if name == "table8" else text, "")

    parts = [BEGIN, "", *tables(README_TABLES)]
    if (out / "figures" / QUALITATIVE).is_file():
        parts += [f"![Restorations by number of skip connections]({link}/figures/{QUALITATIVE})", ""]
    parts += [*tables(README_AFTER_FIGURE), END]
    return "\n".join(parts)


def update_readme(readme: Path, section: str) -> None:
    """Replace the part between the markers; an error when they are not both there, once, in order."""
    text = readme.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise DataError(f"{readme}: needs the lines {BEGIN!r} and {END!r} once each, in that order, around the "
                        "part publish-results writes")
    head, rest = text.split(BEGIN)
    tail = rest.split(END, 1)[1]
    readme.write_text(head + section + tail, encoding="utf-8")


def _publish_generator(generator: Path, template, measured_on: str, out: Path) -> str:
    """out/generator.pt: the trained generator with its alignment template as an extra key, so `faceres restore`
    aligns photos like its training faces from any folder; and out/generator.pt.sha256. Returns the digest
    (of the published file: the weights are the trained file's, the template key is added)."""
    from faceres.restore.photos import attach_template

    attach_template(generator, template, measured_on, out=out / "generator.pt")
    digest = sha256_file(out / "generator.pt")
    (out / "generator.pt.sha256").write_text(f"{digest}  generator.pt\n")
    return digest


def publish_results(reports: str | Path, generator: str | Path, aligned_faces: str | Path, out: str | Path,
                    readme: str | Path | None = None, detector=None) -> dict[str, str]:
    """``out`` replaced (atomically) by the published run; returns {"generator": path, "sha256": digest}.
    ``detector``: :class:`faceres.restore.photos.FaceDetector` for the alignment template (default: dlib's)."""
    from faceres.restore.photos import load_face_detector, alignment_template, save_template

    reports, generator, out = Path(reports), Path(generator), Path(out)
    if not generator.is_file():
        raise DataError(f"{generator}: not found; allowed: the main arm's generator.pt of a finished run")
    template = alignment_template(aligned_faces, detector or load_face_detector())
    with atomic_directory(out) as tmp:
        _copy_reports(reports, tmp)
        digest = _publish_generator(generator, template, f"{aligned_faces}", tmp)
        save_template(template, tmp / "alignment_template.json", measured_on=f"{aligned_faces}")
    if readme is not None:
        update_readme(Path(readme), results_section(out, Path(readme)))
    return {"generator": str(out / "generator.pt"), "sha256": digest}
