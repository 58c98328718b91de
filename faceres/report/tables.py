"""The paper's appendix tables (6, 7, 8 and the alpha trade-off) from our metrics files, beside the paper's values.

Every table is a :class:`Table`: ``data`` (numbers, one row per table row, for CSV / ``dvc metrics``), the
rendered cells (``header`` + ``rows``, for Markdown, LaTeX and HTML) and ``notes`` (footnotes saying how
each number was made). Cell vocabulary, the same in every table:

- ``not run``: no metrics file for that arm (we did not train / evaluate it);
- ``not provided``: no metrics file for an external method (DFDNet, GFPGAN, GPEN outputs are the user's to
  supply); ``n/a``: the run exists but that metric is absent from its file;
- ``not in paper``: the paper printed no such row; ``—``: no difference can be formed.

``Δ`` is always ours minus the paper's value. Which methods fill which row is an explicit mapping argument
(e.g. ``{0: "skips0", 4: "skips4"}``), so a table never guesses from directory names.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from scipy import stats

from faceres.errors import ConfigError
from faceres.report.inputs import MetricsFile, load_paper_numbers

PSNR_SPREADS = ("seed_std", "ci95")
TABLE8_LABELS = {"DEG": "deg", "DFDNet": "dfdnet", "GFPGAN": "gfpgan", "GPEN": "gpen", "Ours": "ours"}
EXTERNAL_METHODS = ("DFDNet", "GFPGAN", "GPEN")
DASH = "—"


@dataclass(frozen=True)
class Column:
    """One metric column group: ``metric`` key, printed ``header``, which direction is better, decimals."""

    metric: str
    header: str
    higher_is_better: bool
    decimals: int

    @property
    def title(self) -> str:
        return f"{self.header} {'↑' if self.higher_is_better else '↓'}"


PSNR = Column("psnr", "PSNR", True, 2)
SSIM = Column("ssim", "SSIM", True, 4)
LPIPS = Column("lpips", "LPIPS", False, 4)
LPIPS_3 = Column("lpips", "LPIPS", False, 3)  # Table 8 prints three decimals
FID = Column("fid", "FID", False, 2)
IPRECISION = Column("iprecision", "iPrecision", True, 3)
PREFERENCE = Column("preference", "Preference (%)", True, 1)


@dataclass(frozen=True)
class Measured:
    """Our value for one cell: ``value`` (None: missing, shown as ``missing``), an optional ``spread`` (shown
    ``±``) or ``interval`` (shown ``[low, high]``), and ``extra`` numbers that go to the CSV only."""

    value: float | None
    spread: float | None = None
    interval: tuple[float, float] | None = None
    missing: str = "n/a"
    extra: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """A rendered table. ``header`` is a list of (group, sub-headers); ``rows`` hold the display strings."""

    name: str
    title: str
    header: tuple[tuple[str, tuple[str, ...]], ...]
    rows: tuple[tuple[str, ...], ...]
    data: pd.DataFrame
    notes: tuple[str, ...] = ()

    @property
    def flat_header(self) -> list[str]:
        return [f"{group} {sub}".strip() if sub != group else group for group, subs in self.header for sub in subs]

    def to_markdown(self) -> str:
        def line(cells) -> str:
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

        out = [f"**{self.title}**", "", line(self.flat_header), "|" + "|".join("---" for _ in self.flat_header) + "|"]
        out += [line(row) for row in self.rows]
        if self.notes:
            out += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(out) + "\n"

    def to_latex(self) -> str:
        n_cols = len(self.flat_header)
        align = "ll" + "r" * (n_cols - 2)  # row label and run name, then numbers
        top, rules, start = [], [], 1
        for group, subs in self.header:
            if len(subs) > 1 or subs[0] != group:
                top.append(rf"\multicolumn{{{len(subs)}}}{{c}}{{{latex_escape(group)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + len(subs) - 1}}}")
            else:
                top.append("")
            start += len(subs)
        bottom = [latex_escape(group if sub == group else sub) for group, subs in self.header for sub in subs]
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(self.title)}}}",
            rf"\label{{tab:{self.name}}}",
            r"\resizebox{\linewidth}{!}{%",
            rf"\begin{{tabular}}{{{align}}}",
            r"\toprule",
        ]
        if rules:
            lines += [" & ".join(top) + r" \\", " ".join(rules)]
        lines += [" & ".join(bottom) + r" \\", r"\midrule"]
        lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}}"]
        if self.notes:
            lines += [r"\par\smallskip\footnotesize"] + [latex_escape(note) + r"\\" for note in self.notes]
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        grouped = any(len(subs) > 1 or subs[0] != group for group, subs in self.header)
        head = []
        if grouped:
            cells = []
            for group, subs in self.header:
                if len(subs) == 1 and subs[0] == group:
                    cells.append(f'<th rowspan="2">{html.escape(group)}</th>')
                else:
                    cells.append(f'<th colspan="{len(subs)}">{html.escape(group)}</th>')
            head.append("<tr>" + "".join(cells) + "</tr>")
            subs_row = [s for group, subs in self.header for s in subs if not (len(subs) == 1 and subs[0] == group)]
            head.append("<tr>" + "".join(f"<th>{html.escape(s)}</th>" for s in subs_row) + "</tr>")
        else:
            head.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in self.flat_header) + "</tr>")
        body = ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows]
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f'<table class="results" id="{html.escape(self.name)}">'
            f"<caption>{html.escape(self.title)}</caption>"
            f"<thead>{''.join(head)}</thead><tbody>{''.join(body)}</tbody></table>"
            + (f'<ul class="notes">{notes}</ul>' if notes else "")
        )

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``<name>.csv``, ``<name>.md`` and ``<name>.tex`` into ``out_dir``; returns their paths by suffix."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {suffix: out_dir / f"{self.name}.{suffix}" for suffix in ("csv", "md", "tex")}
        self.data.to_csv(paths["csv"], index=False, float_format="%.6g")
        paths["md"].write_text(self.to_markdown(), encoding="utf-8")
        paths["tex"].write_text(self.to_latex(), encoding="utf-8")
        return paths


_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$", "ρ": r"$\rho$",
    "α": r"$\alpha$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "—": "---", "−": "$-$", "≥": r"$\geq$", "≤": r"$\leq$",
    "×": r"$\times$", "·": r"$\cdot$",
}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped and the few symbols we print (± Δ ρ α ↑ ↓ —) as math."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def _fmt(value: float, decimals: int, *, signed: bool = False) -> str:
    if signed and round(value, decimals) == 0:
        value = 0.0  # no "-0.00"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _ours_cell(m: Measured, col: Column) -> str:
    if m.value is None:
        return m.missing
    text = _fmt(m.value, col.decimals)
    if m.spread is not None:
        text += f" ± {_fmt(m.spread, col.decimals)}"
    if m.interval is not None:
        text += f" [{_fmt(m.interval[0], col.decimals)}, {_fmt(m.interval[1], col.decimals)}]"
    return text


@dataclass(frozen=True)
class _Row:
    label: str
    method: str | None
    status: str
    ours: Mapping[str, Measured]
    paper: Mapping[str, float] | None  # None: the paper has no such row


def _build(
    name: str,
    title: str,
    label_header: str,
    columns: Sequence[Column],
    rows: Sequence[_Row],
    notes: Sequence[str],
    *,
    compare: bool = True,
    spread_name: Mapping[str, str] | None = None,
    trailing: Sequence[tuple[str, ...]] = (),
) -> Table:
    """Render rows into a Table; with ``compare`` each metric shows ours | paper | Δ, else ours alone."""
    spread_name = spread_name or {}
    header: list[tuple[str, tuple[str, ...]]] = [(label_header, (label_header,)), ("Run", ("Run",))]
    for col in columns:
        header.append((col.title, ("ours", "paper", "Δ") if compare else (col.title,)))
    display, records = [], []
    for row in rows:
        cells = [row.label, row.method if row.status == "run" else (row.method or DASH)]
        record: dict[str, object] = {label_header: row.label, "method": row.method, "status": row.status}
        for col in columns:
            m = row.ours.get(col.metric, Measured(None))
            cells.append(_ours_cell(m, col))
            record[col.metric] = m.value
            if col.metric in spread_name:
                record[f"{col.metric}_{spread_name[col.metric]}"] = m.spread
            if m.interval is not None or col.metric == "preference":
                record[f"{col.metric}_ci_low"], record[f"{col.metric}_ci_high"] = m.interval or (None, None)
            record.update({f"{col.metric}_{k}": v for k, v in m.extra.items()})
            if not compare:
                continue
            paper_value = None if row.paper is None else row.paper.get(col.metric)
            paper_std = None if row.paper is None else row.paper.get(f"{col.metric}_std")
            if row.paper is None:
                cells.append("not in paper")
            elif paper_value is None:
                cells.append(DASH)
            else:
                cells.append(_fmt(paper_value, col.decimals) + (f" ± {_fmt(paper_std, col.decimals)}" if paper_std is not None else ""))
            delta = m.value - paper_value if m.value is not None and paper_value is not None else None
            cells.append(DASH if delta is None else _fmt(delta, col.decimals, signed=True))
            record[f"{col.metric}_paper"] = paper_value
            if any(r.paper and f"{col.metric}_std" in r.paper for r in rows):
                record[f"{col.metric}_paper_std"] = paper_std
            record[f"{col.metric}_delta"] = delta
        display.append(tuple(cells))
        records.append(record)
    display += [tuple(r) for r in trailing]
    data = pd.DataFrame.from_records(records)
    return Table(name=name, title=title, header=tuple(header), rows=tuple(display), data=data, notes=tuple(notes))


def _per_image(run: MetricsFile, metric: str, spread: str | None = None) -> Measured:
    stat = run.per_image.get(metric)
    if stat is None:
        return Measured(None)
    if spread == "seed_std":
        return Measured(stat.mean, spread=stat.seed_std)
    if spread == "ci95":
        return Measured(stat.mean, spread=None if stat.ci95 is None else (stat.ci95[1] - stat.ci95[0]) / 2)
    return Measured(stat.mean)


def _measure(run: MetricsFile | None, col: Column, *, missing: str, psnr_spread: str | None, ipr_k: int, ipr_features: str) -> Measured:
    if run is None:
        return Measured(None, missing=missing)
    if col.metric == "psnr":
        return _per_image(run, "psnr", psnr_spread)
    if col.metric in ("ssim", "lpips"):
        return _per_image(run, col.metric)
    if col.metric == "fid":
        return Measured(run.fid)
    if col.metric == "iprecision":
        return Measured(run.manifold_value("iprecision", ipr_features, ipr_k))
    raise ValueError(f"no metrics-file value for column {col.metric}")


def _check_task(runs: Sequence[MetricsFile], task: str, table: str) -> None:
    for run in runs:
        if run.task != task:
            raise ConfigError(f"{run.path}: task {run.task!r} in {table}; allowed: {task!r}")


def _evaluation_note(runs: Sequence[MetricsFile]) -> str | None:
    """How the runs were evaluated (test images, profile, data), saying so when they differ."""
    if not runs:
        return None
    parts = []
    for attr, what in (("n_images", "test images"), ("profile", "profile"), ("data_source", "data")):
        values = {getattr(r, attr) for r in runs}
        if values == {None}:
            continue
        if len(values) == 1:
            value = values.pop()
            parts.append(f"{value} {what}" if attr == "n_images" else f"{what} {value}")
        else:
            listing = ", ".join(f"{r.method}: {getattr(r, attr)}" for r in runs)
            parts.append(f"{what} DIFFER between runs ({listing})")
    return ("Evaluation: " + "; ".join(parts) + ".") if parts else None


def _psnr_note(runs: Sequence[MetricsFile], psnr_spread: str) -> str:
    if psnr_spread == "seed_std":
        seeds = sorted({r.noise_seeds for r in runs if r.noise_seeds is not None})
        over = f"{'/'.join(map(str, seeds))} restoration noise seeds" if seeds else "restoration noise seeds"
        missing = [r.method for r in runs if "psnr" in r.per_image and r.per_image["psnr"].seed_std is None]
        note = f"PSNR ours: mean ± std of the per-seed mean PSNR over {over} (seed_std)"
        if missing:
            note += f"; no seed_std in {', '.join(missing)} (mean only)"
        return note + ". Paper: mean ± std over runs."
    return (
        "PSNR ours: mean ± half-width of the 95% percentile-bootstrap interval of the mean over test images "
        "((high - low) / 2). Paper: mean ± std over runs (a different spread)."
    )


def _ipr_note(runs: Sequence[MetricsFile], k: int, features: str) -> str:
    backbones = sorted({r.identity_backbone for r in runs if r.identity_backbone}) if features == "identity" else []
    space = f"{features} features" + (f" ({', '.join(backbones)})" if backbones else "")
    return f"iPrecision ours: {space}, neighbourhood size k = {k}. Paper: FaceNet identity features (k not stated)."


def _validate_choices(psnr_spread: str | None, ipr_k: int, ipr_features: str) -> None:
    if psnr_spread is not None and psnr_spread not in PSNR_SPREADS:
        raise ConfigError(f"psnr_spread = {psnr_spread!r}; allowed: {', '.join(PSNR_SPREADS)}")
    if isinstance(ipr_k, bool) or not isinstance(ipr_k, int) or ipr_k < 1:
        raise ConfigError(f"ipr_k = {ipr_k!r}; allowed: a positive integer neighbourhood size")
    if ipr_features not in ("identity", "inception"):
        raise ConfigError(f"ipr_features = {ipr_features!r}; allowed: identity, inception")


def _arms(runs: Mapping[str, MetricsFile], arms: Mapping, task: str, table: str) -> dict:
    """{arm key: run or None}; the used runs must be of ``task``."""
    found = {key: runs.get(method) for key, method in arms.items()}
    _check_task([r for r in found.values() if r is not None], task, table)
    return found


def table6(
    runs: Mapping[str, MetricsFile],
    arms: Mapping[int, str],
    *,
    paper: Mapping | None = None,
    psnr_spread: str = "seed_std",
    ipr_k: int = 1,
    ipr_features: str = "identity",
    task: str = "bfr",
) -> Table:
    """Table 6, the number of skip connections: one row per n in the paper or in ``arms`` ({n: method}).

    ``psnr_spread``: "seed_std" (std of per-seed means over noise seeds, the paper's "over runs") or "ci95"
    (half-width of the bootstrap CI over images). iPrecision is read at ``ipr_k`` in ``ipr_features``.
    """
    _validate_choices(psnr_spread, ipr_k, ipr_features)
    paper = paper or load_paper_numbers()
    paper_rows = {int(n): row for n, row in paper["table6"]["rows"].items()}
    arms = {int(n): m for n, m in arms.items()}
    found = _arms(runs, arms, task, "table6")
    columns = (PSNR, LPIPS, SSIM, FID, IPRECISION)
    rows = []
    for n in sorted(set(paper_rows) | set(found)):
        run = found.get(n)
        ours = {c.metric: _measure(run, c, missing="not run", psnr_spread=psnr_spread, ipr_k=ipr_k, ipr_features=ipr_features) for c in columns}
        rows.append(_Row(str(n), arms.get(n), "run" if run else "not run", ours, paper_rows.get(n)))
    used = [r for r in found.values() if r is not None]
    notes = [
        "Δ = ours − paper.",
        _psnr_note(used, psnr_spread),
        _ipr_note(used, ipr_k, ipr_features),
        "not run: no metrics for that number of skips (skip nodes are 8..min(R, 256) px at resolution R: "
        "4 at 64 px, 6 from 256 px); not in paper: the paper printed no such row.",
    ]
    notes += [n for n in [_evaluation_note(used)] if n]
    return _build("table6", paper["table6"]["title"], "n", columns, rows, notes,
                  spread_name={"psnr": psnr_spread})


def table7(
    runs: Mapping[str, MetricsFile],
    arms: Mapping[str, str],
    *,
    paper: Mapping | None = None,
    task: str = "bfr",
) -> Table:
    """Table 7, adversarial data augmentation: ``arms`` = {"N": method without, "Y": method with}."""
    unknown = sorted(set(arms) - {"N", "Y"})
    if unknown:
        raise ConfigError(f"table7 arms has key(s) {unknown}; allowed: 'N' (no adversarial augmentation), 'Y'")
    paper = paper or load_paper_numbers()
    found = _arms(runs, arms, task, "table7")
    columns = (PSNR, SSIM, LPIPS, FID)
    rows = []
    for label, paper_row in paper["table7"]["rows"].items():
        run = found.get(label)
        ours = {c.metric: _measure(run, c, missing="not run", psnr_spread=None, ipr_k=1, ipr_features="identity") for c in columns}
        rows.append(_Row(label, arms.get(label), "run" if run else "not run", ours, paper_row))
    used = [r for r in found.values() if r is not None]
    notes = ["Δ = ours − paper.", "PSNR, SSIM, LPIPS: means over test images."]
    notes += [n for n in [_evaluation_note(used)] if n]
    return _build("table7", paper["table7"]["title"], "Adv. Aug.", columns, rows, notes)


def table8(
    runs: Mapping[str, MetricsFile],
    methods: Mapping[str, str] = TABLE8_LABELS,
    *,
    preference: pd.DataFrame | None = None,
    paper: Mapping | None = None,
    ipr_k: int = 1,
    ipr_features: str = "identity",
    task: str = "bfr",
) -> Table:
    """Table 8, comparison on BFR: ``methods`` = {row label: metrics method name}, in row order.

    Labels in :data:`EXTERNAL_METHODS` without a metrics file say "not provided". ``preference`` is
    :func:`faceres.report.human_study.aggregate_votes`'s result (indexed by the questionnaire's method names,
    which may be either the metrics method name or the row label); None means "no votes".
    """
    _validate_choices(None, ipr_k, ipr_features)
    paper = paper or load_paper_numbers()
    found = _arms(runs, methods, task, "table8")
    columns = (PSNR, LPIPS_3, IPRECISION, PREFERENCE)
    rows = []
    for label, method in methods.items():
        run = found[label]
        missing = "not provided" if label in EXTERNAL_METHODS else "not run"
        ours = {c.metric: _measure(run, c, missing=missing, psnr_spread=None, ipr_k=ipr_k, ipr_features=ipr_features) for c in columns[:3]}
        ours["preference"] = _preference(preference, method, label)
        rows.append(_Row(label, method, "run" if run else missing, ours, paper["table8"]["rows"].get(label)))
    used = [r for r in found.values() if r is not None]
    notes = ["Δ = ours − paper.", "PSNR, LPIPS: means over test images.", _ipr_note(used, ipr_k, ipr_features)]
    if preference is None:
        notes.append("Preference: no human-study votes yet (faceres.report.human_study builds the questionnaire).")
    else:
        total = int(preference["total"].iloc[0]) if len(preference) else 0
        level = float(preference["ci_level"].iloc[0]) if len(preference) else 0.95
        notes.append(
            f"Preference ours: share of {total} human-study votes, with its {level:.0%} Wilson score interval in "
            "brackets; "
            "not in study: the method was not among the questionnaire's choices. "
            "Paper: 100 samples × 5 experts."
        )
    notes.append("DEG: the degraded input, evaluated as if it were a restoration.")
    notes += [n for n in [_evaluation_note(used)] if n]
    return _build("table8", paper["table8"]["title"], "Method", columns, rows, notes)


def _preference(preference: pd.DataFrame | None, method: str, label: str) -> Measured:
    if preference is None:
        return Measured(None, missing="no votes")
    for name in (method, label):
        if name in preference.index:
            row = preference.loc[name]
            return Measured(
                float(row["preference_pct"]),
                interval=(float(row["ci_low_pct"]), float(row["ci_high_pct"])),
                extra={"votes": int(row["votes"]), "total": int(row["total"])},
            )
    return Measured(None, missing="not in study")


@dataclass(frozen=True)
class TrendCheck:
    """Spearman rank correlation of one metric with alpha, and whether it has the paper's claimed sign."""

    metric: str
    claim: str | None  # "decreasing" / "increasing" / None (the paper claims nothing)
    rho: float          # NaN when it cannot be formed (fewer than 2 runs, or a constant metric)
    n: int

    @property
    def shown(self) -> bool | None:
        """True/False: the sign of rho agrees/disagrees with the claim; None: no claim or no rho."""
        if self.claim is None or math.isnan(self.rho):
            return None
        return self.rho < 0 if self.claim == "decreasing" else self.rho > 0

    def describe(self) -> str:
        if math.isnan(self.rho):
            return f"cannot tell (n = {self.n})"
        verdict = {True: ": claim shown", False: ": claim NOT shown", None: ""}[self.shown]
        return f"ρ = {_fmt(self.rho, 2, signed=True)} (n = {self.n}){verdict}"


def alpha_trend(values: Mapping[float, float | None], metric: str, claim: str | None) -> TrendCheck:
    """Spearman rho of ``metric`` against alpha over the alphas that have a value."""
    pairs = [(a, v) for a, v in sorted(values.items()) if v is not None]
    rho = float("nan")
    if len(pairs) >= 2 and len({v for _, v in pairs}) > 1:
        rho = float(stats.spearmanr([a for a, _ in pairs], [v for _, v in pairs]).statistic)
    return TrendCheck(metric=metric, claim=claim, rho=rho, n=len(pairs))


def alpha_table(
    runs: Mapping[str, MetricsFile],
    arms: Mapping[float, str],
    *,
    paper: Mapping | None = None,
    task: str = "bfr",
) -> Table:
    """The alpha grid (appendix C.4): one row per alpha in ``arms`` ({alpha: method}); PSNR, FID, LPIPS, SSIM.

    The paper printed no numbers, only a direction (PSNR falls, FID improves, i.e. falls, as alpha grows):
    a last row gives each metric's Spearman rho against alpha and, for PSNR and FID, whether its sign agrees.
    """
    paper = paper or load_paper_numbers()
    title = paper.get("alpha", {}).get("title", "alpha")
    if not arms:  # e.g. a small experiment whose params.yaml has no alpha arms: say so, do not fail the report
        note = "No arm varies α here (params.yaml ablations.arms), and the main model differs from the base."
        return _build("alpha", title, "α", (PSNR, FID, LPIPS, SSIM), [], [note], compare=False)
    bad = [a for a in arms if isinstance(a, bool) or not isinstance(a, (int, float)) or not a >= 0]
    if bad:
        raise ConfigError(f"alpha arm(s) {bad}; allowed: non-negative numbers")
    claims = paper.get("alpha", {}).get("claim", {})
    found = _arms(runs, arms, task, "alpha")
    columns = (PSNR, FID, LPIPS, SSIM)
    rows, by_metric = [], {c.metric: {} for c in columns}
    for alpha in sorted(found):
        run = found[alpha]
        ours = {c.metric: _measure(run, c, missing="not run", psnr_spread=None, ipr_k=1, ipr_features="identity") for c in columns}
        for c in columns:
            by_metric[c.metric][float(alpha)] = ours[c.metric].value
        rows.append(_Row(f"{alpha:g}", arms[alpha], "run" if run else "not run", ours, None))
    trends = [alpha_trend(by_metric[c.metric], c.metric, claims.get(c.metric)) for c in columns]
    trailing = [("Spearman ρ vs α", "") + tuple(t.describe() for t in trends)]
    notes = []
    for t, c in zip(trends, columns):
        if t.claim is not None:
            direction = "falls" if t.claim == "decreasing" else "rises"
            better = " (improves)" if (t.claim == "decreasing") != c.higher_is_better else ""
            notes.append(f"Paper (C.4): {c.header} {direction}{better} as α grows; our runs: {t.describe()}.")
    notes.append("Trend = sign of Spearman's rank correlation over the alphas run; with a handful of arms it is "
                 "a direction, not a significance test. The paper printed no numbers for this ablation.")
    used = [r for r in found.values() if r is not None]
    notes += [n for n in [_evaluation_note(used)] if n]
    return _build("alpha", title, "α", columns, rows, notes,
                  compare=False, trailing=trailing)


__all__ = [
    "Column", "Measured", "Table", "TrendCheck", "alpha_table", "alpha_trend", "latex_escape",
    "table6", "table7", "table8", "PSNR_SPREADS", "TABLE8_LABELS",
]
