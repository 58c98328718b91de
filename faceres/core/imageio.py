"""Reading and writing face images with one-line errors that name the file.

The pipeline works on 8-bit RGB. Anything else (corrupt or truncated files, non-images, grayscale, palette,
CMYK, alpha, 16-bit) is rejected with a :class:`DataError` saying what the file is and what is allowed; the
caller decides whether that stops the run or is recorded and skipped (``data.on_bad_image``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from faceres.core.errors import DataError
from faceres.core.files import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALLOWED = "8-bit RGB (PNG, JPEG, WebP, BMP or TIFF)"

_MODE_NAMES = {
    "1": "1-bit black and white",
    "L": "grayscale",
    "LA": "grayscale with alpha",
    "P": "palette",
    "PA": "palette with alpha",
    "RGBA": "RGB with an alpha channel",
    "RGBa": "RGB with an alpha channel",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "LAB": "Lab",
    "HSV": "HSV",
    "I": "32-bit integer",
    "F": "32-bit float",
    "I;16": "16-bit grayscale",
    "I;16B": "16-bit grayscale",
    "I;16L": "16-bit grayscale",
}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name; a missing or empty folder is a DataError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory of images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise DataError(f"{folder}: no images found (allowed extensions: {', '.join(IMAGE_EXTENSIONS)})")
    return files


def _bits_per_sample(image: Image.Image) -> int:
    """8 for ordinary images; 16 for 48-bit RGB PNG/TIFF that PIL silently narrows to mode RGB."""
    for tile in getattr(image, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None  # the decoder's raw mode, alone or first in a tuple
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return 16
    return 8


def read_rgb(path: str | Path, *, convert: bool = False) -> np.ndarray:
    """An 8-bit RGB image as a (H, W, 3) uint8 array, or a DataError naming the file and the problem.

    Training data must be 8-bit RGB (anything else is refused); ``convert`` reads other methods' outputs for
    scoring the way pytorch-fid does: grey, palette, RGBA and 16-bit images go through PIL's ``convert("RGB")``.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # PIL warns (not raises) on some damaged files; we want the error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                mode = image.mode
                bits = _bits_per_sample(image)
                if convert and mode.startswith("I;16"):
                    # PIL's convert("RGB") clips 16-bit grey at 255 (a white image): scale to 8 bits instead
                    grey = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
                    array = np.repeat(grey[..., None], 3, axis=2)
                elif convert and (mode != "RGB" or bits != 8):
                    array = np.array(image.convert("RGB"), dtype=np.uint8)
                else:
                    if mode != "RGB":
                        kind = _MODE_NAMES.get(mode, f"mode {mode}")
                        raise DataError(f"{path}: {kind} image; allowed: {ALLOWED}")
                    if bits != 8:
                        raise DataError(f"{path}: {bits}-bit RGB image; allowed: {ALLOWED}")
                    image.load()
                    array = np.array(image, dtype=np.uint8)  # writable: torch warns on read-only arrays
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file PIL can read; allowed: {ALLOWED}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: corrupt or truncated image ({str(exc).strip() or type(exc).__name__})") from None
    if array.ndim != 3 or array.shape[2] != 3:
        raise DataError(f"{path}: unexpected pixel layout {array.shape}; allowed: {ALLOWED}")
    return array


def read_rgb_converted(path: str | Path) -> tuple[np.ndarray, bool]:
    """(8-bit RGB array, whether it had to be converted): other methods' outputs and users' photos, which may be
    grey, palette, alpha or 16-bit; a corrupt file is still a DataError naming it."""
    try:
        return read_rgb(path), False
    except DataError:
        return read_rgb(path, convert=True), True  # a corrupt file raises again, with its own message


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a (H, W, 3) uint8 array losslessly, atomically (temp file + rename: no half-written outputs)."""
    path = Path(path)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"write_png expects (H, W, 3) uint8, got {array.shape} {array.dtype}")
    with atomic_write(path) as handle:
        # compress_level 1: PNG stays lossless; the default level 6 triples the write time for ~10% size.
        Image.fromarray(array).save(handle, format="PNG", compress_level=1)
