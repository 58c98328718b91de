"""The loaders the losses and metrics call: verified cache files only, frozen networks."""

from __future__ import annotations


import torch

from faceres.core.errors import WeightsError
from faceres.weights.convert import (
    _FEATURE_STRUCTURES,
    _assign_state,
    _fid_inception3_structure,
    _fid_inception_v3_module,
    _load_torch_state,
)
from faceres.weights.store import cached_weights_path, verified_file


def _load_cached_state(name: str) -> dict[str, torch.Tensor]:
    return _load_torch_state(cached_weights_path(name))


def _frozen(module: torch.nn.Module) -> torch.nn.Module:
    module.eval()
    module.requires_grad_(False)
    return module


def _load_features(name: str) -> torch.nn.Sequential:
    state = _load_cached_state(name)
    prefix = "features."
    features = _FEATURE_STRUCTURES[name]()
    _assign_state(features, {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, f"{name} features")
    if any(not k.startswith(prefix) for k in state):
        raise WeightsError(f"{cached_weights_path(name)}: unexpected keys outside features.*")
    return _frozen(features)


def load_vgg16_features() -> torch.nn.Sequential:
    """``torchvision.models.vgg16(IMAGENET1K_V1).features`` (eval, frozen; inputs ImageNet-normalized RGB).

    ReLU outputs relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 are at indices 3, 8, 15, 22, 29.
    """
    return _load_features("vgg16")


def load_alexnet_features() -> torch.nn.Sequential:
    """``torchvision.models.alexnet(IMAGENET1K_V1).features`` (eval, frozen)."""
    return _load_features("alexnet")


def load_fid_inception():  # -> pytorch_fid.inception.InceptionV3
    """pytorch-fid's ``InceptionV3([3])`` with the FID weights (eval, frozen): input N x 3 x H x W RGB in [0, 1].

    As pytorch-fid's ``fid_score`` uses it: bilinear resize to 299 x 299 (``resize_input``), then ``2x - 1``
    (``normalize_input``); returns ``[N x 2048 x 1 x 1]`` pool3 features. (TF's original feeds uint8 u as
    ``u/128 - 1``; pytorch-fid's ``2u/255 - 1`` differs by < 0.8 % of the range, the accepted pytorch-fid
    convention.)
    """
    path, digest = verified_file("inception")
    model = _fid_inception_v3_module(_fid_inception3_structure())
    _assign_state(model, _load_torch_state(path), "FID Inception")
    model = _frozen(model)
    model.cache_key = f"fid-inception:{digest[:16]}"  # read by faceres.metrics.fid.network_key
    return model
