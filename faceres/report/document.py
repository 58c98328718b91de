"""The report: ``report.md`` (beside its figure files) and a self-contained ``report.html`` (figures inlined as
base64 data URIs, inline CSS, no scripts or links out: it opens offline, e-mailed as one file)."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faceres.errors import DataError
from faceres.report.images import data_uri
from faceres.report.tables import Table

PAPER_PROFILE = "paper"
PAPER_DATA = "FFHQ (train) / CelebA-HQ (test), 512 px"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1500px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.warning{background:#fff4e5;border-left:4px solid #f0a020;padding:.6rem 1rem}
table.results,table.info{border-collapse:collapse;margin:.8rem 0;font-size:.85rem}
table.results th,table.results td,table.info th,table.info td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
table.results td:first-child,table.results td:nth-child(2),table.info td,table.info th{text-align:left}
table.results th{background:#f3f4f6;text-align:center}table.results td{white-space:nowrap}table.results caption{font-weight:600;text-align:left;padding:.3rem 0}
table.results tbody tr:nth-child(even){background:#fafafa}ul.notes{font-size:.8rem;color:#555}
code{font-size:.85em}figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85rem;color:#444}.scroll{overflow-x:auto}.missing{color:#a33}
"""


@dataclass(frozen=True)
class RunInfo:
    """What the report was made from. ``weights``: {file or model name: sha256}; ``notes``: documented
    decisions to state (e.g. the adversarial-augmentation mode), one sentence each."""

    profile: str
    data_source: str
    git_commit: str | None = None
    date: str | None = None
    resolution: int | None = None
    weights: Mapping[str, str] = field(default_factory=dict)
    notes: Sequence[str] = ()

    def rows(self) -> list[tuple[str, str]]:
        rows = [("Profile", self.profile), ("Data source", self.data_source)]
        if self.resolution is not None:
            rows.append(("Resolution", f"{self.resolution} px"))
        rows += [("Git commit", self.git_commit or "not recorded"), ("Date", self.date or "not recorded")]
        return rows


def comparability_statement(info: RunInfo) -> str | None:
    """A plain sentence when the run's absolute numbers cannot be compared with the paper's; None otherwise."""
    reasons = []
    if info.profile != PAPER_PROFILE:
        size = f" ({info.resolution} px, narrow networks, few epochs)" if info.resolution else ""
        reasons.append(f"the '{info.profile}' profile{size} instead of the paper's 512 px, 400 epochs, 8 GPUs")
    if info.data_source == "synthetic":
        reasons.append("synthetic faces rendered by faceres instead of real photographs")
    if not reasons:
        return None
    return (
        "This is a reduced reproduction: it uses " + " and ".join(reasons) + ". Its absolute numbers are NOT "
        f"comparable to the paper's ({PAPER_DATA}); compare the direction of differences between arms "
        "(more skips, augmentation on/off, larger alpha), not the values or the Δ columns."
    )


@dataclass(frozen=True)
class ReportFigure:
    """A figure in the report: its PNG (embedded in the HTML), optional PDF, caption; or, with ``png`` None,
    the reason it could not be drawn (shown in its place)."""

    title: str
    png: Path | None
    caption: str = ""
    pdf: Path | None = None
    missing: str = ""


def _weights_rows(weights: Mapping[str, str]) -> list[tuple[str, str]]:
    return sorted(weights.items())


def render_markdown(out_dir: Path, tables: Sequence[Table], figures: Sequence[ReportFigure], info: RunInfo, title: str) -> str:
    parts = [f"# {title}", ""]
    statement = comparability_statement(info)
    if statement:
        parts += [f"> **Not comparable in absolute value.** {statement}", ""]
    parts += ["## Run", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.rows()] + [""]
    if info.weights:
        parts += ["Pretrained weights used:", "", "| weights | sha256 |", "|---|---|"]
        parts += [f"| {name} | `{digest}` |" for name, digest in _weights_rows(info.weights)] + [""]
    else:
        parts += ["Pretrained weights used: none recorded.", ""]
    if info.notes:
        parts += ["Decisions:", ""] + [f"- {note}" for note in info.notes] + [""]
    parts += ["## Tables", ""]
    for table in tables:
        parts += [table.to_markdown(), ""]
    parts += ["## Figures", ""]
    for fig in figures:
        parts += [f"### {fig.title}", ""]
        if fig.png is None:
            parts += [f"_Not drawn: {fig.missing}_", ""]
            continue
        rel = Path(os.path.relpath(fig.png, out_dir)).as_posix()
        parts += [f"![{fig.title}]({rel})", ""]
        if fig.caption:
            parts += [fig.caption, ""]
        if fig.pdf is not None:
            parts += [f"(PDF: [{fig.pdf.name}]({Path(os.path.relpath(fig.pdf, out_dir)).as_posix()}))", ""]
    return "\n".join(parts)


def render_html(tables: Sequence[Table], figures: Sequence[ReportFigure], info: RunInfo, title: str) -> str:
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    statement = comparability_statement(info)
    if statement:
        body.append(f'<p class="warning" id="comparability"><b>Not comparable in absolute value.</b> {esc(statement)}</p>')
    body.append("<h2>Run</h2><table class=\"info\">" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in info.rows()) + "</table>")
    if info.weights:
        body.append("<p>Pretrained weights used:</p><table class=\"info\"><tr><th>weights</th><th>sha256</th></tr>"
                    + "".join(f"<tr><td>{esc(n)}</td><td><code>{esc(d)}</code></td></tr>" for n, d in _weights_rows(info.weights))
                    + "</table>")
    else:
        body.append("<p>Pretrained weights used: none recorded.</p>")
    if info.notes:
        body.append("<p>Decisions:</p><ul>" + "".join(f"<li>{esc(n)}</li>" for n in info.notes) + "</ul>")
    body.append("<h2>Tables</h2>")
    body += [f'<div class="scroll">{table.to_html()}</div>' for table in tables]
    body.append("<h2>Figures</h2>")
    for fig in figures:
        if fig.png is None:
            body.append(f"<h3>{esc(fig.title)}</h3><p class=\"missing\">Not drawn: {esc(fig.missing)}</p>")
            continue
        try:
            uri = data_uri(Path(fig.png).read_bytes())
        except OSError as exc:
            raise DataError(f"{fig.png}: cannot read figure for the report ({exc.strerror or exc})") from None
        body.append(
            f"<h3>{esc(fig.title)}</h3><figure><img src=\"{uri}\" alt=\"{esc(fig.title)}\">"
            + (f"<figcaption>{esc(fig.caption)}</figcaption>" if fig.caption else "") + "</figure>"
        )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(
    out_dir: str | Path,
    *,
    tables: Sequence[Table],
    figures: Sequence[ReportFigure],
    run_info: RunInfo,
    title: str = "faceres: reproduction of Rethinking Deep Face Restoration (Zhao et al. 2022)",
) -> dict[str, Path]:
    """Write ``report.md`` and the self-contained ``report.html`` into ``out_dir``; returns {"md", "html"} paths.

    Figures' PNGs must already exist (the Markdown links them relative to ``out_dir``; the HTML inlines them).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "report.md", "html": out_dir / "report.html"}
    paths["md"].write_text(render_markdown(out_dir, tables, figures, run_info, title), encoding="utf-8")
    paths["html"].write_text(render_html(tables, figures, run_info, title), encoding="utf-8")
    return paths
