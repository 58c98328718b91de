"""JPEG compression: the real codec (offline, exact) and a differentiable torch model of it (online).

``mode="real"``: libjpeg through PIL - baseline, 4:2:0 chroma subsampling, the standard IJG tables scaled by
quality (``jpeg_set_quality``), integer slow DCT, fancy (triangle) chroma upsampling on decode. Exact and
replayable, not differentiable.

``mode="diff"``: the same steps written in torch so that gradients reach the image and the quality:
JFIF RGB->YCbCr, 2x2 chroma averaging, 8x8 orthonormal DCT, division by the quality-scaled IJG tables,
rounding, dequantization, inverse DCT, triangle chroma upsampling, YCbCr->RGB. Every rounding step of the
codec (samples, coefficients, table entries) is kept in the forward pass and passed straight through
backwards (gradient 1), so the forward output stays close to libjpeg's (PSNR 44-50 dB against it on
faces at quality 60-100; what remains is libjpeg's integer DCT and fixed-point colour arithmetic) while
d/d(quality) is non-zero: for y = Q * round(c / Q) it is round(c/Q) - c/Q per coefficient, the quantization
error per unit of step. The table entries floor((base * scale(q) + 50) / 100), clamped to [1, 255], use the
same straight-through rule, so increasing the quality past the point where all entries are 1 still has a
gradient pointing towards lower quality. ``rounding="cubic"`` swaps the straight-through rounding of the
coefficients for the soft round of Shin & Song (2017), round(z) + (z - round(z))^3, in both passes.
"""

from __future__ import annotations

import io
import math
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from faceres.degrade.ops import device_constant, replicate_beyond, to_uint8
from faceres.core.errors import ConfigError

JpegMode = Literal["real", "diff"]
Rounding = Literal["ste", "cubic"]

# ITU T.81 Annex K, tables K.1 and K.2, natural (row-major) order
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)


def check_quality(quality: float, where: str = "jpeg quality") -> None:
    if not 1 <= quality <= 100:
        raise ConfigError(f"{where} = {quality}: allowed: 1..100")


# --------------------------------------------------------------------------------------------------------
# Real codec


def jpeg_real_uint8(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode + decode one (3, H, W) uint8 image with libjpeg (PIL) at integer `quality`, 4:2:0.

    Returns (3, H, W) uint8 on the image's device (a channels-last view of the decoded H x W x 3 array).
    """
    check_quality(quality)
    height, width = image.shape[-2:]
    array = image.detach().cpu().permute(1, 2, 0).contiguous().numpy()
    buffer = io.BytesIO()
    Image.frombuffer("RGB", (width, height), array, "raw", "RGB", 0, 1).save(
        buffer, format="JPEG", quality=int(quality), subsampling=2
    )
    buffer.seek(0)
    with Image.open(buffer, formats=["JPEG"]) as decoded:
        out = np.array(decoded, dtype=np.uint8)
    if out.shape != (height, width, 3):  # libjpeg always returns what it was given; guard the assumption
        raise RuntimeError(f"JPEG round trip changed the image from {height}x{width}x3 to {out.shape}")
    return torch.from_numpy(out).permute(2, 0, 1).to(image.device)


def _qualities(quality: torch.Tensor | float | Sequence[float], batch: int, device, dtype) -> torch.Tensor:
    """One quality per image as a (B,) tensor (gradient kept)."""
    q = torch.as_tensor(quality).to(device=device, dtype=dtype).reshape(-1)
    if q.numel() == 1:
        q = q.expand(batch)
    if q.numel() != batch:
        raise ValueError(f"jpeg: {q.numel()} qualities for a batch of {batch} images")
    return q


def jpeg(
    images: torch.Tensor,
    quality: torch.Tensor | float | Sequence[float],
    mode: JpegMode = "diff",
    rounding: Rounding = "ste",
) -> torch.Tensor:
    """JPEG round trip of (B, 3, H, W) float images in [0, 1], one quality per image (or one for all)."""
    if mode == "diff":
        return jpeg_diff(images, quality, rounding=rounding)
    if mode != "real":
        raise ConfigError(f"jpeg mode = {mode!r}: allowed: real, diff")
    q = _qualities(quality, images.shape[0], "cpu", torch.float64)
    out = []
    for image, qi in zip(to_uint8(images), q.tolist()):
        if qi != int(qi):
            raise ConfigError(f"jpeg quality = {qi}: the real codec needs an integer 1..100")
        out.append(jpeg_real_uint8(image, int(qi)))
    return torch.stack(out).to(images.dtype).div_(255.0)


# --------------------------------------------------------------------------------------------------------
# Differentiable model


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _floor_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


def _clamp_ste(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return x + (x.clamp(low, high) - x).detach()


def quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) qualities (float, may require grad) -> luma and chroma tables (B, 8, 8), libjpeg's integers.

    libjpeg: scale = 5000 / q below 50, else 200 - 2 q; entry = (base * scale + 50) // 100 clamped to
    [1, 255] (baseline). Floor and clamp pass gradients straight through.
    """
    q = _clamp_ste(quality, 1.0, 100.0)
    scale = torch.where(q < 50.0, 5000.0 / q, 200.0 - 2.0 * q)[:, None, None]
    tables = []
    for base in (LUMA_TABLE, CHROMA_TABLE):
        base_t = device_constant(base, quality.dtype, quality.device)
        tables.append(_clamp_ste(_floor_ste((base_t * scale + 50.0) / 100.0), 1.0, 255.0))
    return tables[0], tables[1]


def _dct_matrix(dtype, device) -> torch.Tensor:
    """The orthonormal 8x8 DCT-II matrix M (coef = M @ block @ M^T) on `device`."""
    return device_constant(_DCT_VALUES, dtype, device)


_DCT_VALUES = tuple(
    tuple((0.5 / math.sqrt(2.0) if k == 0 else 0.5) * math.cos((2 * n + 1) * k * math.pi / 16) for n in range(8))
    for k in range(8)
)


_RGB_TO_YCC = ((0.299, 0.587, 0.114), (-0.168735892, -0.331264108, 0.5), (0.5, -0.418687589, -0.081312411))
_YCC_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136286, -0.714136286), (1.0, 1.772, 0.0))
_CHROMA_OFFSET = ((0.0,), (128.0,), (128.0,))  # (3, 1, 1): Cb and Cr are stored offset by 128


def _chroma_offset(x: torch.Tensor) -> torch.Tensor:
    return device_constant(_CHROMA_OFFSET, x.dtype, x.device)[..., None]


def _color(x: torch.Tensor, matrix) -> torch.Tensor:
    m = device_constant(matrix, x.dtype, x.device)
    return torch.einsum("ij,bjhw->bihw", m, x)


def _blockwise(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Apply left @ block @ right to every 8x8 block of (B, C, H, W), H and W multiples of 8."""
    b, c, h, w = x.shape
    blocks = x.reshape(b, c, h // 8, 8, w // 8, 8)
    out = torch.einsum("ij,bcyjxk,kl->bcyixl", left, blocks, right)
    return out.reshape(b, c, h, w)


def _per_block(table: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, 8, 8) table tiled over an (h, w) plane -> (B, 1, h, w)."""
    return table.repeat(1, h // 8, w // 8)[:, None]


def jpeg_diff(
    images: torch.Tensor,
    quality: torch.Tensor | float | Sequence[float],
    rounding: Rounding = "ste",
    extent: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Differentiable JPEG (4:2:0) of (B, 3, H, W) float images in [0, 1]; see the module docstring.

    `extent` = (heights, widths), (B,) int64 tensors: image b is the top-left heights[b] x widths[b] of its
    canvas (H and W multiples of 16), coded as libjpeg codes an image of that size (edge replication to
    whole blocks, chroma upsampled from its true extent); the output is valid inside the extent. Sizes that
    differ per image then need no host synchronisation and no per-image loop.
    """
    if rounding not in ("ste", "cubic"):
        raise ConfigError(f"jpeg rounding = {rounding!r}: allowed: ste, cubic")
    b, _, h, w = images.shape
    q = _qualities(quality, b, images.device, images.dtype)
    if extent is not None:
        assert h % 16 == 0 and w % 16 == 0, "jpeg_diff: a canvas with an extent is whole 16x16 MCUs"
        x = replicate_beyond(images, *extent)
    else:
        # libjpeg replicates the last row/column to whole 16x16 MCUs before subsampling
        ph, pw = -h % 16, -w % 16
        x = F.pad(images, (0, pw, 0, ph), mode="replicate") if ph or pw else images
    # encoder: 8-bit Y, Cb, Cr samples (Cb/Cr offset by 128), level-shifted by -128 for the DCT
    ycc = _round_ste((_color(x * 255.0, _RGB_TO_YCC) + _chroma_offset(x)).clamp(0.0, 255.0))
    luma = ycc[:, :1] - 128.0
    chroma = _round_ste(F.avg_pool2d(ycc[:, 1:], 2)) - 128.0
    dct = _dct_matrix(images.dtype, images.device)
    luma_table, chroma_table = quant_tables(q)
    decoded = []
    for plane, table in ((luma, luma_table), (chroma, chroma_table)):
        steps = _per_block(table, *plane.shape[-2:])
        z = _blockwise(plane, dct, dct.T) / steps
        zq = _round_ste(z) if rounding == "ste" else torch.round(z) + (z - torch.round(z)) ** 3
        # decoder: inverse DCT, +128, rounded and range-limited 8-bit samples
        decoded.append(_round_ste((_blockwise(zq * steps, dct.T, dct) + 128.0).clamp(0.0, 255.0)))
    luma, chroma = decoded
    # libjpeg upsamples the chroma of the true (ceil(h/2), ceil(w/2)) extent, replicating its edge
    if extent is not None:
        chroma = replicate_beyond(chroma, (extent[0] + 1) // 2, (extent[1] + 1) // 2)
    else:
        chroma = chroma[..., : (h + 1) // 2, : (w + 1) // 2]
    chroma = F.interpolate(chroma, scale_factor=2.0, mode="bilinear", align_corners=False)
    ycc = torch.cat([luma[..., :h, :w], chroma[..., :h, :w]], dim=1) - _chroma_offset(luma)
    rgb = _color(ycc, _YCC_TO_RGB)
    return _round_ste(rgb.clamp(0.0, 255.0)) / 255.0
