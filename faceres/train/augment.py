"""Adversarial data augmentation (spec section 2's decision; Table 7).

With probability `prob` per image, the image's degradation is replaced by a harder one found against the
current generator, always inside the configured ranges:

- worst of K: draw K-1 more candidate degradations and keep the one whose restoration has the largest L1;
- PGD: signed-gradient ascent on the continuous degradation parameters (blur sigmas and angle, downsample
  scale, noise level, JPEG quality), each step a share `pgd_step` of the parameter's range, then projected
  back into the ranges;
- optionally an L-inf pixel perturbation of radius `pixel_eps`/255 of the degraded input.

The adversary scores with the pixel L1 of the reconstruction (the cheap part of L_rec) and runs the generator
with constant noise, so its choice is deterministic given (seed, step, image position).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from faceres.config import AugmentConfig, BFRConfig
from faceres.degrade.pipeline import apply_bfr_tensor
from faceres.degrade.sampling import OnlineBFRParams, clamp_to_ranges, sample_online
from faceres.train.data import cat_params, seeded


@dataclass
class HardenedBatch:
    params: OnlineBFRParams
    pixel_delta: torch.Tensor | None  # added to the degraded input (selected images only), or None
    selected: torch.Tensor  # (B,) bool
    stats: dict[str, float]


def _ranges(cfg: BFRConfig) -> dict[str, float]:
    return {
        "sigma_x": cfg.blur_sigma[1] - cfg.blur_sigma[0],
        "sigma_y": cfg.blur_sigma[1] - cfg.blur_sigma[0],
        "theta": math.pi,
        "scale": cfg.downsample[1] - cfg.downsample[0],
        "noise_sigma": cfg.noise_sigma[1] - cfg.noise_sigma[0],
        "jpeg_quality": float(cfg.jpeg_quality[1] - cfg.jpeg_quality[0]),
    }


def _select(params: OnlineBFRParams, index: torch.Tensor) -> OnlineBFRParams:
    return OnlineBFRParams(
        **{
            name: value[index] if isinstance(value, torch.Tensor) else value
            for name, value in vars(params).items()
        }
    )


def _scatter(params: OnlineBFRParams, index: torch.Tensor, part: OnlineBFRParams) -> OnlineBFRParams:
    merged = {}
    for name, value in vars(params).items():
        if isinstance(value, torch.Tensor):
            value = value.clone()
            value[index] = getattr(part, name).detach().to(value.dtype)
        merged[name] = value
    return OnlineBFRParams(**merged)


def _per_image_l1(generator: nn.Module, gt: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
    restored = generator(degraded * 2 - 1, noise_mode="const").float()  # compared in float32 under autocast
    return (restored - (gt * 2 - 1)).abs().flatten(1).mean(1)


def harden(
    generator: nn.Module,
    gt: torch.Tensor,
    params: OnlineBFRParams,
    bfr: BFRConfig,
    aug: AugmentConfig,
    seed: int,
    step: int,
    positions: list[int],
) -> HardenedBatch:
    """Harder degradations for a random subset of the batch (gt: (B, 3, H, W) float in [0, 1])."""
    device = gt.device
    draws = torch.cat([torch.rand(1, generator=seeded("augment", seed, step, p)) for p in positions])
    selected = draws < aug.prob
    # Every rank logs the same keys (the logged means are all-reduced key by key).
    stats = {"aug_selected": float(selected.float().mean()), "aug_l1_gain": 0.0}
    if not selected.any():
        return HardenedBatch(params, None, selected, stats)
    index = selected.nonzero().flatten()
    chosen_gt = gt[index]
    chosen_positions = [positions[i] for i in index.tolist()]
    size = tuple(gt.shape[-2:])
    was_training = generator.training
    requires_grad = [p.requires_grad for p in generator.parameters()]
    generator.requires_grad_(False)
    try:
        part = _select(params, index)
        with torch.no_grad():
            base_loss = _per_image_l1(generator, chosen_gt, apply_bfr_tensor(chosen_gt, part.to(device)))
        loss = base_loss
        if aug.mode in ("worst_of_k", "both"):
            part, loss = _worst_of_k(generator, chosen_gt, part, loss, bfr, aug, seed, step, chosen_positions, size)
        if aug.mode in ("pgd", "both"):
            part, loss = _pgd(generator, chosen_gt, part, bfr, aug)
        pixel_delta = None
        if aug.pixel_eps > 0:
            degraded = apply_bfr_tensor(chosen_gt, part.to(device)).detach().requires_grad_(True)
            pixel_loss = _per_image_l1(generator, chosen_gt, degraded).sum()
            (grad,) = torch.autograd.grad(pixel_loss, degraded)
            pixel_delta = torch.zeros_like(gt)
            pixel_delta[index] = grad.sign() * (aug.pixel_eps / 255.0)
    finally:
        for parameter, flag in zip(generator.parameters(), requires_grad):
            parameter.requires_grad_(flag)
        generator.train(was_training)
    stats["aug_l1_gain"] = float((loss - base_loss).mean())
    return HardenedBatch(_scatter(params, index, part), pixel_delta, selected, stats)


def _worst_of_k(generator, gt, part, loss, bfr, aug, seed, step, positions, size):
    best, best_loss = part, loss
    for k in range(1, aug.candidates):
        candidate = cat_params(
            [sample_online(bfr, 1, seeded("augment-candidate", seed, step, p, k), size) for p in positions]
        )
        with torch.no_grad():
            candidate_loss = _per_image_l1(generator, gt, apply_bfr_tensor(gt, candidate.to(gt.device)))
        better = candidate_loss > best_loss
        if better.any():
            best = _scatter(best, better.nonzero().flatten(), _select(candidate, better.nonzero().flatten()))
            best_loss = torch.where(better, candidate_loss, best_loss)
    return best, best_loss


def _pgd(generator, gt, part, bfr, aug):
    ranges = _ranges(bfr)
    part = part.to(gt.device)
    loss = None
    for _ in range(aug.pgd_steps):
        part.requires_grad_(True)
        losses = _per_image_l1(generator, gt, apply_bfr_tensor(gt, part))
        grads = torch.autograd.grad(losses.sum(), part.continuous(), allow_unused=True)
        with torch.no_grad():
            for name, tensor, grad in zip(part.CONTINUOUS, part.continuous(), grads):
                if grad is not None:
                    tensor.add_(grad.sign() * (aug.pgd_step * ranges[name]))
        part.requires_grad_(False)
        clamp_to_ranges(part, bfr)
    with torch.no_grad():
        loss = _per_image_l1(generator, gt, apply_bfr_tensor(gt, part))
    return part, loss
