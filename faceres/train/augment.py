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

Device discipline: which images are hardened is a host-side draw per (seed, step, global position), so the
subset's size is a host value; the candidates are drawn on the training device (faceres.core.streams), the choice
among them is a `torch.where`, and nothing is read back to the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from faceres.config.schema import AugmentConfig, BFRConfig
from faceres.degrade.chain import apply_bfr_tensor
from faceres.core.devices import host_tensor
from faceres.degrade.sampling import OnlineBFRParams, clamp_to_ranges, sample_online
from faceres.core.seeds import key_of, unit_of
from faceres.core.streams import keys_for


@dataclass
class HardenedBatch:
    params: OnlineBFRParams
    pixel_delta: torch.Tensor | None  # added to the degraded input (selected images only), or None
    stats: dict[str, float | torch.Tensor]  # logged means (device tensors stay on the device)
    index: torch.Tensor | None = None  # the hardened images (into the batch), None when none was
    base_l1: torch.Tensor | None = None  # their restorations' L1 under the sampled degradation, before hardening

    def l1_gain(self, restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor | float:
        """Mean L1 the hardening added, read off the generator step's own restorations (no extra forward)."""
        if self.index is None:
            return 0.0
        final = _l1_per_image(restored.detach().index_select(0, self.index), target.index_select(0, self.index))
        return (final - self.base_l1).mean()


def selected_images(aug: AugmentConfig, seed: int, step: int, positions: list[int]) -> list[int]:
    """Indices (into this rank's batch) of the images hardened at `step`: one draw per global position."""
    return [i for i, p in enumerate(positions) if unit_of("augment", seed, step, p) < aug.prob]


def _ranges(cfg: BFRConfig) -> dict[str, float]:
    return {
        "sigma_x": cfg.blur_sigma[1] - cfg.blur_sigma[0],
        "sigma_y": cfg.blur_sigma[1] - cfg.blur_sigma[0],
        "theta": math.pi,
        "scale": cfg.downsample[1] - cfg.downsample[0],
        "noise_sigma": cfg.noise_sigma[1] - cfg.noise_sigma[0],
        "jpeg_quality": float(cfg.jpeg_quality[1] - cfg.jpeg_quality[0]),
    }


def _l1_per_image(restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) mean absolute error of each image, both in [-1, 1]: the adversary's score."""
    return (restored - target).abs().flatten(1).mean(1)


def _per_image_l1(generator: nn.Module, gt: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
    restored = generator(degraded * 2 - 1, noise_mode="const").float()  # compared in float32 under autocast
    return _l1_per_image(restored, gt * 2 - 1)


def harden(
    generator: nn.Module,
    gt: torch.Tensor,
    params: OnlineBFRParams,
    bfr: BFRConfig,
    aug: AugmentConfig,
    seed: int,
    step: int,
    positions: list[int],
    position_tensor: torch.Tensor,
) -> HardenedBatch:
    """Harder degradations for a random subset of the batch (gt: (B, 3, H, W) float in [0, 1]).

    `positions` are the images' global batch positions (host) and `position_tensor` the same on gt's device.
    """
    device = gt.device
    chosen = selected_images(aug, seed, step, positions)
    # Every rank logs the same keys (the logged means are all-reduced key by key).
    stats: dict[str, float | torch.Tensor] = {"aug_selected": len(chosen) / len(positions), "aug_l1_gain": 0.0}
    if not chosen:
        return HardenedBatch(params, None, stats)
    index = host_tensor(chosen, device)
    chosen_gt = gt.index_select(0, index)
    chosen_positions = position_tensor.index_select(0, index)
    was_training = generator.training
    requires_grad = [p.requires_grad for p in generator.parameters()]
    generator.requires_grad_(False)
    try:
        part = params.take(index)
        if aug.mode in ("worst_of_k", "both"):
            part, base_loss = _worst_of_k(generator, chosen_gt, part, bfr, aug, seed, step, chosen_positions)
        else:
            with torch.no_grad():
                base_loss = _per_image_l1(generator, chosen_gt, apply_bfr_tensor(chosen_gt, part))
        if aug.mode in ("pgd", "both"):
            part = _pgd(generator, chosen_gt, part, bfr, aug)
        pixel_delta = None
        if aug.pixel_eps > 0:
            degraded = apply_bfr_tensor(chosen_gt, part).detach().requires_grad_(True)
            pixel_loss = _per_image_l1(generator, chosen_gt, degraded).sum()
            (grad,) = torch.autograd.grad(pixel_loss, degraded)
            pixel_delta = torch.zeros_like(gt).index_copy(0, index, grad.sign() * (aug.pixel_eps / 255.0))
    finally:
        for parameter, flag in zip(generator.parameters(), requires_grad):
            parameter.requires_grad_(flag)
        generator.train(was_training)
    return HardenedBatch(params.put(index, part), pixel_delta, stats, index, base_loss.detach())


def _worst_of_k(generator, gt, part, bfr, aug, seed, step, positions: torch.Tensor):
    """The sampled degradation and K-1 more candidates in one generator pass; per image the one whose
    restoration has the largest L1 (the first of equals). Returns (chosen parameters, the sampled one's L1)."""
    n, size = len(part), tuple(gt.shape[-2:])
    candidates = [part] + [
        sample_online(bfr, keys_for(key_of("augment-candidate", seed, step, k), positions), size)
        for k in range(1, aug.candidates)
    ]
    every = OnlineBFRParams.cat(candidates)
    repeated = gt.repeat(len(candidates), 1, 1, 1)
    with torch.no_grad():
        losses = _per_image_l1(generator, repeated, apply_bfr_tensor(repeated, every)).reshape(len(candidates), n)
    pick = losses.argmax(dim=0)  # argmax returns the first maximum, as a strict "better than" scan would
    chosen = every.take(pick * n + torch.arange(n, device=pick.device))
    return chosen, losses[0]


def _pgd(generator, gt, part, bfr, aug):
    ranges = _ranges(bfr)
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
    return part
