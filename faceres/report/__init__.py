"""The product's headline outputs: the paper's Tables 6, 7, 8, the alpha trade-off, Figure 8, qualitative grids,
the human-study kit and a self-contained report, all from metrics files and image folders (pure functions
with explicit paths; the DVC ``report`` stage wires them).

- :mod:`~faceres.metrics.metrics_file` (outside: the evaluate stage writes it): the metrics-file format;
  :mod:`~faceres.report.paper_numbers`: the paper's numbers; :mod:`~faceres.report.comparison_table`: the table model.
- :mod:`~faceres.report.tables`: :func:`table6`, :func:`table7`, :func:`table8`, :func:`alpha_table`.
- :mod:`~faceres.report.figures`: :func:`figure8`, :func:`alpha_tradeoff`, qualitative grids.
- :mod:`~faceres.report.human_study`: questionnaire page and vote aggregation (Table 8's Preference).
- :mod:`~faceres.report.document`: ``report.md`` / ``report.html``; :mod:`~faceres.report.build`: all of it.
"""
