"""A table of ours-versus-paper numbers and its renderings: Markdown, LaTeX, HTML, CSV records.

:class:`Table` holds ``data`` (numbers, one record per row), the rendered cells (``header`` + ``rows``) and
``notes``; :func:`build_table` fills both from rows of :class:`Measured` values beside the paper's, so the
cells and the records come from the same numbers. The paper's tables themselves are in
faceres/report/tables.py.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

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


def format_number(value: float, decimals: int, *, signed: bool = False) -> str:
    if signed and round(value, decimals) == 0:
        value = 0.0  # no "-0.00"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _ours_cell(m: Measured, col: Column) -> str:
    if m.value is None:
        return m.missing
    text = format_number(m.value, col.decimals)
    if m.spread is not None:
        text += f" ± {format_number(m.spread, col.decimals)}"
    if m.interval is not None:
        text += f" [{format_number(m.interval[0], col.decimals)}, {format_number(m.interval[1], col.decimals)}]"
    return text


@dataclass(frozen=True)
class Row:
    label: str
    method: str | None
    status: str
    ours: Mapping[str, Measured]
    paper: Mapping[str, float] | None  # None: the paper has no such row


def build_table(
    name: str,
    title: str,
    label_header: str,
    columns: Sequence[Column],
    rows: Sequence[Row],
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
                cells.append(format_number(paper_value, col.decimals) + (f" ± {format_number(paper_std, col.decimals)}" if paper_std is not None else ""))
            delta = m.value - paper_value if m.value is not None and paper_value is not None else None
            cells.append(DASH if delta is None else format_number(delta, col.decimals, signed=True))
            record[f"{col.metric}_paper"] = paper_value
            if any(r.paper and f"{col.metric}_std" in r.paper for r in rows):
                record[f"{col.metric}_paper_std"] = paper_std
            record[f"{col.metric}_delta"] = delta
        display.append(tuple(cells))
        records.append(record)
    display += [tuple(r) for r in trailing]
    data = pd.DataFrame.from_records(records)
    return Table(name=name, title=title, header=tuple(header), rows=tuple(display), data=data, notes=tuple(notes))
