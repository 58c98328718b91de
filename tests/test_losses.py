"""Losses against hand computations and analytic cases; gradients reach the generator through each term."""

from __future__ import annotations


import pytest
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from faceres.core.errors import ConfigError
from faceres.train.losses import (
    GeneratorLoss,
    LossWeights,
    PerceptualLoss,
    R1Regularization,
    discriminator_adversarial_loss,
    generator_adversarial_loss,
    gram_matrix,
    pixel_l1,
    r1_penalty,
)
from faceres.models.build import build_discriminator, build_generator

LAYER_INDICES = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}


@pytest.fixture(scope="module")
def vgg_features() -> torch.nn.Sequential:
    # Random weights (no download); the seed is set inside fork_rng so the global RNG is left untouched.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torchvision.models.vgg16(weights=None).features


def _images(n: int, resolution: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _reference_vgg_activations(vgg, image):
    """torchvision's own feature extractor on an input normalized by hand: [-1,1] -> [0,1] -> ImageNet."""
    extractor = create_feature_extractor(vgg, return_nodes={str(i): name for name, i in LAYER_INDICES.items()})
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = extractor(((image + 1) / 2 - mean) / std)
    return [out[name].double() for name in LAYER_INDICES]


def test_gram_matrix_matches_explicit_loops():
    f = torch.randn(2, 3, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.zeros(2, 3, 3, dtype=torch.float64)
    for n in range(2):
        for c in range(3):
            for d in range(3):
                expected[n, c, d] = sum(f[n, c, h, w] * f[n, d, h, w] for h in range(2) for w in range(4)) / (3 * 2 * 4)
    torch.testing.assert_close(gram_matrix(f).double(), expected)


def test_feature_and_style_losses_match_hand_computation(vgg_features):
    loss = PerceptualLoss(vgg_features)
    x, y = _images(2, 32, seed=1), _images(2, 32, seed=2)
    feature, style = loss(x, y)
    phi_x, phi_y = _reference_vgg_activations(vgg_features, x), _reference_vgg_activations(vgg_features, y)
    expected_feature = torch.zeros(2, dtype=torch.float64)
    expected_style = torch.zeros(2, dtype=torch.float64)
    for a, b in zip(phi_x, phi_y):
        _, c, h, w = a.shape
        expected_feature += ((a - b) ** 2).sum(dim=(1, 2, 3)) / (c * h * w)
        gram_a = torch.einsum("nchw,ndhw->ncd", a, a) / (c * h * w)
        gram_b = torch.einsum("nchw,ndhw->ncd", b, b) / (c * h * w)
        expected_style += ((gram_a - gram_b) ** 2).sum(dim=(1, 2))
    assert expected_feature.min() > 0 and expected_style.min() > 0
    torch.testing.assert_close(feature.double(), expected_feature.mean(), rtol=1e-4, atol=0)
    torch.testing.assert_close(style.double(), expected_style.mean(), rtol=1e-4, atol=0)
    zero_feature, zero_style = loss(x, x.clone())
    assert zero_feature.item() == 0 and zero_style.item() == 0


def test_perceptual_vgg_is_frozen_and_gradients_reach_the_input(vgg_features):
    loss = PerceptualLoss(vgg_features, layers=("relu1_2", "relu2_2")).train()
    assert not loss.vgg.training
    assert len(loss.vgg) == 9  # truncated after relu2_2
    assert all(not p.requires_grad for p in loss.parameters())
    x = _images(1, 16, seed=3).requires_grad_(True)
    feature, style = loss(x, _images(1, 16, seed=4))
    (feature + style).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_perceptual_loss_rejects_unknown_layers_and_other_networks(vgg_features):
    with pytest.raises(ConfigError, match="relu5_3"):
        PerceptualLoss(vgg_features, layers=("relu5_3",))
    with pytest.raises(ConfigError, match="vgg16"):
        PerceptualLoss(vgg_features[:10])


def test_adversarial_losses_match_the_logistic_formulas():
    real = torch.tensor([[-3.0], [0.2], [4.0]], dtype=torch.float64)
    fake = torch.tensor([[1.5], [-0.7], [0.0]], dtype=torch.float64)
    sigmoid = torch.sigmoid
    torch.testing.assert_close(generator_adversarial_loss(fake), -torch.log(sigmoid(fake)).mean())
    torch.testing.assert_close(
        discriminator_adversarial_loss(real, fake),
        -torch.log(1 - sigmoid(fake)).mean() - torch.log(sigmoid(real)).mean(),
    )


def test_r1_penalty_for_a_linear_discriminator():
    # D(x) = <a, x>: the gradient w.r.t. x is a for every sample, so R1 = gamma/2 ||a||^2 and d R1/d a = gamma a.
    a = torch.nn.Parameter(torch.randn(3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    penalty = r1_penalty((x * a).sum(dim=(1, 2, 3)), x, gamma=10.0)
    torch.testing.assert_close(penalty, 5.0 * a.detach().square().sum())
    penalty.backward()
    torch.testing.assert_close(a.grad, 10.0 * a.detach())


def test_r1_penalty_for_a_quadratic_discriminator():
    # D(x) = s/2 ||x||^2: the gradient is s x, so R1 = gamma/2 s^2 mean_n ||x_n||^2 and d R1/d s = gamma s mean||x||^2.
    s = torch.nn.Parameter(torch.tensor(0.7, dtype=torch.float64))
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    norms = x.detach().square().sum(dim=(1, 2, 3))
    penalty = r1_penalty(s / 2 * x.square().sum(dim=(1, 2, 3)), x, gamma=2.0)
    torch.testing.assert_close(penalty, (0.7**2 * norms).mean())
    penalty.backward()
    torch.testing.assert_close(s.grad, 2.0 * 0.7 * norms.mean())
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(x.detach().sum(dim=(1, 2, 3)), x.detach(), gamma=1.0)


def test_lazy_r1_schedule_and_scale():
    r1 = R1Regularization(gamma=4.0, interval=4)
    assert [step for step in range(10) if r1.applies_at(step)] == [0, 4, 8]
    assert not any(R1Regularization(gamma=0.0).applies_at(step) for step in range(20))
    x = torch.ones(2, 1, 1, 1, requires_grad=True)
    torch.testing.assert_close(r1.loss((3 * x).sum(dim=(1, 2, 3)), x), torch.tensor(4.0 * 4.0 / 2 * 9))
    with pytest.raises(ConfigError, match="r1_interval = 0: allowed: an integer >= 1"):
        R1Regularization(interval=0)


def test_loss_weights_are_validated():
    with pytest.raises(ConfigError, match="loss weight adversarial = -1: allowed: a finite number >= 0"):
        LossWeights(adversarial=-1)
    with pytest.raises(ConfigError, match="loss weight l1 = nan: allowed"):
        LossWeights(l1=float("nan"))


def test_generator_loss_is_the_weighted_sum_of_its_components(vgg_features):
    perceptual = PerceptualLoss(vgg_features)
    x, y = _images(2, 16, seed=5), _images(2, 16, seed=6)
    logits = torch.tensor([[0.3], [-1.2]])
    weights = LossWeights(l1=2.0, feature=0.5, style=3.0, adversarial=0.1)
    parts = GeneratorLoss(weights, perceptual)(x, y, logits)
    feature, style = perceptual(x, y)
    l1 = (x - y).abs().mean()
    adversarial = -torch.log(torch.sigmoid(logits)).mean()
    torch.testing.assert_close(parts["l1"], l1)
    torch.testing.assert_close(parts["adversarial"], adversarial)
    torch.testing.assert_close(parts["total"], 2.0 * l1 + 0.5 * feature + 3.0 * style + 0.1 * adversarial)
    only_l1 = GeneratorLoss(LossWeights(feature=0, style=0, adversarial=0))(x, y)
    assert set(only_l1) == {"total", "l1"}
    torch.testing.assert_close(only_l1["total"], pixel_l1(x, y))
    with pytest.raises(ValueError, match="fake_logits"):
        GeneratorLoss(weights, perceptual)(x, y)
    with pytest.raises(ConfigError, match="PerceptualLoss"):
        GeneratorLoss(LossWeights())


def test_gradients_reach_every_generator_parameter_through_each_loss(vgg_features):
    generator = build_generator(32, 2, 0.125).train()
    discriminator = build_discriminator(32, 0.125, mbstd_group_size=2)
    perceptual = PerceptualLoss(vgg_features)
    degraded, target = _images(2, 32, seed=7), _images(2, 32, seed=8)
    only = {
        "l1": LossWeights(l1=1, feature=0, style=0, adversarial=0),
        "feature": LossWeights(l1=0, feature=1, style=0, adversarial=0),
        "style": LossWeights(l1=0, feature=0, style=1, adversarial=0),
        "adversarial": LossWeights(l1=0, feature=0, style=0, adversarial=1),
    }
    for name, weights in list(only.items()) + [("total", LossWeights())]:
        generator.zero_grad(set_to_none=True)
        restored = generator(degraded, noise_keys=torch.arange(degraded.shape[0]))
        parts = GeneratorLoss(weights, perceptual)(restored, target, discriminator(restored))
        parts["total"].backward()
        grads = {n: p.grad for n, p in generator.named_parameters()}
        missing = [n for n, g in grads.items() if g is None or not torch.isfinite(g).all() or g.abs().sum() == 0]
        assert not missing, f"{name}: no gradient for {missing[:5]}"


def test_discriminator_loss_with_r1_reaches_every_discriminator_parameter():
    discriminator = build_discriminator(32, 0.125, mbstd_group_size=2)
    real = _images(2, 32, seed=9).requires_grad_(True)
    fake = _images(2, 32, seed=10)
    real_logits = discriminator(real)
    loss = discriminator_adversarial_loss(real_logits, discriminator(fake))
    loss = loss + R1Regularization(gamma=1.0, interval=4).loss(real_logits, real)
    loss.backward()
    for name, parameter in discriminator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
