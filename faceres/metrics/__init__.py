"""Evaluation metrics of the paper (section 4 of the spec): PSNR, SSIM, LPIPS, FID, precision / recall and
iPrecision / iRecall.

Each follows pytorch-fid's short chain (features -> statistics -> distance) and takes its networks as
arguments; :func:`evaluate_folders` ties them together for a folder of restorations and its ground truth.
"""

from faceres.metrics.evaluate import (
    DEFAULT_METRICS,
    METRICS,
    EvalOptions,
    Evaluation,
    Networks,
    evaluate_folders,
    validate_metrics,
)
from faceres.metrics.fid import (
    MIN_RELIABLE_FID_IMAGES,
    GaussianStats,
    UnreliableMetricWarning,
    activation_statistics,
    fid_between,
    frechet_distance,
    image_set_statistics,
)
from faceres.metrics.images import (
    identity_embeddings,
    inception_activations,
    list_images,
    load_rgb,
    pair_images,
)
from faceres.metrics.manifold import ManifoldMetrics, knn_radii, precision_recall
from faceres.metrics.perceptual import build_lpips, lpips_distance
from faceres.metrics.pixel import psnr, rgb_to_y, ssim
from faceres.metrics.stats import Summary, bootstrap_mean_ci, summarize

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "MIN_RELIABLE_FID_IMAGES",
    "EvalOptions",
    "Evaluation",
    "GaussianStats",
    "ManifoldMetrics",
    "Networks",
    "Summary",
    "UnreliableMetricWarning",
    "activation_statistics",
    "bootstrap_mean_ci",
    "build_lpips",
    "evaluate_folders",
    "fid_between",
    "frechet_distance",
    "identity_embeddings",
    "image_set_statistics",
    "inception_activations",
    "knn_radii",
    "list_images",
    "load_rgb",
    "lpips_distance",
    "pair_images",
    "precision_recall",
    "psnr",
    "rgb_to_y",
    "ssim",
    "summarize",
    "validate_metrics",
]
