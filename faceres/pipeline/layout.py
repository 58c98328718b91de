"""Every path the pipeline reads and writes, relative to the project root: dvc.yaml's deps and outs.

    data/weights.json                      the verified pretrained-weights record      (weights)
    data/prepared/images/<split>/          faces at the profile resolution + manifest   (prepare)
    data/degraded/<task>/<split>[_lr]/     degraded inputs (+ SR low-res) + manifest    (degrade@TASK)
    models/<arm>/                          generator.pt, curve.csv, train.json, snapshots/ (train@ARM)
    trajectories/<arm>/                    validation.csv: the snapshots on the val split (trajectory@ARM)
    data/restored/<arm>/<task>/seed<k>/    restorations, one folder per noise seed      (restore@ARM)
    data/restored/<arm>/status.json        ok / not_run                                 (restore@ARM)
    data/external/<method>/                another method's restorations of bfr/test     (faceres import-external)
    metrics/<method>/<task>.json           the metrics document (+ per_image/<task>.csv) (evaluate@METHOD)
    reports/                               tables, figures, report.md, report.html      (report)
    reports/summary.json                   method -> task -> headline metrics (DVC metrics) (report)
    docs/results/, README.md               the published study and its tables           (faceres publish-results)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


MANIFEST = "manifest.csv"  # prepare's and degrade's (faceres.data.prepare.MANIFEST: asserted equal in the tests)
PER_IMAGE = "per_image"
STATUS_FILE = "status.json"
METRICS_SUMMARY = "summary.json"  # in reports/: the DVC metrics file
TRAJECTORY_CSV = "validation.csv"  # in trajectories/<method>/


@dataclass(frozen=True)
class Layout:
    """The pipeline's folders under `root` (the checkout DVC runs in)."""

    root: Path = Path(".")

    @property
    def weights_record(self) -> Path:
        return self.root / "data" / "weights.json"

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def degraded(self) -> Path:
        return self.root / "data" / "degraded"

    @property
    def external(self) -> Path:
        return self.root / "data" / "external"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def trajectories(self) -> Path:
        return self.root / "trajectories"

    @property
    def restored(self) -> Path:
        return self.root / "data" / "restored"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def published(self) -> Path:
        """docs/results: the reference study `faceres publish-results` copies out of reports/ (committed)."""
        return self.root / "docs" / "results"

    @property
    def readme(self) -> Path:
        """README.md, whose results tables `faceres publish-results` rewrites between markers."""
        return self.root / "README.md"


def ground_truth_dir(prepared: Path, split: str = "test") -> Path:
    return prepared / "images" / split


def trajectory_file(trajectories: Path, method: str) -> Path:
    """trajectories/<method>/validation.csv: the trajectory stage's table."""
    return trajectories / method / TRAJECTORY_CSV


def seed_dir(restored: Path, method: str, task: str, seed: int) -> Path:
    """data/restored/<method>/<task>/seed<k>: one noise seed's restorations."""
    return restored / method / task / f"seed{seed}"


def metrics_file(metrics: Path, method: str, task: str) -> Path:
    return task_metrics_file(metrics / method, task)


def per_image_file(metrics: Path, method: str, task: str) -> Path:
    return task_per_image_file(metrics / method, task)


def task_metrics_file(method_dir: Path, task: str) -> Path:
    """<task>.json in a method's metrics folder (metrics/<method>, or the stand-in its stage fills first)."""
    return method_dir / f"{task}.json"


def task_per_image_file(method_dir: Path, task: str) -> Path:
    return method_dir / PER_IMAGE / f"{task}.csv"
