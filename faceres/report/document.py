"""The report: ``report.md`` (beside its figure files) and a self-contained ``report.html`` (figures inlined as
base64 data URIs, inline CSS, no scripts or links out: it opens offline, e-mailed as one file)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from faceres.config.schema import Config
from faceres.core.errors import DataError
from faceres.report.images import data_uri
from faceres.report.tables import Table

PAPER_PROFILE = "paper"
PAPER_DATA = "FFHQ (train) / CelebA-HQ (test), 512 px"

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("faceres.report", "."), autoescape=True, undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


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
    """report.html from the template beside this module (faceres/report/report.html.j2)."""
    inlined = []
    for fig in figures:
        if fig.png is None:
            inlined.append((fig, None))
            continue
        try:
            inlined.append((fig, data_uri(Path(fig.png).read_bytes())))
        except OSError as exc:
            raise DataError(f"{fig.png}: cannot read figure for the report ({exc.strerror or exc})") from None
    return _TEMPLATES.get_template("report.html.j2").render(
        title=title, statement=comparability_statement(info), info=info, weights=_weights_rows(info.weights),
        tables=tables, figures=inlined,
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


def run_notes(config: Config) -> tuple[str, ...]:
    """The report's notes on how this run was made, from its configuration (shown under the run's facts)."""
    aug, train = config.train.augment, config.train
    return (
        f"Objective: L = {train.l1_weight:g} L1 + {train.perceptual_weight:g} L_feature + {train.style_weight:g} "
        f"L_style + alpha x {train.adversarial_weight:g} L_adv (alpha = {config.alpha:g} for the main model): the "
        f"weights give each term an equal share of the gradient on the output image at alpha = 1, measured at unit "
        f"weights (docs/calibration.md, fifth round); alpha scales the adversarial share.",
        f"Adversarial augmentation: mode {aug.mode}, probability {aug.prob}, worst of {aug.candidates}, "
        f"{aug.pgd_steps} PGD step(s) of {aug.pgd_step} of each range, pixel eps {aug.pixel_eps}/255.",
        f"Restorations use the generator's {'EMA' if config.train.ema else 'raw'} weights; "
        f"{config.restore.noise_seeds} noise seeds per input; metrics other than PSNR's spread use seed 0.",
        f"iPrecision/iRecall features: identity = dlib ResNet-128 (the paper used FaceNet), Inception = "
        f"pytorch-fid pool3. Skip nodes at {config.resolution} px: counted from 8 px.",
        f"Training: {config.scale.epochs} epoch(s), batch {config.scale.batch}, width x{config.scale.width}.",
        "Super-resolution: no model is trained for 8x or 16x SR; the BFR model restores the bicubic-upsampled "
        "low-resolution input zero-shot (the paper trained one per task).",
    )
