"""Publishing a finished run into the repository (the reference study's ``docs/results/``, issue 14).

:func:`publish_results` copies what a reader and a user need from the workspace and writes nothing by hand:

- from ``reports/``: ``report.md``, ``summary.json``, ``tables/`` (Markdown and CSV), ``figures/`` (PNG) and
  ``plots/`` (the figures' data);
- the main arm's ``generator.pt`` of its best-validated training seed (:func:`best_validated_generator`: the
  lowest validation LPIPS at the end of training; ``generator.json`` says which and why) with
  ``generator.pt.sha256`` (``sha256sum -c`` format), carrying the alignment template measured on its training
  faces (also written as ``alignment_template.json``), so ``faceres restore`` aligns photos for it right after
  a clone, from any folder;
- ``tables/verdict_changes``: each claim's verdict in the study published before and in this one
  (:func:`verdict_changes`);
- into the README, between :data:`BEGIN` and :data:`END`: Tables 6 and 7, the alpha trade-off and Table 8's
  Ours vs DEG rows beside the paper's, a qualitative figure and the SR table, with links to the claims and the
  verdict changes
  (the text around the markers, the hand-written reading of the results, is left alone).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from faceres.core.errors import DataError
from faceres.core.files import atomic_directory, sha256_file

BEGIN = "<!-- results:begin (faceres publish-results writes this part) -->"
END = "<!-- results:end -->"
REPORT_FILES = ("report.md", "summary.json")
REPORT_FOLDERS = {"tables": (".md", ".csv"), "figures": (".png",), "plots": (".csv",)}
CHANGES = "verdict_changes"  # tables/verdict_changes.{md,csv}: the last published verdicts beside the new ones
README_TABLES = ("table6", "table7", "alpha", "table8")  # then the qualitative figure, then:
README_AFTER_FIGURE = ("sr",)
# linked, not copied: with a row per claim, metric and downsampling bin they would double the README
README_LINKED = {"claims": "Every claim's verdict, with its interval, its reason and the scale it holds at",
                 CHANGES: "Each verdict in the study published before beside this one's"}
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
    parts += [*tables(README_AFTER_FIGURE)]
    parts += [f"- {what}: [`tables/{name}.md`]({link}/tables/{name}.md)." for name, what in README_LINKED.items()
              if (out / "tables" / f"{name}.md").is_file()]
    parts += ["", END]
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


SELECTION_FILE = "generator.json"


def verdict_changes(old_claims: Path | None, new_claims: Path) -> pd.DataFrame:
    """One row per claim and metric (and bin) of the new claims table or the old: its verdict and Δ in the last
    published study (``old_claims``, its tables/claims.csv; None: there was none) and now, and whether the verdict
    changed. A line in only one of them says so ("not checked")."""
    keys = ["claim", "metric", "scale_bin"]

    def read(path: Path | None) -> pd.DataFrame:
        if path is None or not path.is_file():
            return pd.DataFrame(columns=[*keys, "verdict", "difference"])
        table = pd.read_csv(path)
        if "scale_bin" not in table.columns:
            table["scale_bin"] = None
        return table[[*keys, "verdict", "difference"]]

    merged = read(old_claims).merge(read(new_claims), on=keys, how="outer", suffixes=("_before", "_now"))
    for when in ("before", "now"):
        merged[f"verdict_{when}"] = merged[f"verdict_{when}"].fillna("not checked")
    merged["changed"] = merged["verdict_before"] != merged["verdict_now"]
    return merged[[*keys, "verdict_before", "difference_before", "verdict_now", "difference_now", "changed"]]


def _changes_markdown(changes: pd.DataFrame) -> str:
    lines = ["**Verdicts: the last published study and this one**", "",
             "| Claim | Metric | Before | Δ before | Now | Δ now (mean over seeds) |", "|---|---|---|---|---|---|"]
    def number(value) -> str:
        return "—" if value is None or value != value else f"{value:+.4g}"  # NaN: no number

    for row in changes.to_dict("records"):
        metric = row["metric"] + (f", {row['scale_bin']}" if isinstance(row["scale_bin"], str) else "")
        now = f"**{row['verdict_now']}**" if row["changed"] else row["verdict_now"]
        lines.append(f"| {row['claim']} | {metric} | {row['verdict_before']} | {number(row['difference_before'])} | "
                     f"{now} | {number(row['difference_now'])} |")
    lines += ["", "- Bold: the verdict changed. The last study decided on one training seed by the test images' "
              "interval; this one by the rule of the claims table (every seed, and a stable validation trajectory)."]
    return "\n".join(lines) + "\n"


def best_validated_generator(models: Path, trajectories: Path, methods: Sequence[str]) -> tuple[Path, dict]:
    """(generator.pt, why) of the run among `methods` (the main model's training seeds) with the lowest LPIPS on
    the validation split at the end of its training (trajectories/METHOD, all faces): chosen without looking at
    the test split. Without trajectories: the first method's, saying so."""
    from faceres.pipeline.layout import trajectory_file
    from faceres.train.outputs import GENERATOR_FILE

    final = {}
    for method in methods:
        path = trajectory_file(trajectories, method)
        if path.is_file():
            table = pd.read_csv(path)
            table = table[table["bin"] == "all"]
            if len(table):
                final[method] = float(table.sort_values("step")["lpips"].iloc[-1])
    if not final:
        return models / methods[0] / GENERATOR_FILE, {"published": methods[0], "criterion": "the main run (no "
                                                      "validation trajectories to choose a seed by)"}
    best = min(final, key=final.get)
    return models / best / GENERATOR_FILE, {
        "published": best, "criterion": "lowest LPIPS on the validation split at the end of training, among the "
                                        "main model's training seeds", "validation_lpips": final}


PUBLISHED_DTYPE = "float16"  # half the bytes of float32: the committed file stays under 2 MB at the study's width


def _publish_generator(generator: Path, template, measured_on: str, out: Path) -> str:
    """out/generator.pt: the trained generator with its alignment template as an extra key, so `faceres restore`
    aligns photos like its training faces from any folder, its weights stored as float16 (``stored_dtype``;
    load_generator copies them into the float32 model); and out/generator.pt.sha256. Returns the digest of the
    published file."""
    import torch

    from faceres.core.files import load_torch, save_torch
    from faceres.restore.photos import attach_template

    attach_template(generator, template, measured_on, out=out / "generator.pt")
    state = load_torch(out / "generator.pt")
    state["state_dict"] = {k: v.to(getattr(torch, PUBLISHED_DTYPE)) if v.is_floating_point() else v
                           for k, v in state["state_dict"].items()}
    save_torch({**state, "stored_dtype": PUBLISHED_DTYPE}, out / "generator.pt")
    digest = sha256_file(out / "generator.pt")
    (out / "generator.pt.sha256").write_text(f"{digest}  generator.pt\n")
    return digest


def publish_results(reports: str | Path, generator: str | Path, aligned_faces: str | Path, out: str | Path,
                    readme: str | Path | None = None, detector=None, selection: dict | None = None) -> dict[str, str]:
    """``out`` replaced (atomically) by the published run; returns {"generator": path, "sha256": digest}.
    ``detector``: :class:`faceres.restore.photos.FaceDetector` for the alignment template (default: dlib's);
    ``selection``: why this generator (:func:`best_validated_generator`), written as generator.json."""
    from faceres.restore.photos import alignment_template, load_face_detector, save_template

    reports, generator, out = Path(reports), Path(generator), Path(out)
    if not generator.is_file():
        raise DataError(f"{generator}: not found; allowed: the main arm's generator.pt of a finished run")
    template = alignment_template(aligned_faces, detector or load_face_detector())
    with tempfile.TemporaryDirectory() as scratch:
        old_claims = None
        if (out / "tables" / "claims.csv").is_file():  # kept aside: `out` is replaced below
            old_claims = Path(shutil.copy2(out / "tables" / "claims.csv", Path(scratch) / "claims.csv"))
        with atomic_directory(out) as tmp:
            _copy_reports(reports, tmp)
            if (tmp / "tables" / "claims.csv").is_file():
                changes = verdict_changes(old_claims, tmp / "tables" / "claims.csv")
                changes.to_csv(tmp / "tables" / f"{CHANGES}.csv", index=False)
                (tmp / "tables" / f"{CHANGES}.md").write_text(_changes_markdown(changes), encoding="utf-8")
            digest = _publish_generator(generator, template, f"{aligned_faces}", tmp)
            save_template(template, tmp / "alignment_template.json", measured_on=f"{aligned_faces}")
            if selection is not None:
                (tmp / SELECTION_FILE).write_text(json.dumps({**selection, "sha256": digest}, indent=2) + "\n")
    if readme is not None:
        update_readme(Path(readme), results_section(out, Path(readme)))
    return {"generator": str(out / "generator.pt"), "sha256": digest}
