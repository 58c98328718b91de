"""The adversarial augmentation's search against brute-force versions of its definitions."""

from __future__ import annotations

import dataclasses

import torch

from faceres.config.schema import load_config
from faceres.degrade.chain import apply_bfr_tensor
from faceres.degrade.sampling import OnlineBFRParams, sample_online
from faceres.models.build import build_generator
from faceres.core.seeds import key_of
from faceres.core.streams import keys_for
from faceres.train.augment import HardenedBatch, _worst_of_k


def _setup(candidates: int = 4):
    config = load_config()
    bfr = config.degrade.bfr.at_resolution(32)
    aug = dataclasses.replace(config.train.augment, candidates=candidates)
    torch.manual_seed(0)
    generator = build_generator(32, 2, 0.125).eval()
    gt = torch.rand(5, 3, 32, 32)
    positions = torch.tensor([0, 3, 4, 9, 12])
    part = sample_online(bfr, keys_for(key_of("step-draw", 1, 2), positions), (32, 32))
    return bfr, aug, generator, gt, positions, part


def test_worst_of_k_in_one_pass_picks_what_one_candidate_at_a_time_picks():
    bfr, aug, generator, gt, positions, part = _setup()
    chosen, base = _worst_of_k(generator, gt, part, bfr, aug, seed=1, step=2, positions=positions)
    # Brute force: each candidate alone through the generator, a strict "better than" scan per image.
    candidates = [part] + [sample_online(bfr, keys_for(key_of("augment-candidate", 1, 2, k), positions), (32, 32))
                           for k in range(1, aug.candidates)]
    with torch.no_grad():
        losses = torch.stack([
            (generator(apply_bfr_tensor(gt, c) * 2 - 1, noise_mode="const") - (gt * 2 - 1)).abs().flatten(1).mean(1)
            for c in candidates
        ])
    torch.testing.assert_close(base, losses[0], rtol=1e-5, atol=1e-6)
    for i in range(len(gt)):
        best = 0
        for k in range(1, len(candidates)):
            if losses[k, i] > losses[best, i]:
                best = k
        for name in OnlineBFRParams.CONTINUOUS + ("anisotropic",):
            assert getattr(chosen, name)[i] == getattr(candidates[best], name)[i], (i, name)
        assert torch.equal(chosen.noise[i], candidates[best].noise[i])
    assert len({int(losses[:, i].argmax()) for i in range(len(gt))}) > 1  # the choice does vary by image


def test_l1_gain_is_read_off_the_generator_steps_restorations():
    target = torch.zeros(4, 3, 2, 2)
    restored = target.clone()
    restored[1] += 0.5
    restored[3] -= 0.25
    batch = HardenedBatch(params=None, pixel_delta=None, stats={}, index=torch.tensor([1, 3]),
                          base_l1=torch.tensor([0.25, 0.25]))
    assert float(batch.l1_gain(restored, target)) == (0.25 + 0.0) / 2  # (0.5 - 0.25 + 0.25 - 0.25) / 2
    assert HardenedBatch(None, None, {}).l1_gain(restored, target) == 0.0
