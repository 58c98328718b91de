"""The product's headline outputs: the paper's Tables 6, 7, 8, the alpha trade-off, Figure 8, qualitative grids,
the human-study kit and a self-contained report, all from metrics files and image folders (pure functions
with explicit paths; the DVC ``report`` stage wires them).

- :mod:`~faceres.results` (outside: the evaluate stage writes it): the metrics-file format; :mod:`~faceres.report.inputs`: the paper's numbers.
- :mod:`~faceres.report.tables`: :func:`table6`, :func:`table7`, :func:`table8`, :func:`alpha_table`.
- :mod:`~faceres.report.figures`: :func:`figure8`, :func:`alpha_tradeoff`, qualitative grids.
- :mod:`~faceres.report.human_study`: questionnaire page and vote aggregation (Table 8's Preference).
- :mod:`~faceres.report.document`: ``report.md`` / ``report.html``; :mod:`~faceres.report.build`: all of it.
"""

from faceres.report.build import build_report
from faceres.report.document import ReportFigure, RunInfo, comparability_statement, write_report
from faceres.report.figures import (
    alpha_tradeoff,
    figure8,
    figure8_data,
    figure9,
    figure10,
    qualitative_grid,
    save_figure,
    sr_figure,
    write_figure8_data,
)
from faceres.report.human_study import aggregate_votes, build_questionnaire
from faceres.report.inputs import load_paper_numbers
from faceres.results import MetricsFile, load_metrics, load_metrics_dir, parse_metrics
from faceres.report.tables import Table, alpha_table, table6, table7, table8

__all__ = [
    "MetricsFile", "ReportFigure", "RunInfo", "Table", "aggregate_votes", "alpha_table", "alpha_tradeoff",
    "build_questionnaire", "build_report", "comparability_statement", "figure8", "figure8_data", "figure9",
    "figure10", "load_metrics", "load_metrics_dir", "load_paper_numbers", "parse_metrics", "qualitative_grid",
    "save_figure", "sr_figure", "table6", "table7", "table8", "write_figure8_data", "write_report",
]
