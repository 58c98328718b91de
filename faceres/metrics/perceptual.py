"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, built offline.

``lpips.LPIPS(pretrained=True)`` loads the calibrated linear heads that ship inside the package; the
backbone (torchvision VGG16 / AlexNet ``.features``) would be downloaded by torchvision, so we build it
randomly initialised (``pnet_rand=True``) and load the caller's backbone weights into lpips' slices.
"""

from __future__ import annotations

import copy
import functools
import inspect
import warnings
from collections.abc import Mapping
from pathlib import Path

import lpips
import torch
from torch import nn

from faceres.core.errors import ConfigError, WeightsError

LPIPS_NETS = ("vgg", "alex")


def _linear_heads_path(net: str, version: str) -> Path:
    # Where lpips.LPIPS(pretrained=True, model_path=None) reads its linear heads from.
    return Path(inspect.getfile(lpips.LPIPS)).parent / "weights" / f"v{version}" / f"{net}.pth"


def build_lpips(net: str, backbone_features: nn.Module | Mapping[str, torch.Tensor]) -> lpips.LPIPS:
    """An eval-mode ``lpips.LPIPS`` for ``net`` ('vgg' or 'alex') whose backbone holds ``backbone_features``.

    ``backbone_features``: torchvision's ``vgg16().features`` / ``alexnet().features`` (or its state_dict,
    keys like ``'0.weight'``), e.g. with ImageNet weights. Nothing is downloaded.
    """
    if net not in LPIPS_NETS:
        raise ConfigError(f"LPIPS net = {net!r}: allowed: {', '.join(LPIPS_NETS)}")
    model = copy.deepcopy(_lpips_template(net))
    source = backbone_features.state_dict() if isinstance(backbone_features, nn.Module) else dict(backbone_features)
    # lpips' slices keep torchvision's layer indices as child names: slice2 holds '4'...'8' for VGG16.
    target = {}
    for slice_name, slice_module in model.net.named_children():
        for key in slice_module.state_dict():
            if key not in source:
                raise WeightsError(
                    f"LPIPS-{net} backbone state lacks {key!r}; pass torchvision's {net} .features (keys like '0.weight')"
                )
            target[f"{slice_name}.{key}"] = source[key]
    try:
        model.net.load_state_dict(target, strict=True)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1].strip()
        raise WeightsError(f"LPIPS-{net} backbone weights do not fit torchvision's {net} features: {first_line}") from None
    model.eval().requires_grad_(False)
    return model


@functools.lru_cache(maxsize=None)
def _lpips_template(net: str) -> lpips.LPIPS:
    """lpips' model with its shipped linear heads and a random backbone. Cached: building it initialises a
    whole random torchvision classifier (seconds on a small CPU), and every build_lpips copies it."""
    with warnings.catch_warnings():
        # lpips asks torchvision for vgg16(pretrained=False): deprecated spelling of weights=None.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.")
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    _check_linear_heads(model, net)
    return model


def _check_linear_heads(model: lpips.LPIPS, net: str) -> None:
    """lpips loads its heads with strict=False; make sure every shipped tensor actually arrived."""
    path = _linear_heads_path(net, model.version)
    if not path.is_file():
        raise WeightsError(f"the lpips package lacks its linear heads {path}; reinstall lpips==0.1.4")
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    state = model.state_dict()
    for key, tensor in shipped.items():
        if key not in state or not torch.equal(state[key], tensor):
            raise WeightsError(f"lpips linear head {key!r} from {path} was not loaded into the model")


@torch.no_grad()
def lpips_distance(model: lpips.LPIPS, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS of two Nx3xHxW batches with values in [0, 1]; returns a length-N float tensor."""
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"LPIPS needs two Nx3xHxW batches of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return model(pred, target, normalize=True).reshape(-1)
