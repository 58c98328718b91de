"""Restoring the faces of any photo: detect, align each face as the training faces were, restore, paste back.

1. Read: any mode and bit depth (grey, palette, alpha, 16-bit) becomes 8-bit RGB, with a note.
2. Detect: dlib's HOG frontal detector (upsampling the photo once, twice for small photos) and its 5-point
   landmark model, shipped with the identity network (faceres.weights ``dlib_landmarks``).
3. Align: the similarity transform that takes the 5 landmarks to where they sit in the training faces
   (:func:`alignment_template`, measured on aligned faces of the kind the model was trained on), so an
   FFHQ-aligned model and a CelebA-aligned one each get their own crop. The template comes from the generator
   file when it carries one (:func:`attach_template`: ``faceres publish-results`` writes it into the published
   generator), else from the workspace's prepared training faces (:func:`choose_template`).
   A face larger than the crop is cut at an integer multiple of the crop size and box-averaged down.
4. Restore: all crops of a photo in one batch at the generator's resolution (faceres.restore.restore_pixels).
5. Paste back: the restored crop and a soft mask (1 inside, 0 within 1/16 of the crop's edge, blurred) warped
   back with the inverse transform and alpha-blended into the photo.

A photo without a detected face is passed through unchanged, with a note (``strict``: an error instead).
A photo over :data:`MAX_PHOTO_PIXELS` is refused from its header, before it is decoded. In a folder, a photo
that cannot be restored is one line and the others still run (:func:`restore_photos`); outputs never replace
an input, and photos whose names differ only in the extension get distinct outputs
(:func:`faceres.restore.folder.output_stems`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faceres.core.errors import DataError
from faceres.core.files import load_torch, save_torch
from faceres.core.imageio import list_images, read_rgb, read_rgb_converted, write_png
from faceres.models.generator import Generator
from faceres.restore import MAX_PHOTO_PIXELS
from faceres.restore.folder import check_out_apart, output_stems, restore_pixels

log = logging.getLogger(__name__)

TEMPLATE_FACES = 100  # aligned faces measured for the template
MIN_TEMPLATE_FACES = 5
DETECT_SIZE = 256  # aligned faces are upsampled to this before detection (HOG needs faces of ~80 px)
TEMPLATE_KEY = "alignment_template"  # the template's key in a generator file (attach_template)


class FaceDetector:
    """dlib's detector and 5-point landmark model: (photo) -> one 5 x 2 array (x, y) per face, largest first."""

    def __init__(self, landmark_model: Path):
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(landmark_model))

    def __call__(self, image: np.ndarray, upsample: int = 1) -> list[np.ndarray]:
        image = np.ascontiguousarray(image)
        boxes = sorted(self._detector(image, upsample), key=lambda b: -b.area())
        return [np.array([[p.x, p.y] for p in self._predictor(image, box).parts()], dtype=np.float64) for box in boxes]


def load_face_detector() -> FaceDetector:
    from faceres.weights.store import verified_file

    path, _ = verified_file("dlib_landmarks")
    return FaceDetector(Path(path))


def alignment_template(aligned_faces: str | Path, detector: FaceDetector, count: int = TEMPLATE_FACES) -> np.ndarray:
    """5 x 2: the mean position of each landmark in aligned faces (as fractions of the image side), from up to
    `count` faces of the folder (evenly spread over it) in which one face is found."""
    from PIL import Image

    files = list_images(aligned_faces)
    files = files[:: max(1, len(files) // count)][:count]
    found = []
    for file in files:
        face = read_rgb(file, convert=True)
        if face.shape[0] != face.shape[1]:
            raise DataError(f"{file}: {face.shape[1]}x{face.shape[0]} px; allowed: square aligned faces")
        big = np.asarray(Image.fromarray(face).resize((DETECT_SIZE, DETECT_SIZE), Image.Resampling.BICUBIC))
        landmarks = detector(big, upsample=0)
        if len(landmarks) == 1:
            found.append(landmarks[0] / DETECT_SIZE)
    if len(found) < MIN_TEMPLATE_FACES:
        raise DataError(f"{aligned_faces}: a face was found in {len(found)} of {len(files)} images; allowed: a "
                        f"folder of aligned faces (at least {MIN_TEMPLATE_FACES} detectable) to align photos like")
    return np.mean(found, axis=0)


TEMPLATE_SUFFIX = ".json"


def save_template(template: np.ndarray, path: str | Path, measured_on: str) -> None:
    """The template as JSON (5 [x, y] fractions of the side, and what it was measured on), to publish beside a
    generator: photos can then be aligned for it without its training faces."""
    Path(path).write_text(json.dumps(_template_document(template, measured_on), indent=2) + "\n", encoding="utf-8")


def _template_document(template: np.ndarray, measured_on: str) -> dict:
    """The stored form of a template, in a JSON file or a generator file."""
    assert template.shape == (5, 2), template.shape
    return {"landmarks": np.round(template, 6).tolist(), "measured_on": str(measured_on)}


def load_template(aligned_like: str | Path, detector: FaceDetector) -> np.ndarray:
    """`aligned_like` is a template saved by :func:`save_template` (``*.json``) or a folder of aligned faces
    to measure one on (:func:`alignment_template`)."""
    path = Path(aligned_like)
    if path.suffix != TEMPLATE_SUFFIX:
        return alignment_template(path, detector)
    try:
        landmarks = np.asarray(json.loads(path.read_text(encoding="utf-8"))["landmarks"], dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{path}: alignment template not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise DataError(f"{path}: not an alignment template; allowed: a JSON file with 'landmarks' (5 [x, y] "
                        "fractions of the side), as faceres publish-results writes, or a folder of aligned faces") from None
    return _checked_landmarks(landmarks, path)


def _checked_landmarks(landmarks: np.ndarray, where: object) -> np.ndarray:
    if landmarks.shape != (5, 2) or not np.all((landmarks > 0) & (landmarks < 1)):
        raise DataError(f"{where}: landmarks of shape {list(landmarks.shape)}; allowed: 5 [x, y] pairs inside (0, 1)")
    return landmarks


def attach_template(generator_file: str | Path, template: np.ndarray, measured_on: str,
                    out: str | Path | None = None) -> None:
    """`generator_file` (or a copy at `out`) with the alignment template of its training faces as an extra key
    (:data:`TEMPLATE_KEY`; :func:`faceres.models.io.load_generator` reads only the model's keys), so restore
    aligns photos like those faces wherever the file is. Training's own file stays as training wrote it."""
    state = load_torch(generator_file)
    if "model_config" not in state or "state_dict" not in state:
        raise DataError(f"{generator_file}: not a faceres generator file (expected keys model_config, state_dict)")
    state[TEMPLATE_KEY] = _template_document(_checked_landmarks(np.asarray(template, np.float64), generator_file),
                                             measured_on)
    save_torch(state, out or generator_file)


def generator_template(generator_file: str | Path) -> tuple[np.ndarray, str] | None:
    """(landmarks, what they were measured on) carried by a generator file, or None when it has none."""
    state = load_torch(generator_file)
    stored = state.get(TEMPLATE_KEY) if isinstance(state, dict) else None
    if stored is None:
        return None
    try:
        landmarks = np.asarray(stored["landmarks"], dtype=np.float64)
        measured_on = str(stored["measured_on"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{generator_file}: its {TEMPLATE_KEY} is not a template; allowed: landmarks (5 [x, y] "
                        "fractions of the side) and measured_on, as faceres publish-results writes") from None
    return _checked_landmarks(landmarks, generator_file), measured_on


def choose_template(generator_file: str | Path, aligned_like: str | Path | None, workspace_faces: str | Path,
                    detector: FaceDetector) -> tuple[np.ndarray, str]:
    """(template, one line saying which it is): `aligned_like` when given, else the generator's own, else the
    template measured on `workspace_faces` (this workspace's prepared training faces), else a DataError."""
    if aligned_like is not None:
        return load_template(aligned_like, detector), f"aligning faces like {aligned_like} (--aligned-like)"
    carried = generator_template(generator_file)
    if carried is not None:
        landmarks, measured_on = carried
        return landmarks, (f"aligning faces like the generator's training faces (the template in "
                           f"{generator_file}, measured on {measured_on})")
    if not Path(workspace_faces).is_dir():
        raise DataError(f"{generator_file} carries no alignment template and {workspace_faces} (this workspace's "
                        "prepared training faces) is not there; allowed: --aligned-like with the model's training "
                        "faces or its alignment_template.json (faceres publish-results writes both)")
    return load_template(workspace_faces, detector), (
        f"{generator_file} carries no alignment template: aligning faces like {workspace_faces} (this "
        "workspace's prepared training faces; --aligned-like to choose)")


def check_photo_size(file: Path, max_pixels: int = MAX_PHOTO_PIXELS) -> None:
    """A DataError for a photo over `max_pixels`, read from its header before anything is decoded."""
    from PIL import Image

    # PIL's own decompression-bomb check would raise on the header already (above 179 MP) or only warn (from
    # 89 MP); ours is lower, so PIL's is off for this look, which decodes no pixels.
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(file) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError):
        return  # not a readable image: reading it says so, with the reason
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if width * height > max_pixels:
        raise DataError(f"{file}: {width}x{height} px ({width * height / 1e6:.0f} MP); allowed: at most "
                        f"{max_pixels / 1e6:.0f} MP (restoring holds ~130 bytes per pixel): downscale it first")


@dataclass
class RestoredPhoto:
    image: np.ndarray  # H x W x 3 uint8: the photo with its faces restored (unchanged when none was found)
    faces_in: list[np.ndarray]  # the aligned crops given to the generator
    faces_out: list[np.ndarray]  # their restorations
    notes: list[str]


def _transform(landmarks: np.ndarray, template: np.ndarray, size: float):
    """The similarity transform photo -> crop taking the landmarks to the template at crop side `size`."""
    from skimage.transform import SimilarityTransform

    transform = SimilarityTransform.from_estimate(landmarks, template * size)
    if not transform:  # skimage returns a falsy failure object for degenerate points
        raise DataError(f"face alignment failed: degenerate landmarks {landmarks.tolist()}")
    return transform


def _crop(photo: np.ndarray, landmarks: np.ndarray, template: np.ndarray, resolution: int):
    """(crop R x R x 3 uint8, the photo -> crop transform at resolution R)."""
    from skimage.transform import SimilarityTransform, warp

    transform = _transform(landmarks, template, resolution)
    factor = max(1, math.ceil(1 / transform.scale))  # a face larger than the crop: cut larger, then average down
    fine = transform + SimilarityTransform(scale=factor)  # the same crop, `factor` times finer
    crop = warp(photo, fine.inverse, output_shape=(resolution * factor,) * 2, order=1, mode="edge",
                preserve_range=True)
    crop = crop.reshape(resolution, factor, resolution, factor, 3).mean(axis=(1, 3))
    return np.clip(np.rint(crop), 0, 255).astype(np.uint8), transform


def _soft_mask(resolution: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    mask = np.zeros((resolution, resolution), np.float64)
    border = max(1, resolution // 16)
    mask[border:-border, border:-border] = 1.0
    return gaussian_filter(mask, sigma=border / 2)


def restore_photo(photo: np.ndarray, generator: Generator, detector: FaceDetector, template: np.ndarray,
                  strict: bool = False, name: str = "photo") -> RestoredPhoto:
    """Every detected face of `photo` (H x W x 3 uint8) restored and pasted back (module docstring)."""
    from skimage.transform import warp

    resolution = generator.arch.resolution
    faces = detector(photo, upsample=2 if max(photo.shape[:2]) < 400 else 1)
    if not faces:
        if strict:
            raise DataError(f"{name}: no face found; allowed: photos with at least one frontal face "
                            "(drop --strict to pass such photos through unchanged)")
        return RestoredPhoto(photo.copy(), [], [], [f"{name}: no face found; passed through unchanged"])
    crops, transforms = zip(*(_crop(photo, landmarks, template, resolution) for landmarks in faces))
    restored = restore_pixels(generator, torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous())
    mask = _soft_mask(resolution)
    out = photo.astype(np.float64)
    for face, transform in zip(restored, transforms):
        shape = photo.shape[:2]
        pasted = warp(face.astype(np.float64), transform, output_shape=shape, order=1, preserve_range=True)
        alpha = warp(mask, transform, output_shape=shape, order=1, preserve_range=True)[..., None]
        out = out * (1 - alpha) + pasted * alpha
    return RestoredPhoto(np.clip(np.rint(out), 0, 255).astype(np.uint8), list(crops), list(restored),
                         [f"{name}: {len(faces)} face(s) restored"])


FACES_FOLDER = "faces"  # beside the whole photos: the aligned crops, in and out


def restore_photos(inputs: str | Path, out_dir: str | Path, generator: Generator, template: np.ndarray,
                   detector: FaceDetector, strict: bool = False, max_pixels: int = MAX_PHOTO_PIXELS) -> Iterator[str]:
    """`inputs` (a photo or a folder of them) -> out_dir/<name>.png (the whole photo) and
    out_dir/faces/<name>_<k>_{input,restored}.png; yields the notes (lines) as it goes.

    A photo that cannot be restored (unreadable, over `max_pixels`, no face with `strict`) is a DataError for a
    single photo; in a folder it is a note, the other photos still run, and a DataError counting them ends it."""
    inputs, out_dir = Path(inputs), Path(out_dir)
    files = [inputs] if inputs.is_file() else list_images(inputs)
    check_out_apart(inputs, out_dir, also_writes=(FACES_FOLDER,))
    failed = []
    for file, name in zip(files, output_stems(files)):
        try:
            check_photo_size(file, max_pixels)
            photo, converted = read_rgb_converted(file)
            result = restore_photo(photo, generator, detector, template, strict=strict, name=str(file))
        except DataError as error:
            if len(files) == 1:
                raise
            failed.append(file)
            yield f"{error} (not restored)"
            continue
        if converted:
            yield f"{file}: converted to 8-bit RGB"
        write_png(out_dir / f"{name}.png", result.image)
        for k, (face_in, face_out) in enumerate(zip(result.faces_in, result.faces_out)):
            write_png(out_dir / FACES_FOLDER / f"{name}_{k}_input.png", face_in)
            write_png(out_dir / FACES_FOLDER / f"{name}_{k}_restored.png", face_out)
        yield from result.notes
    if failed:
        raise DataError(f"{inputs}: {len(failed)} of {len(files)} photos not restored (each named above: "
                        f"{', '.join(f.name for f in failed[:5])}{', ...' if len(failed) > 5 else ''}); the other "
                        f"{len(files) - len(failed)} are in {out_dir}")
