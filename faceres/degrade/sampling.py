"""Seeds and parameter sampling: every degraded image is replayable from its manifest row alone.

Seeds. ``image_seed(global_seed, task, image_id)`` = the first 8 bytes of SHA-256 over the JSON list
``[global_seed, task, image_id]``, big-endian, top bit cleared (fits int64 columns). Stable across machines
and Python versions (unlike ``hash()``). Each image gets its own CPU ``torch.Generator`` seeded with it.

Draw order (per image, from its own generator; :data:`BFR_UNIFORMS` float64 uniforms in ONE ``torch.rand``
call, then the noise):

====  ===================================================================================
u[0]  kernel kind: anisotropic if u[0] < anisotropic_prob, else isotropic
u[1]  sigma_x = lerp(blur_sigma, u[1])
u[2]  sigma_y = lerp(blur_sigma, u[2])          (drawn always; isotropic uses sigma_y = sigma_x)
u[3]  theta   = pi * u[3], in [0, pi)          (drawn always; isotropic uses theta = 0)
u[4]  scale   = lerp(downsample, u[4])          input px per low-resolution px
u[5]  noise   = lerp(noise_sigma, u[5])         on the 0..255 scale
u[6]  quality = low + floor(u[6] * (high - low + 1)), an integer in [low, high]
then  noise field: ``torch.randn(3, h, w)`` float32, (h, w) = the low-resolution size
====  ===================================================================================

Every parameter is drawn whatever the kind, so the noise field always starts at the same point of the
stream, and one image replays on its own exactly as it was processed inside a batch.

Online training uses the same mapping from uniforms, batched (:func:`sample_online`), with parameter tensors
that PGD can ascend and :func:`clamp_to_ranges` to project them back into the configured ranges. Its uniforms
and noise fields come from counter-based streams on the training device (:mod:`faceres.core.streams`), keyed per
image by (seed, step, global position), not from CPU generators: drawn where they are used, with no copy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch

from faceres.core import streams
from faceres.core.seeds import hash64
from faceres.config.schema import TASKS, BFRConfig, SRConfig
from faceres.degrade.ops import scaled_size
from faceres.core.errors import ConfigError, DataError

#: bump when the ops change so that old manifests can no longer be replayed bit-exactly
DEGRADE_VERSION = 1
BFR_UNIFORMS = 7


def image_seed(global_seed: int, task: str, image_id: str) -> int:
    """A 63-bit seed for one image of one task, stable across machines and Python versions."""
    if isinstance(global_seed, bool) or not isinstance(global_seed, int):
        raise ConfigError(f"seed = {global_seed!r}: allowed: an integer")
    return hash64(json.dumps([global_seed, task, str(image_id)], ensure_ascii=True)) & (2**63 - 1)


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed` (CPU streams are the same on every machine; move draws after)."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator


def _lerp(bounds: tuple[float, float], u: torch.Tensor) -> torch.Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * u


def _bfr_from_uniforms(u: torch.Tensor, cfg: BFRConfig) -> dict[str, torch.Tensor]:
    """(..., 7) float64 uniforms -> parameter tensors (...,), the documented draw order."""
    low_q, high_q = cfg.jpeg_quality
    quality = low_q + torch.floor(u[..., 6] * (high_q - low_q + 1))
    return {
        "anisotropic": u[..., 0] < cfg.anisotropic_prob,
        "sigma_x": _lerp(cfg.blur_sigma, u[..., 1]),
        "sigma_y": _lerp(cfg.blur_sigma, u[..., 2]),
        "theta": math.pi * u[..., 3],
        "scale": _lerp(cfg.downsample, u[..., 4]),
        "noise_sigma": _lerp(cfg.noise_sigma, u[..., 5]),
        "jpeg_quality": quality.clamp(max=high_q),
    }


# --------------------------------------------------------------------------------------------------------
# Offline records


def _parse(row: dict, key: str, kind: type) -> Any:
    if key not in row or row[key] is None or row[key] == "":
        raise DataError(f"manifest row: missing value for column {key!r}")
    value = row[key]
    try:
        if kind is int and not isinstance(value, int):
            try:
                return int(str(value).strip())  # exact for 63-bit seeds
            except ValueError:
                number = float(value)
                if not number.is_integer():
                    raise
                return int(number)
        return kind(value)
    except (TypeError, ValueError):
        raise DataError(f"manifest row: {key} = {value!r}: allowed: {kind.__name__}") from None


@dataclass(frozen=True)
class _Record:
    """A flat record <-> a manifest row; floats keep their exact value (write them with repr / %r)."""

    task: str
    image_id: str
    seed: int
    version: int
    height: int
    width: int

    def __post_init__(self):
        if self.version != DEGRADE_VERSION:
            raise DataError(
                f"manifest row: version = {self.version}: this faceres replays version {DEGRADE_VERSION}"
            )

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: dict) -> "_Record":
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _parse(row, f.name, hints[f.name]) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class BFRParams(_Record):
    """One image's blind degradation: everything needed to replay it (sizes are recorded for checking)."""

    kernel: str  # "iso" | "aniso"
    sigma_x: float
    sigma_y: float
    theta: float
    kernel_size: int
    scale: float
    lr_height: int
    lr_width: int
    noise_sigma: float  # 0..255 scale
    jpeg_quality: int

    def __post_init__(self):
        super().__post_init__()
        if self.task != "bfr":
            raise DataError(f"manifest row: task = {self.task!r}: allowed: bfr for BFRParams")
        if self.kernel not in ("iso", "aniso"):
            raise DataError(f"manifest row: kernel = {self.kernel!r}: allowed: iso, aniso")


@dataclass(frozen=True)
class SRParams(_Record):
    """Super-resolution: a deterministic bicubic downsample by `factor` (the seed is recorded for symmetry)."""

    factor: int
    lr_height: int
    lr_width: int

    def __post_init__(self):
        super().__post_init__()
        if self.task not in TASKS or self.task == "bfr":
            raise DataError(f"manifest row: task = {self.task!r}: allowed: sr8, sr16 for SRParams")


#: manifest CSV columns per task, in order
MANIFEST_FIELDS = {
    task: tuple(f.name for f in dataclasses.fields(BFRParams if task == "bfr" else SRParams)) for task in TASKS
}


def params_from_row(row: dict) -> BFRParams | SRParams:
    """Parse a manifest row (values may be strings, as read from a CSV) into its record."""
    task = str(row.get("task", ""))
    if task not in TASKS:
        raise DataError(f"manifest row: task = {task!r}: allowed: {', '.join(TASKS)}")
    return BFRParams.from_row(row) if task == "bfr" else SRParams.from_row(row)


def sample_bfr(
    cfg: BFRConfig, generator: torch.Generator, *, image_id: str, seed: int, size: tuple[int, int]
) -> BFRParams:
    """Draw one image's parameters (the first :data:`BFR_UNIFORMS` draws of `generator`).

    `cfg` holds the ranges at the image's resolution (``BFRConfig.at_resolution``); `image_id`, `seed` and
    `size` (H, W) are recorded for the manifest.
    """
    values = _bfr_from_uniforms(torch.rand(BFR_UNIFORMS, generator=generator, dtype=torch.float64), cfg)
    anisotropic = bool(values["anisotropic"])
    sigma_x = float(values["sigma_x"])
    scale = float(values["scale"])
    height, width = size
    return BFRParams(
        task="bfr",
        image_id=str(image_id),
        seed=int(seed),
        version=DEGRADE_VERSION,
        height=int(height),
        width=int(width),
        kernel="aniso" if anisotropic else "iso",
        sigma_x=sigma_x,
        sigma_y=float(values["sigma_y"]) if anisotropic else sigma_x,
        theta=float(values["theta"]) if anisotropic else 0.0,
        kernel_size=cfg.kernel_size,
        scale=scale,
        lr_height=scaled_size(height, scale),
        lr_width=scaled_size(width, scale),
        noise_sigma=float(values["noise_sigma"]),
        jpeg_quality=int(values["jpeg_quality"]),
    )


def sr_params(task: str, cfg: SRConfig, image_id: str, seed: int, size: tuple[int, int]) -> SRParams:
    """The (deterministic) SR record of one image: LR = the image downsampled by `cfg.factor`."""
    height, width = size
    if height % cfg.factor or width % cfg.factor:
        raise DataError(f"image {image_id}: {height}x{width} px is not divisible by the SR factor {cfg.factor}")
    return SRParams(
        task=task, image_id=str(image_id), seed=int(seed), version=DEGRADE_VERSION, height=height, width=width,
        factor=cfg.factor, lr_height=height // cfg.factor, lr_width=width // cfg.factor,
    )


# --------------------------------------------------------------------------------------------------------
# Online (training) parameters


@dataclass
class OnlineBFRParams:
    """A batch of degradation parameters as tensors (B,), for training and PGD.

    The continuous fields may require grad. Isotropic images (``anisotropic`` False) use sigma_x on both axes
    and theta 0, so their gradient lands on sigma_x. ``noise`` is a standard normal field (B, 3, Hn, Wn) as
    large as the largest low-resolution image can be; each image uses its top-left (h, w) corner, so the field
    stays fixed while PGD moves the scale.
    """

    anisotropic: torch.Tensor
    sigma_x: torch.Tensor
    sigma_y: torch.Tensor
    theta: torch.Tensor
    scale: torch.Tensor
    noise_sigma: torch.Tensor
    jpeg_quality: torch.Tensor
    noise: torch.Tensor = dataclasses.field(repr=False)
    kernel_size: int

    CONTINUOUS: ClassVar[tuple[str, ...]] = ("sigma_x", "sigma_y", "theta", "scale", "noise_sigma", "jpeg_quality")

    def continuous(self) -> list[torch.Tensor]:
        """The tensors PGD ascends, in a fixed order."""
        return [getattr(self, name) for name in self.CONTINUOUS]

    def requires_grad_(self, flag: bool = True) -> "OnlineBFRParams":
        for tensor in self.continuous():
            tensor.requires_grad_(flag)
        return self

    def to(self, device: torch.device | str) -> "OnlineBFRParams":
        """Detached copies on `device` (call requires_grad_ after moving)."""
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.detach().to(device)
        return OnlineBFRParams(**moved)

    def __len__(self) -> int:
        return self.sigma_x.shape[0]

    def _map(self, op) -> "OnlineBFRParams":
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return OnlineBFRParams(**{n: op(n, v) if isinstance(v, torch.Tensor) else v for n, v in fields.items()})

    @staticmethod
    def cat(parts: Sequence["OnlineBFRParams"]) -> "OnlineBFRParams":
        """One batch of the parts' images, in order (detached; the noise fields must have one size)."""
        first = parts[0]
        assert all(p.kernel_size == first.kernel_size for p in parts)
        return first._map(lambda name, value: torch.cat([getattr(p, name).detach() for p in parts]))

    def take(self, index: torch.Tensor) -> "OnlineBFRParams":
        """The images `index` (int64, on the parameters' device), detached."""
        return self._map(lambda name, value: value.detach().index_select(0, index))

    def put(self, index: torch.Tensor, part: "OnlineBFRParams") -> "OnlineBFRParams":
        """A copy with images `index` replaced by `part`'s (detached), out of place."""
        return self._map(lambda name, value: value.detach().index_copy(0, index, getattr(part, name).detach()))

    def where(self, mask: torch.Tensor, other: "OnlineBFRParams") -> "OnlineBFRParams":
        """Per image: `other`'s parameters where the (B,) bool `mask` holds, else these (detached)."""

        def pick(name: str, value: torch.Tensor) -> torch.Tensor:
            return torch.where(mask.reshape(-1, *[1] * (value.ndim - 1)), getattr(other, name).detach(), value.detach())

        return self._map(pick)


#: salt of the noise-field stream inside an image's stream (the parameters are words 0..13 of the image's own)
NOISE_STREAM = 1


def sample_online(
    cfg: BFRConfig,
    keys: torch.Tensor,
    image_size: tuple[int, int],
    dtype: torch.dtype = torch.float32,
) -> OnlineBFRParams:
    """One image's parameters per key (B x 7 uniforms, then its noise field) for images of `image_size`.

    `keys` (B,) int64 are the images' stream keys (:mod:`faceres.core.streams`) on the device the parameters are
    wanted on: everything is drawn there, with no host synchronisation and no transfer. `cfg` holds the ranges
    at that resolution (``BFRConfig.at_resolution``). Call ``.requires_grad_()`` as needed.
    """
    if keys.ndim != 1 or keys.dtype != torch.int64 or keys.shape[0] < 1:
        raise ValueError(f"sample_online: keys must be a non-empty (B,) int64 tensor, got {keys.dtype} {tuple(keys.shape)}")
    values = _bfr_from_uniforms(streams.uniform(keys, BFR_UNIFORMS), cfg)
    noise = streams.normal(streams.split(keys, NOISE_STREAM), noise_field_size(cfg, image_size)).to(dtype)
    return OnlineBFRParams(
        anisotropic=values.pop("anisotropic"),
        **{name: value.to(dtype) for name, value in values.items()},
        noise=noise,
        kernel_size=cfg.kernel_size,
    )


def noise_field_size(cfg: BFRConfig, image_size: tuple[int, int]) -> tuple[int, int, int]:
    """(3, Hn, Wn): the largest low-resolution image the ranges allow (scale = the range's minimum)."""
    height, width = image_size
    min_scale = cfg.downsample[0]
    return 3, math.ceil(height / min_scale), math.ceil(width / min_scale)


@torch.no_grad()
def clamp_to_ranges(params: OnlineBFRParams, cfg: BFRConfig) -> OnlineBFRParams:
    """Project the parameters back into `cfg`'s ranges, in place (leaf tensors stay leaves).

    theta is periodic (a kernel rotated by pi is the same kernel): it is wrapped into [0, pi), not clamped.
    The quality stays continuous; the real codec rounds it.
    """
    params.sigma_x.clamp_(*cfg.blur_sigma)
    params.sigma_y.clamp_(*cfg.blur_sigma)
    params.theta.remainder_(math.pi)
    params.scale.clamp_(*cfg.downsample)
    params.noise_sigma.clamp_(*cfg.noise_sigma)
    params.jpeg_quality.clamp_(*(float(q) for q in cfg.jpeg_quality))
    return params
