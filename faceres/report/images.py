"""Finding a test image by id in an output folder, and embedding images in self-contained HTML."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from faceres.core.errors import DataError
from faceres.core.imageio import IMAGE_EXTENSIONS, read_rgb


def find_image(folder: str | Path, image_id: str) -> Path:
    """The image ``image_id`` in ``folder``: the exact file name, else ``<image_id>.<ext>`` for one image extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory of images")
    exact = folder / image_id
    if exact.is_file():
        return exact
    candidates = [p for p in (folder / f"{image_id}{ext}" for ext in IMAGE_EXTENSIONS) if p.is_file()]
    if len(candidates) > 1:
        raise DataError(f"{folder}: image id {image_id!r} is ambiguous ({', '.join(p.name for p in candidates)})")
    if not candidates:
        raise DataError(f"{folder}: no image {image_id!r} (looked for {image_id}[{'|'.join(IMAGE_EXTENSIONS)}])")
    return candidates[0]


def load_image(folder: str | Path, image_id: str) -> np.ndarray:
    """(H, W, 3) uint8 of image ``image_id`` in ``folder``; a one-line DataError if missing or unreadable."""
    return read_rgb(find_image(folder, image_id))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:<mime>;base64,...``: an image inlined in HTML, so the page opens offline as one file."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
