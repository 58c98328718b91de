"""The paper's figures from our metrics files and output folders (matplotlib, no pyplot: no global state).

- :func:`figure8`: iPrecision / iRecall against neighbourhood size k, one line per method (appendix Fig. 8);
  :func:`figure8_data` / :func:`write_figure8_data` give the same numbers as tables for ``dvc plots``.
- :func:`alpha_tradeoff`: PSNR and FID against the adversarial weight alpha (appendix C.4).
- :func:`training_figure` (from :func:`training_curves`): every arm's losses over the training steps; with
  ``GRADIENT_SHARES``, each loss term's share of the gradient on the output image (:func:`gradient_share_note`
  says it in one sentence for the main arm).
- :func:`qualitative_grid` and its paper-shaped wrappers :func:`figure9` (skips), :func:`figure10` (noise
  seeds), :func:`sr_figure` (8x / 16x SR, Figs. 14-15): rows = test images, columns = titled image folders.

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes it as PNG and PDF.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from faceres.config.schema import check_ks
from faceres.core.errors import ConfigError, DataError
from faceres.report.images import find_image, load_image
from faceres.metrics.metrics_file import FEATURE_SPACES, MetricsFile
from faceres.report.tables import alpha_trend

FIGURE8_METRICS = (("iprecision", "iPrecision"), ("irecall", "iRecall"))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# Ours drawn last, on top, in the strongest colour (as the paper's figure does).
_STYLE = {
    "DEG*": ("tab:gray", "o"), "GPEN": ("tab:orange", "s"), "GFPGAN*": ("tab:green", "^"),
    "DFDNet": ("tab:purple", "D"), "Ours": ("tab:red", "*"),
}
DPI = 150


def save_figure(figure: Figure, stem: str | Path, pdf_stem: str | Path | None = None) -> dict[str, Path]:
    """Write ``<stem>.png`` and ``<pdf_stem>.pdf`` (default: beside the PNG); returns their paths by suffix."""
    stem = Path(stem)
    pdf_stem = Path(pdf_stem) if pdf_stem is not None else stem
    paths = {"png": stem.with_name(f"{stem.name}.png"), "pdf": pdf_stem.with_name(f"{pdf_stem.name}.pdf")}
    for suffix, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format=suffix, dpi=DPI, bbox_inches="tight")
    return paths


def training_curves(curves: Mapping[str, str | Path]) -> pd.DataFrame:
    """Long table (method, step, the logged losses) of each arm's ``curve.csv`` ({arm: path}; a missing file,
    an arm not run, is left out), for the report's figure and ``dvc plots`` (one line per arm)."""
    frames = [pd.read_csv(path).assign(method=arm) for arm, path in curves.items() if Path(path).is_file()]
    if not frames:
        return pd.DataFrame(columns=["method", "step"])
    data = pd.concat(frames, ignore_index=True)
    return data[["method", "step", *sorted(c for c in data.columns if c not in ("method", "step"))]]


def training_figure(data: pd.DataFrame, losses: Sequence[str] = ("g_l1", "g_feature", "g_adversarial", "d_loss")) -> Figure:
    """The arms' training curves overlaid: one panel per loss in `losses` that was logged, one line per arm."""
    shown = [loss for loss in losses if loss in data.columns and data[loss].notna().any()]
    if data.empty or not shown:
        raise DataError(f"training curves: no arm has a curve.csv with {', '.join(losses)}")
    figure = Figure(figsize=(3.6 * len(shown), 3.0))
    axes = np.atleast_1d(figure.subplots(1, len(shown)))
    for ax, loss in zip(axes, shown):
        for index, (arm, group) in enumerate(data.groupby("method", sort=False)):
            ax.plot(group["step"], group[loss], color="tab:red" if arm == "main" else f"C{index}", label=arm,
                    linewidth=1.8 if arm == "main" else 1.0)
        ax.set_xlabel("step")
        ax.set_title(loss, fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize=7, frameon=True)
    figure.tight_layout()
    return figure


GRADIENT_SHARES = ("share_l1", "share_feature", "share_style", "share_adversarial")


def second_half(curve: pd.DataFrame) -> pd.DataFrame:
    """The rows of a training curve past half of its last step: where the shares and losses have settled."""
    return curve[curve["step"] > curve["step"].max() / 2]


def gradient_share_note(data: pd.DataFrame, arm: str = "main") -> str | None:
    """One sentence: each objective term's mean share of the gradient on the output image over the second half
    of `arm`'s training (from the training-curves table; None when the arm logged no shares)."""
    rows = data[data["method"] == arm] if "method" in data.columns else data.iloc[0:0]
    columns = [c for c in GRADIENT_SHARES if c in rows.columns and rows[c].notna().any()]
    if rows.empty or not columns:
        return None
    late = second_half(rows)
    shares = ", ".join(f"{c.removeprefix('share_')} {100 * late[c].mean():.0f}%" for c in columns)
    return (f"Gradient shares of the objective's terms on the output image (norm of each weighted term's gradient "
            f"over their sum), {arm} arm, mean over steps {int(late['step'].min())}-{int(late['step'].max())}: "
            f"{shares}.")


def figure8_data(
    runs: Mapping[str, MetricsFile],
    methods: Mapping[str, str],
    *,
    features: str = "inception",
    ks: Sequence[int] = (1, 2, 3, 4),
) -> pd.DataFrame:
    """Long table (method, k, iprecision, irecall) for the ``methods`` ({label: method}) that have metrics files.

    A value absent from a file is NaN. Methods without a file are left out, as in the figure.
    """
    ks = check_ks(ks)
    if features not in FEATURE_SPACES:
        raise ConfigError(f"features = {features!r}; allowed: {', '.join(FEATURE_SPACES)}")
    records = []
    for label, method in methods.items():
        run = runs.get(method)
        if run is None:
            continue
        for k in ks:
            records.append({
                "method": label, "k": k,
                **{m: run.manifold_value(m, features, k) for m, _ in FIGURE8_METRICS},
            })
    data = pd.DataFrame.from_records(records, columns=["method", "k", "iprecision", "irecall"])
    return data.astype({"iprecision": float, "irecall": float})


def write_figure8_data(data: pd.DataFrame, out_dir: str | Path, stem: str = "figure8") -> dict[str, Path]:
    """Figure 8's numbers for ``dvc plots``: ``<stem>.csv`` / ``.json`` (long: method, k, iprecision, irecall)
    and ``<stem>_iprecision.csv`` / ``<stem>_irecall.csv`` (wide: k, one column per method), e.g.::

        plots:
          - iPrecision: {template: linear, x: k, y: {reports/figure8_iprecision.csv: [GPEN, Ours]}}
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.json"}
    data.to_csv(paths["csv"], index=False, float_format="%.6g")
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in data.to_dict("records")]
    paths["json"].write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    for metric, _ in FIGURE8_METRICS:
        wide = data.pivot(index="k", columns="method", values=metric)
        wide = wide[list(dict.fromkeys(data["method"]))].reset_index()  # methods in legend order
        paths[metric] = out_dir / f"{stem}_{metric}.csv"
        wide.to_csv(paths[metric], index=False, float_format="%.6g")
    return paths


def figure8(data: pd.DataFrame, *, features: str = "inception") -> Figure:
    """Appendix Figure 8 from :func:`figure8_data`'s table: iPrecision (left) and iRecall (right) against k, one
    line per method with values."""
    if data[["iprecision", "irecall"]].notna().sum().sum() == 0:
        found = ", ".join(dict.fromkeys(data["method"])) or "none"
        raise DataError(f"figure 8: no metrics file has {features} iprecision or irecall (methods with a file: {found})")
    ks = sorted(set(data["k"]))
    figure = Figure(figsize=(8.0, 3.2))
    axes = figure.subplots(1, 2)
    for ax, (metric, ylabel) in zip(axes, FIGURE8_METRICS):
        for index, (label, group) in enumerate(data.groupby("method", sort=False)):
            if group[metric].isna().all():
                continue
            colour, marker = _STYLE.get(label, (f"C{index}", _MARKERS[index % len(_MARKERS)]))
            ax.plot(group["k"], group[metric], marker=marker, color=colour, label=label, linewidth=1.5,
                    markersize=7 if marker == "*" else 5)
        ax.set_xlabel("Neighborhood Sizes")
        ax.set_ylabel(ylabel)
        ax.set_xticks(list(ks))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8, frameon=True)
    figure.suptitle(f"{'/'.join(y for _, y in FIGURE8_METRICS)} with {features.capitalize()} features", fontsize=10)
    figure.tight_layout()
    return figure


def figure8_by_bin_data(per_image: Mapping[str, Sequence[pd.DataFrame]], *, features: str = "inception",
                        ks: Sequence[int] = (1, 2, 3, 4)) -> pd.DataFrame:
    """Long table (method, bin, n, k, iprecision, irecall): Figure 8 within each downsampling bin of the test
    inputs. ``per_image``: {label: its training seeds' per-image tables (with ``scale_bin``)}; a bin's value is
    the share of its images inside their own ball (the radii from the whole set), averaged over the seeds."""
    from faceres.metrics.strata import BIN_COLUMN, BIN_NAMES

    ks = check_ks(ks)
    prefix = "inception_" if features == "inception" else ""
    records = []
    for label, tables in per_image.items():
        tables = [t for t in tables if BIN_COLUMN in t.columns]
        if not tables:
            continue
        for name in BIN_NAMES:
            rows = [t[t[BIN_COLUMN] == name] for t in tables]
            if not len(rows[0]):
                continue
            for k in ks:
                values = {m: [float(r[f"{prefix}{m}_k{k}"].mean()) if f"{prefix}{m}_k{k}" in r.columns else np.nan
                              for r in rows] for m, _ in FIGURE8_METRICS}
                records.append({"method": label, "bin": name, "n": len(rows[0]), "k": k,
                                **{m: float(np.mean(v)) for m, v in values.items()}})
    return pd.DataFrame.from_records(records, columns=["method", "bin", "n", "k", "iprecision", "irecall"])


def figure8_by_bin(data: pd.DataFrame, *, features: str = "inception") -> Figure:
    """Figure 8 per downsampling bin, from :func:`figure8_by_bin_data`: one column per bin, iPrecision above,
    iRecall below."""
    if data.empty or data[["iprecision", "irecall"]].notna().sum().sum() == 0:
        raise DataError(f"figure 8 by bin: no per-image {features} iPrecision/iRecall with downsampling bins "
                        "(metrics/METHOD/per_image/bfr.csv without scale_bin: rerun the evaluate stages)")
    bins = list(dict.fromkeys(data["bin"]))
    figure = Figure(figsize=(3.2 * len(bins), 5.6))
    axes = figure.subplots(2, len(bins), squeeze=False)
    for column, name in enumerate(bins):
        in_bin = data[data["bin"] == name]
        for row, (metric, ylabel) in enumerate(FIGURE8_METRICS):
            ax = axes[row][column]
            for index, (label, group) in enumerate(in_bin.groupby("method", sort=False)):
                colour, marker = _STYLE.get(label, (f"C{index}", _MARKERS[index % len(_MARKERS)]))
                ax.plot(group["k"], group[metric], marker=marker, color=colour, label=label, linewidth=1.5,
                        markersize=7 if marker == "*" else 5)
            ax.set_title(f"{name} (n = {int(in_bin['n'].iloc[0])})" if row == 0 else "", fontsize=9)
            ax.set_xlabel("Neighborhood Sizes" if row == 1 else "")
            ax.set_ylabel(ylabel if column == 0 else "")
            ax.set_xticks(sorted(set(in_bin["k"])))
            ax.grid(True, alpha=0.3)
    axes[0][-1].legend(loc="lower right", fontsize=7, frameon=True)
    figure.suptitle(f"Figure 8 by BFR downsampling factor of the input ({features.capitalize()} features)", fontsize=10)
    figure.tight_layout()
    return figure


def claim_trajectories(checks: Sequence) -> Figure:
    """One panel per claim and metric with a validation trajectory (faceres.report.claims.ClaimCheck): the
    difference (last arm minus first) against training steps, the mean over seeds (thick) and each seed (thin),
    with each seed's final test difference at the last step (x) and the last half of training shaded: where
    the verdict asks the sign to hold."""
    from faceres.report.claims import HEADERS

    panels = [c for c in checks if c.trajectory is not None]
    if not panels:
        raise DataError("claim trajectories: no claim has a validation trajectory (trajectories/ARM: the profile "
                        "needs data.val_fraction > 0 and degrade.splits with val)")
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(3.4 * columns, 2.6 * rows))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for ax, check in zip(axes, panels):
        line = check.trajectory
        ax.axvspan(line.steps[-1] / 2, line.steps[-1], color="0.92", zorder=0)
        ax.axhline(0.0, color="0.4", linewidth=0.8)
        for seed, values in line.per_seed.items():
            ax.plot(line.steps, values, color="C0", linewidth=0.8, alpha=0.5)
        ax.plot(line.steps, line.mean, color="C0", linewidth=2.0, marker="o", markersize=3)
        for seed_check in check.seeds:
            ax.plot([line.steps[-1]], [seed_check.difference.difference], "x", color="C3", markersize=6)
        metric = HEADERS.get(check.metric, check.metric).format(k="k")
        where = f", {check.scale_bin}" if check.scale_bin else ""
        title = f"{check.overall.to} − {check.overall.frm}: {metric}{where}" if check.overall else metric
        ax.set_title(f"{title}\n{check.verdict}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    figure.supxlabel("training step", fontsize=9)
    figure.tight_layout()
    return figure


def alpha_tradeoff(runs: Mapping[str, MetricsFile], arms: Mapping[float, str]) -> Figure:
    """PSNR (left axis) and FID (right axis) against alpha ({alpha: method}); log x (symlog if alpha = 0 runs)."""
    points = sorted((float(a), runs[m]) for a, m in arms.items() if m in runs)
    psnr = [(a, r.per_image["psnr"].mean) for a, r in points if "psnr" in r.per_image]
    fid = [(a, r.fid) for a, r in points if r.fid is not None]
    if not psnr and not fid:
        raise DataError(f"alpha trade-off: none of the alpha arms {dict(arms)} has a metrics file with PSNR or FID")
    figure = Figure(figsize=(5.0, 3.4))
    ax_psnr = figure.subplots()
    ax_fid = ax_psnr.twinx()
    for ax, series, label, colour, marker in ((ax_psnr, psnr, "PSNR", "tab:blue", "o"), (ax_fid, fid, "FID", "tab:red", "s")):
        if series:
            trend = alpha_trend(dict(series), label, None)
            ax.plot(*zip(*series), marker=marker, color=colour, label=f"{label} (ρ = {trend.rho:+.2f})" if trend.n > 1 and not np.isnan(trend.rho) else label)
        ax.set_ylabel(f"{label} {'↑' if label == 'PSNR' else '↓'}", color=colour)
        ax.tick_params(axis="y", colors=colour)
    alphas = [a for a, _ in points]
    positive = [a for a in alphas if a > 0]
    if 0.0 in alphas:
        ax_psnr.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    else:
        ax_psnr.set_xscale("log")
    ax_psnr.set_xticks(alphas, [f"{a:g}" for a in alphas])
    ax_psnr.set_xlabel("adversarial weight α")
    ax_psnr.grid(True, alpha=0.3)
    handles = ax_psnr.get_lines() + ax_fid.get_lines()
    ax_psnr.legend(handles, [h.get_label() for h in handles], loc="upper center", fontsize=8)
    ax_psnr.set_title("Reconstruction vs realism as α grows (paper: PSNR falls, FID improves)", fontsize=9)
    figure.tight_layout()
    return figure


ImageSource = str | Path | Callable[[str], np.ndarray]


def _cell_image(source: ImageSource, image_id: str) -> tuple[np.ndarray, str]:
    if callable(source):
        return source(image_id), f"{image_id} (computed)"
    return load_image(source, image_id), str(find_image(source, image_id))


def qualitative_grid(
    columns: Mapping[str, ImageSource],
    image_ids: Sequence[str],
    *,
    title: str | None = None,
    cell_inches: float = 1.6,
) -> Figure:
    """Rows = ``image_ids``; columns = {title: folder (or a function image_id -> uint8 array)}, in order.

    Within a row, images share one aspect ratio; an image smaller than the row's largest by an integer factor
    (a low-resolution input) is shown with nearest-neighbour enlargement, so its pixels stay visible.
    """
    if not columns or not image_ids:
        raise ConfigError("a qualitative grid needs at least one column and one image id")
    grid = []
    for image_id in image_ids:
        row = [_cell_image(source, image_id) for source in columns.values()]
        height, width = max((img.shape[:2] for img, _ in row), key=lambda hw: hw[0] * hw[1])
        for img, where in row:
            h, w = img.shape[:2]
            if (height % h or width % w or height // h != width // w):
                raise DataError(f"{where}: {w}x{h} px does not fit the row's {width}x{height} px (allowed: the same size or an integer fraction)")
        grid.append(row)
    n_rows, n_cols = len(image_ids), len(columns)
    figure = Figure(figsize=(cell_inches * n_cols, cell_inches * n_rows + (0.5 if title else 0.25)))
    axes = np.atleast_2d(figure.subplots(n_rows, n_cols, squeeze=False))
    for r, (image_id, row) in enumerate(zip(image_ids, grid)):
        full = max(img.shape[0] for img, _ in row)
        for c, ((img, _), column_title) in enumerate(zip(row, columns)):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest" if img.shape[0] < full else "antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_title, fontsize=9)
            if c == 0:
                ax.set_ylabel(image_id, fontsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.subplots_adjust(wspace=0.03, hspace=0.03)
    return figure


def figure9(input_dir: str | Path, skips_dirs: Mapping[int, str | Path], gt_dir: str | Path, image_ids: Sequence[str]) -> Figure:
    """Appendix Figure 9: input | restoration with n = 0, 1, ... skip connections | ground truth."""
    columns = {"Input": input_dir, **{f"n = {n}": d for n, d in sorted(skips_dirs.items())}, "GT": gt_dir}
    return qualitative_grid(columns, image_ids, title="Number of skip connections (n)")


def figure10(
    input_dir: str | Path,
    seed_dirs: Mapping[int, str | Path],
    image_ids: Sequence[str],
    gt_dir: str | Path | None = None,
    *,
    skips: int = 0,
) -> Figure:
    """Appendix Figure 10: one input restored with several noise seeds (the model with ``skips`` skips)."""
    columns: dict[str, ImageSource] = {"Input": input_dir, **{f"seed {s}": d for s, d in sorted(seed_dirs.items())}}
    if gt_dir is not None:
        columns["GT"] = gt_dir
    return qualitative_grid(columns, image_ids, title=f"Noise seeds, n = {skips} skip connections")


def sr_figure(
    input_dir: str | Path,
    methods_dirs: Mapping[str, str | Path],
    gt_dir: str | Path,
    image_ids: Sequence[str],
    *,
    factor: int,
    bicubic_dir: str | Path | None = None,
) -> Figure:
    """Appendix Figures 14 (16x) / 15 (8x): input | bicubic | methods | GT. Bicubic is computed from the input
    (PIL bicubic to the ground truth's size) unless ``bicubic_dir`` is given; input x ``factor`` must be GT's size."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ConfigError(f"factor = {factor!r}; allowed: an integer SR factor >= 2 (8, 16)")

    def bicubic(image_id: str) -> np.ndarray:
        low = load_image(input_dir, image_id)
        gt = load_image(gt_dir, image_id)
        if (low.shape[0] * factor, low.shape[1] * factor) != gt.shape[:2]:
            raise DataError(
                f"{find_image(input_dir, image_id)}: {low.shape[1]}x{low.shape[0]} px x {factor} != ground truth "
                f"{gt.shape[1]}x{gt.shape[0]} px ({find_image(gt_dir, image_id)})"
            )
        return np.asarray(Image.fromarray(low).resize((gt.shape[1], gt.shape[0]), Image.Resampling.BICUBIC))

    columns: dict[str, ImageSource] = {"Input": input_dir, "Bicubic": bicubic_dir if bicubic_dir is not None else bicubic}
    columns.update(methods_dirs)
    columns["GT"] = gt_dir
    return qualitative_grid(columns, image_ids, title=f"{factor}x super-resolution")
