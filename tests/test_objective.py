"""The generator step's objective as the trainer computes it, against a plain reference step; the per-term
gradient shares it logs; and the `auto` precision.

The trainer back-propagates the losses to the detached output image first (one backward through VGG16 and D
per term where it measures the shares), then that gradient through G, and reuses the G step's D(fake) in the D
step. The reference below is the textbook step: one backward of the whole objective through a frozen D, then
a second D forward on the detached output for the D step. The gradients must agree.
"""

from __future__ import annotations

import copy
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from faceres.config.arms import find_arm
from faceres.core import devices
from faceres.data.prepare import prepare_dataset
from faceres.degrade.chain import apply_bfr_tensor
from faceres.train.data import FaceImages, step_degradations
from faceres.train.distributed import DistContext
from faceres.train.loop import Trainer
from faceres.train.losses import gram_matrix
from faceres.train.precision import resolve_precisions
from faceres.train.runcache import run_identity
from tests.conftest import small_config
from tests.test_device import _vgg_features

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
# float32 and no randomness between the two computations: no flips, no augmentation, no noise inputs; weights
# away from 1 so that a term taken with the wrong weight shows
STEP = {
    "profiles.cpu.batch": 4, "profiles.cpu.precision": "fp32", "profiles.cpu.perceptual_precision": "fp32",
    "train.hflip": 0.0, "train.augment.prob": 0.0, "train.noise_mode": "none", "train.log_every": 2,
    "train.r1_interval": 16, "train.l1_weight": 2.0, "train.perceptual_weight": 0.5, "train.style_weight": 3.0,
    "train.adversarial_weight": 0.7, "alpha": 1.5,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("objective") / "data"
    prepare_dataset(small_config(**STEP), root, progress=False)
    return root


def _trainer(data: Path) -> tuple[Trainer, torch.Tensor]:
    config = small_config(**STEP)
    torch.manual_seed(0)  # the untrained VGG16's weights
    trainer = Trainer(config, find_arm(config, "main"), FaceImages(data), _vgg_features(), CPU)
    images = torch.stack([trainer.dataset[i][1] for i in range(config.scale.batch)])
    return trainer, images


def _reference_step(trainer: Trainer, G, D, images: torch.Tensor, step: int) -> dict:
    """The textbook step on copies of the networks: each term by its own formula, one backward of the weighted
    sum through a frozen D; the D step on a second D forward of the detached output. No optimizer step."""
    config, weights = trainer.config, trainer.loss.weights
    gt = images.float() / 255
    params = step_degradations(trainer.bfr, config.seed, step, trainer.position_tensor, tuple(gt.shape[-2:]))
    with torch.no_grad():
        inputs = apply_bfr_tensor(gt, params) * 2 - 1
    target = gt * 2 - 1
    restored = G(inputs, noise_mode="none")
    D.requires_grad_(False)
    vgg = trainer.loss.perceptual
    phi_x, phi_y = vgg.features(restored), [f.detach() for f in vgg.features(target)]
    terms = {
        "l1": weights.l1 * (restored - target).abs().mean(),
        "feature": weights.feature * sum(((a - b) ** 2).mean(dim=(1, 2, 3)) for a, b in zip(phi_x, phi_y)).mean(),
        "style": weights.style * sum(((gram_matrix(a) - gram_matrix(b)) ** 2).sum(dim=(1, 2))
                                     for a, b in zip(phi_x, phi_y)).mean(),
        "adversarial": weights.adversarial * F.softplus(-D(restored)).mean(),
    }
    norms = {name: torch.autograd.grad(term, restored, retain_graph=True)[0].norm() for name, term in terms.items()}
    sum(terms.values()).backward()
    D.requires_grad_(True)
    d_loss = F.softplus(D(restored.detach())).mean() + F.softplus(-D(target)).mean()
    d_loss.backward()
    return {"G": [p.grad for p in G.parameters()], "D": [p.grad for p in D.parameters()], "norms": norms,
            "d_loss": d_loss.detach(), "unequal_pixels": int((restored != target).sum())}


@pytest.mark.parametrize("step", [1, 2], ids=["measuring-shares", "not-measuring"])
def test_the_split_generator_step_and_the_shared_d_forward_give_the_textbook_gradients(data, step):
    trainer, images = _trainer(data)
    assert trainer.measures_gradient_shares(step) == (step == 1) and not trainer.r1.applies_at(step)
    G, D = copy.deepcopy(trainer.G), copy.deepcopy(trainer.D)
    reference = _reference_step(trainer, G, D, images, step)
    trainer.step = step
    logs = trainer.train_step(images)  # Adam steps after the gradients are taken: the .grad stay
    for network in ("G", "D"):
        got = [p.grad for p in getattr(trainer, network).parameters()]
        assert len(got) == len(reference[network])
        for mine, theirs in zip(got, reference[network]):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(logs["d_loss"], reference["d_loss"], rtol=1e-5, atol=1e-7)


def test_the_logged_gradient_shares_are_each_terms_gradient_norm_on_the_output_over_their_sum(data):
    trainer, images = _trainer(data)
    G, D = copy.deepcopy(trainer.G), copy.deepcopy(trainer.D)
    reference = _reference_step(trainer, G, D, images, 1)
    trainer.step = 1
    logs = trainer.train_step(images)
    terms = ("l1", "feature", "style", "adversarial")
    # by hand: d/dx of w * mean|x - t| is w * sign(x - t) / n, whose norm is w * sqrt(m) / n for the m pixels
    # where x != t (sign 0 elsewhere)
    n, m = images.numel(), reference["unequal_pixels"]
    assert n - 10 < m <= n
    assert float(logs["grad_l1"]) == pytest.approx(2.0 * m**0.5 / n, rel=1e-4)  # channels_last: ulps apart
    for term in terms:
        assert float(logs[f"grad_{term}"]) == pytest.approx(float(reference["norms"][term]), rel=1e-4)
    total = sum(float(logs[f"grad_{term}"]) for term in terms)
    for term in terms:
        assert float(logs[f"share_{term}"]) == pytest.approx(float(logs[f"grad_{term}"]) / total, rel=1e-6)
    trainer.step = 2  # not a measuring step: no share logged
    assert not any(key.startswith(("grad_", "share_")) for key in trainer.train_step(images))


def test_auto_precision_is_bf16_where_the_device_has_native_bfloat16_and_enters_the_fingerprint(monkeypatch):
    config = small_config(**{"profiles.cpu.precision": "auto", "profiles.cpu.perceptual_precision": "auto"})
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    native = resolve_precisions(config, cpu)
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx512f", "avx2"}))
    emulated = resolve_precisions(config, cpu)
    assert (native.scale.precision, native.scale.perceptual_precision) == ("bf16", "bf16")
    assert (emulated.scale.precision, emulated.scale.perceptual_precision) == ("fp32", "fp32")
    explicit = small_config(**{"profiles.cpu.precision": "tf32", "profiles.cpu.perceptual_precision": "auto"})
    assert resolve_precisions(explicit, cpu).scale.precision == "tf32"  # only `auto` is resolved
    arm = find_arm(config, "main")
    assert run_identity(native, arm, "d", 1).key != run_identity(emulated, arm, "d", 1).key
    for capability, expected in (((7, 0), False), ((8, 0), True), ((9, 0), True)):  # V100, A100, H100
        with mock.patch.object(torch.cuda, "get_device_capability", return_value=capability):
            assert devices.native_bf16(torch.device("cuda", 0)) is expected
