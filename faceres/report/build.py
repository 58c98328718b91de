"""One call that makes the whole report from the metrics folder: tables, figures, Figure 8's plot data,
report.md and report.html (what the DVC ``report`` stage runs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from faceres.core.errors import ConfigError, DataError
from faceres.report.document import ReportFigure, RunInfo, write_report
from faceres.report.figures import (
    GRADIENT_SHARES,
    alpha_tradeoff,
    claim_trajectories,
    figure8,
    figure8_by_bin,
    figure8_by_bin_data,
    figure8_data,
    gradient_share_note,
    save_figure,
    training_curves,
    training_figure,
    write_figure8_data,
)
from faceres.report.claims import (
    check_claims, claims_table, not_run_reasons, paper_claims, read_per_image, read_trajectories,
)
from faceres.report.replicates import pool_families
from faceres.report.human_study import aggregate_votes
from faceres.metrics.metrics_file import load_metrics_dir
from faceres.metrics.strata import STRATIFIED_TASK
from faceres.report.tables import SR_FACTORS, alpha_table, sr_table, strata_table, table6, table7, table8


@dataclass(frozen=True)
class ReportInputs:
    """What the report is made of: the metrics, which method fills which row of each table, and the extras.

    ``metrics_root`` holds ``<method>/<task>.json``; the arms map table rows to method names. Votes files
    need ``key_csv``; without ``votes_csvs`` Table 8 says "no votes". ``qualitative``: (title, figure, caption) from
    :mod:`faceres.report.figures`' grids, saved and shown after the metric figures. ``curves``: {arm: its
    curve.csv} for the training-curves figure (arms without one are left out). ``per_image_files``: {method: its
    per-image CSV of ``task``}, for the claims table (:mod:`faceres.report.claims`; the main model is
    ``comparison["Ours"]``, the degraded input ``comparison["DEG"]``); without it there is no claims table.
    ``sr_methods``: {row label: method} of the super-resolution table (none without it). ``families``: {arm:
    {training seed: method}} of the arms trained with several seeds: the tables pool them (mean ± std over
    seeds, :mod:`faceres.report.replicates`) and the claims decide over them; ``trajectory_files``: {method: its
    trajectories/METHOD/validation.csv}; ``scale``: what every verdict holds at (resolution, width, steps, images).
    """

    metrics_root: Path
    run_info: RunInfo
    skips_arms: Mapping[int, str]
    aug_arms: Mapping[str, str]
    alpha_arms: Mapping[float, str]
    comparison: Mapping[str, str]
    figure8_methods: Mapping[str, str]
    votes_csvs: Sequence[Path] = ()
    key_csv: Path | None = None
    qualitative: Sequence[tuple[str, Figure, str]] = ()
    curves: Mapping[str, Path] = field(default_factory=dict)
    psnr_spread: str = "seed_std"
    ipr_k: int = 1
    task: str = "bfr"
    per_image_files: Mapping[str, Path] | None = None
    sr_methods: Mapping[str, str] | None = None
    families: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    trajectory_files: Mapping[str, Path] = field(default_factory=dict)
    scale: str | None = None


def build_report(out_dir: str | Path, inputs: ReportInputs) -> dict[str, Path]:
    """Everything into ``out_dir``: ``tables/`` (csv, md, tex), ``figures/`` (PNG: also DVC image plots),
    ``pdf/`` (the figures as PDF), ``plots/`` (Figure 8's and the training curves' data, long format: one row per
    method and x), ``report.md``, ``report.html``. Returns the report paths {"md", "html"}."""
    if inputs.votes_csvs and inputs.key_csv is None:
        raise ConfigError("votes files given without the questionnaire's key_csv: the votes cannot be decoded")
    out_dir = Path(out_dir)
    seed_runs = load_metrics_dir(inputs.metrics_root, inputs.task)  # one per trained run: main, main_s1, ...
    runs = pool_families(seed_runs, inputs.families, inputs.ipr_k)  # one per arm: what the tables print
    preference = aggregate_votes(list(inputs.votes_csvs), inputs.key_csv) if inputs.votes_csvs else None
    tables = []
    checks = []
    per_image = read_per_image(inputs.per_image_files) if inputs.per_image_files is not None else {}
    if inputs.per_image_files is not None:
        claims = paper_claims(inputs.skips_arms, inputs.aug_arms, inputs.alpha_arms, main=inputs.comparison["Ours"],
                              degraded=inputs.comparison["DEG"])
        checks = check_claims(claims, seed_runs, per_image, families=inputs.families,
                              trajectories=read_trajectories(inputs.trajectory_files),
                              not_run=not_run_reasons(Path(inputs.metrics_root), inputs.task), ipr_k=inputs.ipr_k)
        tables.append(claims_table(checks, ipr_k=inputs.ipr_k, scale=inputs.scale))
    tables += [
        table6(runs, inputs.skips_arms, psnr_spread=inputs.psnr_spread, ipr_k=inputs.ipr_k, task=inputs.task),
        table7(runs, inputs.aug_arms, task=inputs.task),
        table8(runs, inputs.comparison, preference=preference, ipr_k=inputs.ipr_k, task=inputs.task),
        alpha_table(runs, inputs.alpha_arms, task=inputs.task),
    ]
    if inputs.sr_methods:
        sr_runs = {sr_task: load_metrics_dir(inputs.metrics_root, sr_task) for sr_task in SR_FACTORS}
        tables.append(sr_table(sr_runs, inputs.sr_methods, resolution=inputs.run_info.resolution, ipr_k=inputs.ipr_k))
    strata_runs = runs if inputs.task == STRATIFIED_TASK else pool_families(
        load_metrics_dir(inputs.metrics_root, STRATIFIED_TASK), inputs.families, inputs.ipr_k)
    tables.append(strata_table(strata_runs, inputs.comparison, ipr_k=inputs.ipr_k))
    for table in tables:
        table.write(out_dir / "tables")

    figure8_table = figure8_data(runs, inputs.figure8_methods)
    write_figure8_data(figure8_table, out_dir / "plots")
    curve_table = training_curves(inputs.curves)
    curve_table.to_csv(out_dir / "plots" / "training_curves.csv", index=False, float_format="%.6g")
    by_bin = figure8_by_bin_data({label: [per_image[m] for m in inputs.families.get(method, {0: method}).values()
                                          if m in per_image]
                                  for label, method in inputs.figure8_methods.items()})
    by_bin.to_csv(out_dir / "plots" / "figure8_by_bin.csv", index=False, float_format="%.6g")
    makers = [
        ("Figure 8: iPrecision and iRecall (Inception features) vs neighbourhood size",
         lambda: figure8(figure8_table), "figure8",
         "One line per method with a metrics file; k = 1..4 (appendix B, Fig. 8); an arm with several training "
         "seeds: their mean."),
        ("Figure 8 by degradation strength", lambda: figure8_by_bin(by_bin), "figure8_by_bin",
         "The same within each BFR downsampling bin of the test inputs (the radii from the whole test set); "
         "where a method can be told from the degraded input."),
        ("Claim trajectories: each claim's difference on the validation split along training",
         lambda: claim_trajectories(checks), "claim_trajectories",
         "Last arm minus first, at every generator snapshot: the mean over training seeds (thick), each seed "
         "(thin), each seed's final difference on the test split (x); shaded: the last half of training, where "
         "a verdict needs the sign to hold."),
        ("Alpha trade-off: PSNR and FID vs α", lambda: alpha_tradeoff(runs, inputs.alpha_arms), "alpha_tradeoff",
         "Appendix C.4 claims PSNR falls and FID improves (falls) as α grows; ρ = Spearman rank correlation."),
    ]
    makers.append(("Training curves of every arm", lambda: training_figure(curve_table), "training_curves",
                   "The generator's L1, VGG feature and adversarial losses and the discriminator's loss, logged every "
                   "train.log_every steps (models/ARM/curve.csv)."))
    makers.append(("Gradient shares of the objective's terms", lambda: training_figure(curve_table, GRADIENT_SHARES),
                   "gradient_shares",
                   "Each weighted term's gradient norm on the output image over the terms' sum, measured on the last "
                   "step of every log window (curve.csv's share_* columns): how much of the generator's update each "
                   "term drives."))
    makers += [(title, (lambda f=fig: f), f"qualitative_{i}", caption)
               for i, (title, fig, caption) in enumerate(inputs.qualitative, 1)]
    figures = []
    for title, make, stem, caption in makers:
        try:
            fig = make()
        except DataError as exc:
            figures.append(ReportFigure(title, None, missing=str(exc)))
            continue
        paths = save_figure(fig, out_dir / "figures" / stem, out_dir / "pdf" / stem)
        figures.append(ReportFigure(title, paths["png"], caption, pdf=paths["pdf"]))
    run_info = inputs.run_info
    share_note = gradient_share_note(curve_table)
    if share_note is not None:
        run_info = dataclasses.replace(run_info, notes=(*run_info.notes, share_note))
    return write_report(out_dir, tables=tables, figures=figures, run_info=run_info)
