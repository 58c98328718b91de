"""Evaluate a folder of restorations against its ground truth: aggregate JSON and per-image CSV.

Metric names (``metrics=``):

- ``psnr``, ``ssim``: RGB 0-255 in float64 (options: ``crop_border``, ``y_channel``);
- ``lpips``: LPIPS with the ``lpips_net`` backbone ('vgg' default, or 'alex');
- ``fid``: pytorch-fid FID of the restored set against the ground-truth set (statistics cached);
- ``ipr``: precision, recall, iPrecision, iRecall for k in ``ks`` on identity embeddings (Tables 6, 8), and
  ``identity_distance``: the Euclidean distance between each restoration's identity embedding and its ground
  truth's (dlib's convention: Euclidean, same person below 0.6; the distance iPrecision compares with the
  ground truth's k-NN radius), per image and summarized like PSNR;
- ``ipr_inception``: the same on Inception pool3 features (Figure 8).

Restorations and ground truth are paired by file name without extension. Pretrained networks come from a
:class:`Networks` provider (loaded only for the metrics asked for), so tests can inject small stand-ins.
"""

from __future__ import annotations

import functools

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from faceres.config.schema import check_ks
from faceres.core.devices import float32_matmuls
from faceres.core.errors import ConfigError, DataError
from faceres.metrics.fid import GaussianStats, cached_features, frechet_distance, image_set_statistics, network_key
from faceres.metrics.images import (
    identity_embeddings,
    identity_landmarks,
    inception_activations,
    iterate_batches,
    pair_images,
    to_unit_tensor,
)
from faceres.metrics.manifold import ManifoldMetrics, paired_distances, precision_recall
from faceres.metrics.perceptual import LPIPS_NETS, build_lpips, lpips_distance
from faceres.metrics.pixel import psnr, ssim
from faceres.metrics.stats import summarize_quantity

METRICS = ("psnr", "ssim", "lpips", "fid", "ipr", "ipr_inception")
DEFAULT_METRICS = ("psnr", "ssim", "lpips", "fid", "ipr")
_PR_QUANTITIES = ("precision", "recall", "iprecision", "irecall")
# With "ipr": each restoration's Euclidean identity-embedding distance to its ground truth's (per image, summarized).
IDENTITY_DISTANCE = "identity_distance"


def _pretrained_lpips_backbone(net: str) -> nn.Module:
    from faceres.weights import load  # imported late: only evaluations that need pretrained weights touch the cache

    return {"vgg": load.load_vgg16_features, "alex": load.load_alexnet_features}[net]()


def _load_identity_embedder():
    from faceres.metrics.identity import load_identity_embedder

    return load_identity_embedder()


def _pretrained(name: str) -> Callable:
    def load():
        from faceres.weights import load as weights_load

        return getattr(weights_load, name)()

    return load


@dataclass(frozen=True)
class Networks:
    """Callables that build the pretrained networks on demand.

    fid_inception() -> pytorch-fid ``InceptionV3`` (2048-d pool3); lpips_backbone(net) -> torchvision
    ``.features`` of 'vgg' / 'alex'; identity_embedder() -> callable(N x S x S x 3 uint8) -> N x D array.
    """

    fid_inception: Callable[[], nn.Module]
    lpips_backbone: Callable[[str], nn.Module | Mapping[str, torch.Tensor]]
    identity_embedder: Callable[[], Callable[[np.ndarray], np.ndarray]]

    @classmethod
    def pretrained(cls) -> Networks:
        """The offline pretrained weights of ``faceres.weights``."""
        return cls(
            fid_inception=_pretrained("load_fid_inception"),
            lpips_backbone=_pretrained_lpips_backbone,
            identity_embedder=_load_identity_embedder,
        )

    @classmethod
    def pretrained_once(cls) -> Networks:
        """:meth:`pretrained`, each network loaded at its first use and kept: for scoring many folders."""
        pretrained = cls.pretrained()
        return cls(
            fid_inception=functools.cache(pretrained.fid_inception),
            lpips_backbone=functools.cache(pretrained.lpips_backbone),
            identity_embedder=functools.cache(pretrained.identity_embedder),
        )


@dataclass(frozen=True)
class EvalOptions:
    """Everything but the folders and metric names; validated on construction."""

    crop_border: int = 0
    y_channel: bool = False
    lpips_net: str = "vgg"
    ks: tuple[int, ...] = (1, 2, 3, 4)
    batch_size: int = 16
    num_workers: int = 0
    device: str = "cpu"
    ci_level: float | None = 0.95
    n_bootstrap: int = 1000
    seed: int = 0
    identity_input_size: int | None = None
    fid_cache_dir: str | None = None  # FID statistics and ground-truth features are cached here (None: never)
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.crop_border, int) or self.crop_border < 0:
            raise ConfigError(f"crop_border = {self.crop_border!r}: allowed: an integer >= 0")
        if self.lpips_net not in LPIPS_NETS:
            raise ConfigError(f"lpips_net = {self.lpips_net!r}: allowed: {', '.join(LPIPS_NETS)}")
        object.__setattr__(self, "ks", check_ks(self.ks))
        for name in ("batch_size", "n_bootstrap"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} = {getattr(self, name)!r}: allowed: an integer >= 1")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ConfigError(f"num_workers = {self.num_workers!r}: allowed: an integer >= 0")
        if self.ci_level is not None and not 0.0 < self.ci_level < 1.0:
            raise ConfigError(f"ci_level = {self.ci_level!r}: allowed: a number in (0, 1) or None")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed = {self.seed!r}: allowed: an integer >= 0")
        try:
            torch.device(self.device)
        except RuntimeError:
            raise ConfigError(f"device = {self.device!r}: allowed: a torch device such as 'cpu' or 'cuda:0'") from None

    def loader(self) -> dict:
        return dict(batch_size=self.batch_size, num_workers=self.num_workers, progress=self.progress)


@dataclass
class Evaluation:
    """``summary``: the aggregate (what the JSON holds); ``per_image``: one row per image pair."""

    summary: dict
    per_image: pd.DataFrame = field(repr=False)


def validate_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'}; allowed: {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in metrics)


class _PairTransform:
    """Runs in DataLoader workers: PSNR/SSIM of one pair, and [0, 1] tensors for LPIPS."""

    def __init__(self, metrics: tuple[str, ...], options: EvalOptions):
        self.metrics = metrics
        self.crop = dict(crop_border=options.crop_border, y_channel=options.y_channel)

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> dict:
        if pred.shape != gt.shape:
            raise DataError(f"sizes differ ({pred.shape[1]}x{pred.shape[0]} vs {gt.shape[1]}x{gt.shape[0]})")
        out = {}
        if "psnr" in self.metrics:
            out["psnr"] = psnr(pred, gt, **self.crop)
        if "ssim" in self.metrics:
            out["ssim"] = ssim(pred, gt, **self.crop)
        if "lpips" in self.metrics:
            out["pred"], out["gt"] = to_unit_tensor(pred), to_unit_tensor(gt)
        return out


def _pair_metrics(pairs, metrics, options: EvalOptions, networks: Networks) -> dict[str, np.ndarray]:
    wanted = tuple(m for m in ("psnr", "ssim", "lpips") if m in metrics)
    if not wanted:
        return {}
    values = {m: np.empty(len(pairs)) for m in wanted}
    model = None
    if "lpips" in wanted:
        model = build_lpips(options.lpips_net, networks.lpips_backbone(options.lpips_net)).to(options.device)
    items = [(pred, gt) for _, pred, gt in pairs]
    for indices, batch in iterate_batches(items, _PairTransform(wanted, options), desc="PSNR/SSIM/LPIPS", **options.loader()):
        for name in ("psnr", "ssim"):
            if name in batch:
                values[name][indices] = batch[name].numpy()
        if model is not None:
            values["lpips"][indices] = lpips_distance(model, batch["pred"].to(options.device), batch["gt"].to(options.device)).cpu().numpy()
    return values


def _summary(values: np.ndarray, quantity: str, options: EvalOptions) -> dict:
    return summarize_quantity(values, quantity, seed=options.seed, ci_level=options.ci_level,
                              n_resamples=options.n_bootstrap).to_dict()


def _manifold_summary(result: ManifoldMetrics, features: str, column_prefix: str, table: pd.DataFrame, options: EvalOptions) -> dict:
    flags = {
        "precision": result.fake_in_real_manifold,
        "recall": result.real_in_fake_manifold,
        "iprecision": result.fake_in_own_real_ball,
        "irecall": result.real_in_own_fake_ball,
    }
    out: dict = {"features": features, "ks": list(result.ks)}
    for quantity in _PR_QUANTITIES:
        out[quantity] = {}
        for j, k in enumerate(result.ks):
            column = f"{column_prefix}{quantity}_k{k}"
            table[column] = flags[quantity][:, j].astype(np.int8)
            out[quantity][f"k{k}"] = _summary(flags[quantity][:, j], column, options)
    return out


def _json_safe(value):
    """Strict JSON: NaN and infinities (e.g. PSNR of identical images) become null."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@float32_matmuls()  # LPIPS and the FID Inception in IEEE float32 on CUDA too (cuDNN defaults to TF32)
def evaluate_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    networks: Networks | None = None,
    out_json: str | os.PathLike | None = None,
    out_csv: str | os.PathLike | None = None,
    options: EvalOptions | None = None,
) -> Evaluation:
    """Score restorations in ``pred_dir`` against ``gt_dir``; write the aggregate JSON and per-image CSV if asked.

    JSON: ``{"n_pairs", "pred_dir", "gt_dir", "options", "metrics": {...}}`` where per-image metrics give
    mean, std (ddof=1), n and a bootstrap CI of the mean (conditional on the k-NN radii for the PR family),
    and ``fid`` gives its value. CSV: one row per pair (``name``, files, per-image values, 0/1 memberships).
    """
    options = options or EvalOptions()
    metrics = validate_metrics(metrics)
    networks = networks or Networks.pretrained()
    pairs = pair_images(pred_dir, gt_dir)
    pred_paths, gt_paths = [p for _, p, _ in pairs], [g for _, _, g in pairs]
    table = pd.DataFrame({"name": [n for n, _, _ in pairs], "pred_file": [p.name for p in pred_paths],
                          "gt_file": [g.name for g in gt_paths]})
    results: dict = {}

    for name, values in _pair_metrics(pairs, metrics, options, networks).items():
        table[name] = values
        results[name] = _summary(values, name, options)

    if "fid" in metrics or "ipr_inception" in metrics:
        inception = networks.fid_inception()
        loader = dict(device=options.device, **options.loader())
        activations: dict[str, np.ndarray | None] = {"pred": None, "gt": None}
        if "ipr_inception" in metrics:
            activations = {
                "pred": inception_activations(pred_paths, inception, **loader),
                "gt": cached_features(gt_paths, network_key(inception),
                                      lambda: inception_activations(gt_paths, inception, **loader), options.fid_cache_dir),
            }
        if "fid" in metrics:
            stats: list[GaussianStats] = [
                image_set_statistics(paths, inception, cache_dir=options.fid_cache_dir, activations=activations[key],
                                     name=str(folder), **loader)
                for key, paths, folder in (("pred", pred_paths, pred_dir), ("gt", gt_paths, gt_dir))
            ]
            results["fid"] = {"value": frechet_distance(*stats), "n_pred": stats[0].n, "n_gt": stats[1].n}
        if "ipr_inception" in metrics:
            result = precision_recall(activations["gt"], activations["pred"], options.ks, paired=True)
            results["ipr_inception"] = _manifold_summary(result, "inception", "inception_", table, options)

    if "ipr" in metrics:
        embedder = networks.identity_embedder()
        embed = dict(input_size=options.identity_input_size, **options.loader())
        identity_key = getattr(embedder, "cache_key", None)  # None (an unnamed embedder): never cached
        identity_key = identity_key and f"{identity_key}:{options.identity_input_size}"
        # Landmarks from the ground truth cut the chips of the pair alike (IdentityEmbedder's docstring).
        landmarks = None
        if hasattr(embedder, "landmarks"):
            landmarks = cached_features(gt_paths, identity_key and f"{identity_key}:landmarks",
                                        lambda: identity_landmarks(gt_paths, embedder, **embed), options.fid_cache_dir)
        gt_embeddings = cached_features(gt_paths, identity_key,
                                        lambda: identity_embeddings(gt_paths, embedder, landmarks=landmarks, **embed),
                                        options.fid_cache_dir)
        pred_embeddings = identity_embeddings(pred_paths, embedder, landmarks=landmarks, **embed)
        result = precision_recall(gt_embeddings, pred_embeddings, options.ks, paired=True)
        results["ipr"] = _manifold_summary(result, "identity", "", table, options)
        if landmarks is not None:
            results["ipr"]["landmarks"] = {"source": "ground truth", "images": len(gt_paths),
                                           "detector_fallbacks": int(landmarks[:, 10].sum())}
        table[IDENTITY_DISTANCE] = paired_distances(pred_embeddings, gt_embeddings)
        results[IDENTITY_DISTANCE] = _summary(table[IDENTITY_DISTANCE].to_numpy(), IDENTITY_DISTANCE, options)

    summary = {"n_pairs": len(pairs), "pred_dir": str(pred_dir), "gt_dir": str(gt_dir), "metrics_computed": list(metrics),
               "options": {**asdict(options), "ks": list(options.ks)}, "metrics": results}
    if out_json is not None:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n")
    if out_csv is not None:
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_csv, index=False)
    return Evaluation(summary=summary, per_image=table)
