"""Other methods' restorations (GFPGAN, GPEN, DFDNet, CodeFormer, ...) as the folder the evaluate stage scores.

Their official inference scripts name and size outputs their own way: GFPGAN and CodeFormer write
``restored_faces/<name>_00.png`` (the face index appended) at 512 px, GPEN ``<name>_GPEN.jpg`` beside a
``<name>_COMP.jpg`` comparison. :func:`import_external` pairs every output with a degraded input by name (the
exact stem, else the stem without one of SUFFIXES), converts it to 8-bit RGB, resizes it to the inputs' size
and writes ``<out>/<image_id>.png``; a re-import replaces the folder whole, so no file of an earlier run stays.
``data/external/<method>`` is where the evaluate stage looks when params.yaml's ``external.<method>`` is null,
and a dependency of that stage alone: re-importing a method reruns its metrics, not the other methods'. The
folder keeps a ``.gitkeep`` (KEEP_FILE), tracked in git while its images are not, so that every clone has the
folder DVC depends on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from faceres.core.errors import DataError
from faceres.core.files import atomic_directory
from faceres.core.imageio import list_images, read_rgb, read_rgb_converted, write_png

# appended to the input's name by the official scripts (GFPGAN / CodeFormer face index, GPEN, DFDNet, generic)
SUFFIXES = ("_00", "_GPEN", "_restored", "_final", "_output")
COMPARISON_SUFFIXES = ("_COMP", "_cmp")  # side-by-side images (GPEN), not restorations
NESTED_FACES = "restored_faces"  # GFPGAN / CodeFormer: the aligned faces' folder inside their results folder
KEEP_FILE = ".gitkeep"  # in every imported folder: the folder exists in a clone (.gitignore tracks only it)
SHOWN = 5  # names listed in an error


@dataclass(frozen=True)
class ImportSummary:
    images: int
    converted: int  # not 8-bit RGB: converted
    resized: int  # not at the inputs' size: resized
    skipped: int  # comparison images
    source: Path


def _listed(names: list[str], count: int | None = None) -> str:
    count = len(names) if count is None else count
    shown = ", ".join(names[:SHOWN])
    return f"{shown}{', ...' if count > SHOWN else ''} ({count} in all)"


def _input_id(stem: str, ids: set[str]) -> str | None:
    if stem in ids:
        return stem
    for suffix in SUFFIXES:
        if stem.endswith(suffix) and stem[: -len(suffix)] in ids:
            return stem[: -len(suffix)]
    return None


def faces_folder(source: Path) -> Path:
    """`source`, or its ``restored_faces/`` when it is a GFPGAN / CodeFormer results folder."""
    return source / NESTED_FACES if (source / NESTED_FACES).is_dir() else source


def pair_outputs(source: Path, ids: set[str]) -> tuple[dict[str, Path], int]:
    """{input id: output file} for the images in `source`, and how many comparison images were skipped;
    unmatched names, two outputs for one input, or inputs without an output are one DataError listing the
    first few and the count."""
    pairs: dict[str, Path] = {}
    unmatched, doubled, skipped = [], [], 0
    for path in list_images(source):
        if path.stem.endswith(COMPARISON_SUFFIXES):
            skipped += 1
            continue
        image_id = _input_id(path.stem, ids)
        if image_id is None:
            unmatched.append(path.name)
        elif image_id in pairs:
            doubled.append(f"{pairs[image_id].name} and {path.name}")
        else:
            pairs[image_id] = path
    if unmatched:
        raise DataError(f"{source}: file names that match no degraded input (allowed: the input's name, optionally "
                        f"with one of {', '.join(SUFFIXES)}): {_listed(unmatched)}")
    if doubled:
        raise DataError(f"{source}: several outputs for one input: {_listed(doubled)}")
    missing = sorted(ids - set(pairs))
    if missing:
        raise DataError(f"{source}: no output for these degraded inputs: {_listed(missing)}")
    return pairs, skipped


def _resized(array: np.ndarray, size: int, path: Path) -> np.ndarray:
    height, width = array.shape[:2]
    if abs(height - width) > 0.01 * max(height, width):
        raise DataError(f"{path}: {width}x{height} px; allowed: square face crops (the aligned faces it restored)")
    # Lanczos with PIL's antialiasing: GFPGAN's 512 px faces down to the pipeline's 64 px without aliasing
    return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def import_external(source: str | Path, inputs: str | Path, out: str | Path) -> ImportSummary:
    """Write `source`'s restorations of the degraded `inputs` as ``out/<image_id>.png`` at the inputs' size."""
    source, inputs, out = faces_folder(Path(source)), Path(inputs), Path(out)
    input_files = list_images(inputs)
    size = read_rgb(input_files[0]).shape[0]
    pairs, skipped = pair_outputs(source, {p.stem for p in input_files})
    converted = resized = 0
    with atomic_directory(out) as tmp:
        (tmp / KEEP_FILE).touch()
        for image_id, path in sorted(pairs.items()):
            array, was_converted = read_rgb_converted(path)
            converted += was_converted
            if array.shape[:2] != (size, size):
                array = _resized(array, size, path)
                resized += 1
            write_png(tmp / f"{image_id}.png", array)
    return ImportSummary(len(pairs), converted, resized, skipped, source)

