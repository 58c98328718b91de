"""`faceres restore` never overwrites an input and never loses a result: the output folder is refused where it
would be, or hold, the inputs; photos of one folder whose names differ only in the extension get outputs of
their own; a photo over the pixel limit is one line and the rest of the folder still runs. A stand-in
detector and generator: nothing here needs the weights cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceres.core.errors import DataError
from faceres.restore import MAX_PHOTO_PIXELS
from faceres.restore.folder import output_stems, restore_folder
from faceres.restore.photos import restore_photos
from tests.test_photos import RESOLUTION, Constant, Identity

TEMPLATE = np.array([[0.35, 0.45], [0.65, 0.45], [0.5, 0.6], [0.38, 0.75], [0.62, 0.75]])


def no_face(image, upsample=1):
    return []


def _md5s(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _photo(path: Path, value: int, size=(40, 30), mode="RGB") -> np.ndarray:
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, **({"quality": 90} if path.suffix == ".jpg" else {}))
    return pixels


def _restore(inputs, out, **kwargs) -> list[str]:
    return list(restore_photos(inputs, out, Constant(1.0), TEMPLATE, no_face, **kwargs))


@pytest.mark.parametrize("out", [".", "restored", "restored/deeper"])
def test_an_output_folder_that_is_or_lies_inside_the_input_folder_is_one_line_and_the_originals_stay(tmp_path, out):
    photos = tmp_path / "photos"
    _photo(photos / "p.png", 1, mode="RGBA")  # the review's case: an RGBA original that came back without alpha
    _photo(photos / "q.jpg", 2)
    before = _md5s(photos)
    with pytest.raises(DataError, match=r"allowed: an output folder outside it") as error:
        _restore(photos, photos / out)
    assert str(photos) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(DataError, match=r"allowed: an output folder outside it"):
        restore_folder(Identity(0.0), photos, photos / out, progress=False)  # --aligned
    assert _md5s(photos) == before


def test_one_photo_may_not_be_restored_into_its_own_folder_but_below_it(tmp_path):
    photos = tmp_path / "photos"
    _photo(photos / "p.png", 1, mode="RGBA")
    before = _md5s(photos)
    with pytest.raises(DataError, match=r"output folder .* is the input folder .*; allowed: an output folder outside"):
        _restore(photos / "p.png", photos)
    assert _md5s(photos) == before
    _restore(photos / "p.png", photos / "restored")  # `--input photo.jpg --out restored`, the README's example
    assert sorted(_md5s(photos)) == ["p.png", "restored/p.png"] and _md5s(photos)["p.png"] == before["p.png"]


def test_inputs_in_the_folder_the_crops_go_to_are_refused(tmp_path):
    faces = tmp_path / "restored" / "faces"
    _photo(faces / "p_0_input.png", 1)
    before = _md5s(tmp_path)
    with pytest.raises(DataError, match=r"restore writes its faces into that folder"):
        _restore(faces, tmp_path / "restored")
    assert _md5s(tmp_path) == before


def test_names_that_differ_only_in_the_extension_each_get_an_output_of_their_own(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photo(photos / "x.png", 1)
    _photo(photos / "x.jpg", 2)
    _photo(photos / "y.png", 3)
    notes = _restore(photos, out)
    assert sorted(p.name for p in out.iterdir()) == ["x.jpg.png", "x.png.png", "y.png"]
    for name in ("x.jpg", "x.png", "y.png"):  # no face: each output is its own input, pixel for pixel
        expected = np.asarray(Image.open(photos / name).convert("RGB"))
        restored = np.asarray(Image.open(out / (name if name == "y.png" else f"{name}.png")))
        assert np.array_equal(restored, expected), name
    assert sum(n.endswith("no face found; passed through unchanged") for n in notes) == 3


def test_aligned_faces_with_colliding_names_each_get_an_output_of_their_own(tmp_path):
    faces, out = tmp_path / "faces", tmp_path / "out"
    png = _photo(faces / "x.png", 1, size=(RESOLUTION, RESOLUTION))
    bmp = _photo(faces / "x.bmp", 2, size=(RESOLUTION, RESOLUTION))
    written = restore_folder(Identity(0.0), faces, out, progress=False)
    assert sorted(p.name for p in written) == ["x.bmp.png", "x.png.png"]
    # an identity generator gives each face back (up to the uint8 -> [-1, 1] -> uint8 round trip)
    for name, pixels in (("x.png.png", png), ("x.bmp.png", bmp)):
        assert np.abs(np.asarray(Image.open(out / name)).astype(int) - pixels).max() <= 1, name


def test_output_names_stay_distinct_when_a_full_name_is_also_a_stem():
    files = [Path(n) for n in ("x.jpg", "x.jpg.png", "x.png", "y.png")]
    names = output_stems(files)
    assert names == ["x.jpg", "x.jpg.png", "x.png", "y"]
    assert len(set(names)) == len(files)


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """The review's 20000 x 20000 PNG (400 MP, 49 KB at 1 bit): over the limit and PIL's bomb limit."""
    path = tmp_path_factory.mktemp("huge") / "2_huge.png"
    Image.new("1", (20000, 20000)).save(path)
    return path


def test_a_photo_over_the_pixel_limit_is_one_line_and_the_rest_of_the_folder_still_runs(tmp_path, huge_png):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photo(photos / "1_good.png", 1)
    (photos / "2_huge.png").write_bytes(huge_png.read_bytes())
    _photo(photos / "3_good.jpg", 3)
    (photos / "4_empty.jpg").write_bytes(b"")
    notes = []
    with pytest.raises(DataError) as error:
        for note in restore_photos(photos, out, Constant(1.0), TEMPLATE, no_face):
            notes.append(note)
    assert sorted(p.name for p in out.iterdir()) == ["1_good.png", "3_good.png"]  # both good photos written
    huge = [n for n in notes if "2_huge.png" in n]
    assert huge == [f"{photos / '2_huge.png'}: 20000x20000 px (400 MP); allowed: at most "
                    f"{MAX_PHOTO_PIXELS / 1e6:.0f} MP (restoring holds ~130 bytes per pixel): downscale it first "
                    "(not restored)"]
    assert any("4_empty.jpg" in n and n.endswith("(not restored)") for n in notes)
    assert str(error.value) == (f"{photos}: 2 of 4 photos not restored (each named above: 2_huge.png, "
                                f"4_empty.jpg); the other 2 are in {out}")


def test_a_single_photo_over_the_pixel_limit_is_one_line(tmp_path, huge_png):
    with pytest.raises(DataError, match=r"2_huge.png: 20000x20000 px \(400 MP\); allowed: at most") as error:
        _restore(huge_png, tmp_path / "out")
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()
