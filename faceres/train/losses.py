"""Training losses (spec section 2): pixel L1, VGG perceptual (feature + style), StyleGAN2 adversarial, R1.

Images are float tensors [N, 3, H, W] in [-1, 1]. Every loss returns a scalar averaged over the batch.

Generator objective:  L = w_l1 * L1 + w_feature * L_feature + w_style * L_style + alpha * L_adv
(:class:`GeneratorLoss`, weights from :class:`LossWeights`). Discriminator objective: the non-saturating
logistic loss plus, every ``R1Regularization.interval`` steps, the R1 penalty on reals scaled by the interval
(StyleGAN2's lazy regularization).
"""

from __future__ import annotations

import contextlib

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceres.core.errors import ConfigError

# Indices of the ReLU outputs in torchvision's vgg16().features.
VGG16_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
DEFAULT_PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram[c, c'] = 1/(C H W) * sum_{h,w} phi[c,h,w] phi[c',h,w] per sample; [N, C, C], computed in float32."""
    n, c, h, w = features.shape
    flat = features.float().reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def _autocast(device_type: str, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on or (explicitly) off; the meta device of the shape tests has no autocast."""
    if device_type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16)


class PerceptualLoss(nn.Module):
    """Feature and style reconstruction losses on a frozen VGG16 (spec Eq. 14-15, Johnson et al. 2016).

    ``vgg_features`` is torchvision's ``vgg16().features`` (the weights module supplies it with ImageNet
    weights); it is truncated after the deepest requested layer, frozen and kept in eval mode. Inputs in
    [-1, 1] are mapped to [0, 1] and ImageNet-normalized. For layers l with maps phi_l of size C_l x H_l x W_l:

        feature = sum_l ||phi_l(x) - phi_l(y)||_2^2 / (C_l H_l W_l)
        style   = sum_l ||Gram_l(x) - Gram_l(y)||_F^2

    each per sample, then averaged over the batch. Gradients flow to ``restored`` only.
    """

    def __init__(self, vgg_features: nn.Sequential, layers: Sequence[str] = DEFAULT_PERCEPTUAL_LAYERS, *,
                 bf16: bool = False):
        """``bf16``: the VGG16 passes under bfloat16 autocast (profiles.<p>.perceptual_precision); else float32,
        even inside an outer autocast. The losses themselves are always reduced in float32."""
        super().__init__()
        self.bf16 = bf16
        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if unknown or not layers:
            raise ConfigError(f"perceptual layers = {list(layers)!r}: allowed: names from {list(VGG16_LAYERS)}")
        self.layer_names = tuple(sorted(set(layers), key=VGG16_LAYERS.__getitem__))
        self.indices = tuple(VGG16_LAYERS[name] for name in self.layer_names)
        deepest = self.indices[-1]
        if len(vgg_features) <= deepest or not all(isinstance(vgg_features[i], nn.ReLU) for i in self.indices):
            raise ConfigError(
                f"perceptual loss needs torchvision's vgg16().features (ReLU at indices {list(self.indices)}); "
                f"got a network with {len(vgg_features)} layers"
            )
        self.vgg = vgg_features[: deepest + 1]
        self.vgg.requires_grad_(False)
        self.vgg.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # frozen feature extractor: never in training mode
        return self

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """VGG activations at the requested layers of an image in [-1, 1]."""
        x = ((image + 1) / 2 - self.mean) / self.std
        wanted, outputs = set(self.indices), []
        for index, layer in enumerate(self.vgg):
            x = layer(x)
            if index in wanted:
                outputs.append(x)
        return outputs

    def forward(self, restored: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (feature loss, style loss), each a scalar averaged over the batch."""
        if restored.shape != target.shape:
            raise ValueError(f"perceptual loss: restored {list(restored.shape)} != target {list(target.shape)}")
        device = restored.device.type
        with _autocast(device, self.bf16):
            restored_features = self.features(restored)
            with torch.no_grad():
                target_features = self.features(target)
        with _autocast(device, False):  # Gram matmuls and reductions in float32 in every mode
            return self._losses(restored, restored_features, target_features)

    @staticmethod
    def _losses(restored, restored_features, target_features) -> tuple[torch.Tensor, torch.Tensor]:
        feature_loss = restored.new_zeros(restored.shape[0], dtype=torch.float32)
        style_loss = restored.new_zeros(restored.shape[0], dtype=torch.float32)
        for phi_x, phi_y in zip(restored_features, target_features):
            feature_loss = feature_loss + (phi_x.float() - phi_y.float()).square().flatten(1).mean(dim=1)
            style_loss = style_loss + (gram_matrix(phi_x) - gram_matrix(phi_y)).square().sum(dim=(1, 2))
        return feature_loss.mean(), style_loss.mean()


def pixel_l1(restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all pixels and channels."""
    return F.l1_loss(restored, target)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss of the generator: mean softplus(-D(G(x))) = -log sigmoid(D(G(x)))."""
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic loss of the discriminator: mean softplus(D(fake)) + mean softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 = gamma/2 * ||d D(x)/d x||^2 per real image, averaged over the batch (Mescheder et al. 2018).

    ``real_images`` must have ``requires_grad=True`` and ``real_logits = D(real_images)``. The gradient is taken
    with ``create_graph=True`` so the penalty can be back-propagated into D's parameters.
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty: call real_images.requires_grad_(True) before computing D(real_images)")
    (gradients,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradients.square().flatten(1).sum(dim=1).mean() * (gamma / 2)


def _require_weight(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} = {value!r}: allowed: a finite number >= 0")
    return float(value)


@dataclass(frozen=True)
class R1Regularization:
    """R1 on reals with lazy regularization (StyleGAN2): apply every ``interval`` D steps, scaled by it.

    gamma = 0 disables it. The penalty joins the discriminator's loss in its regular step: no extra optimizer
    step, so Adam's lr and betas need none of stylegan2-ada's interval / (interval + 1) correction (that
    correction is for a separate R1 step, 17 D steps per 16 iterations).
    """

    gamma: float = 10.0
    interval: int = 16

    def __post_init__(self) -> None:
        _require_weight("r1_gamma", self.gamma)
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise ConfigError(f"r1_interval = {self.interval!r}: allowed: an integer >= 1")

    def applies_at(self, step: int) -> bool:
        """Whether discriminator step ``step`` (counting from 0) runs the R1 pass."""
        return self.gamma > 0 and step % self.interval == 0

    def loss(self, real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
        """The penalty to add on a step where :meth:`applies_at` is true (already scaled by the interval)."""
        return r1_penalty(real_logits, real_images, self.gamma) * self.interval



@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator objective. ``adversarial`` is the paper's alpha (default 1.0, appendix C.4);
    ``l1`` is a spec decision (1.0). The feature/style weights are not given in the material we hold."""

    l1: float = 1.0
    feature: float = 1.0
    style: float = 1.0
    adversarial: float = 1.0

    def __post_init__(self) -> None:
        for name in ("l1", "feature", "style", "adversarial"):
            _require_weight(f"loss weight {name}", getattr(self, name))

    @property
    def needs_perceptual(self) -> bool:
        return self.feature > 0 or self.style > 0


class GeneratorLoss(nn.Module):
    """The generator objective, term by term: :meth:`weighted_terms` (differentiable, weighted) and ``forward``
    -> dict with 'total' (differentiable) and its components.

    Terms: 'l1', 'feature', 'style', 'adversarial'; a term whose weight is 0 is not computed and not reported.
    ``fake_logits = D(restored)`` is required when alpha > 0.
    """

    def __init__(self, weights: LossWeights, perceptual: PerceptualLoss | None = None):
        super().__init__()
        if weights.needs_perceptual and perceptual is None:
            raise ConfigError(
                f"feature weight {weights.feature} / style weight {weights.style} need a PerceptualLoss (VGG16)"
            )
        self.weights = weights
        self.perceptual = perceptual

    def weight(self, term: str) -> float:
        """The weight of `term` ('l1', 'feature', 'style' or 'adversarial')."""
        return getattr(self.weights, term)

    def weighted_terms(
        self, restored: torch.Tensor, target: torch.Tensor, fake_logits: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each term of the objective times its weight, differentiable (their sum is the objective)."""
        weights = self.weights
        terms: dict[str, torch.Tensor] = {}
        if weights.l1 > 0:
            terms["l1"] = weights.l1 * pixel_l1(restored, target)
        if weights.needs_perceptual:
            feature, style = self.perceptual(restored, target)
            if weights.feature > 0:
                terms["feature"] = weights.feature * feature
            if weights.style > 0:
                terms["style"] = weights.style * style
        if weights.adversarial > 0:
            if fake_logits is None:
                raise ValueError("GeneratorLoss: fake_logits = D(restored) is required when alpha > 0")
            terms["adversarial"] = weights.adversarial * generator_adversarial_loss(fake_logits)
        return terms

    def forward(
        self, restored: torch.Tensor, target: torch.Tensor, fake_logits: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """{'total': the objective (differentiable), TERM: each term's unweighted value (detached)}."""
        terms = self.weighted_terms(restored, target, fake_logits)
        return {"total": self.total(terms, restored), **self.unweighted(terms)}

    @staticmethod
    def total(terms: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """The objective: the weighted terms' sum (0 on `like`'s device when there are none)."""
        return sum(terms.values(), like.new_zeros(()))

    def unweighted(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each weighted term's unweighted value, detached (what the curves log)."""
        return {name: (value / self.weight(name)).detach() for name, value in terms.items()}
