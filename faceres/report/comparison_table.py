"""A table of ours-versus-paper numbers and its renderings: Markdown, LaTeX, HTML, CSV records.

:class:`Table` holds ``data`` (numbers, one record per row), the rendered cells (``header`` + ``rows``) and
``notes``; :func:`build_table` fills both from rows of :class:`Measured` values beside the paper's, so the
cells and the records come from the same numbers. The paper's tables themselves are in
faceres/report/tables.py.
"""

from __future__ import annotations

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

    @property
    def _grouped(self) -> bool:
        return any(len(subs) > 1 or subs[0] != group for group, subs in self.header)

    def to_markdown(self) -> str:
        def cells(values) -> list[str]:
            return [str(c).replace("|", "\\|") for c in values]

        frame = pd.DataFrame([cells(row) for row in self.rows], columns=cells(self.flat_header))
        out = [f"**{self.title}**", "", frame.to_markdown(index=False, tablefmt="github", disable_numparse=True)]
        if self.notes:
            out += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(out) + "\n"

    def to_latex(self) -> str:
        if self._grouped:  # two header rows: the group spans its sub-columns, a lone column has an empty second row
            columns = pd.MultiIndex.from_tuples([
                (latex_escape(group), "" if sub == group else latex_escape(sub)) for group, subs in self.header for sub in subs
            ])
        else:
            columns = pd.Index([latex_escape(h) for h in self.flat_header])
        frame = pd.DataFrame([[latex_escape(c) for c in row] for row in self.rows], columns=columns)
        align = "ll" + "r" * (len(self.flat_header) - 2)  # row label and run name, then numbers
        tabular = frame.style.hide(axis="index").to_latex(column_format=align, hrules=True, multicol_align="c")
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(self.title)}}}",
            rf"\label{{tab:{self.name}}}",
            r"\resizebox{\linewidth}{!}{%",
            tabular.rstrip("\n") + "}",
        ]
        if self.notes:
            lines += [r"\par\smallskip\footnotesize"] + [latex_escape(note) + r"\\" for note in self.notes]
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"

    def html_header(self) -> list[list[tuple[str, int, int]]]:
        """The header as HTML rows of (text, colspan, rowspan): groups span their sub-columns, and a column
        without sub-columns spans both rows (the report's template renders these)."""
        if not self._grouped:
            return [[(h, 1, 1) for h in self.flat_header]]
        top = [(group, 1, 2) if len(subs) == 1 and subs[0] == group else (group, len(subs), 1) for group, subs in self.header]
        bottom = [(sub, 1, 1) for group, subs in self.header if not (len(subs) == 1 and subs[0] == group) for sub in subs]
        return [top, bottom]

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
