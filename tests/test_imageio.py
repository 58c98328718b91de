"""Bad image inputs get one-line errors naming the file; good ones read exactly as PIL decodes them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from faceres.core.errors import DataError
from faceres.core.imageio import list_images, read_rgb, write_png


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)


def _bad_files(tmp_path, rgb, celeba_file=None) -> dict[str, tuple]:
    files = {}
    (tmp_path / "random.jpg").write_bytes(np.random.default_rng(1).bytes(500))
    files["random.jpg"] = "not an image file"
    (tmp_path / "text.png").write_text("hello, I am not a picture")
    files["text.png"] = "not an image file"
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    files["gray.png"] = "grayscale image"
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    files["cmyk.jpg"] = "CMYK image"
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "alpha.png")
    files["alpha.png"] = "RGB with an alpha channel"
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    files["palette.png"] = "palette image"
    cv2.imwrite(str(tmp_path / "deep.png"), rgb.astype(np.uint16) * 257)  # 48-bit RGB PNG
    files["deep.png"] = "16-bit RGB image"
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    files["gray16.png"] = "16-bit grayscale image"
    return files


def test_each_bad_input_is_named_with_its_problem(tmp_path, rgb):
    for name, problem in _bad_files(tmp_path, rgb).items():
        with pytest.raises(DataError) as info:
            read_rgb(tmp_path / name)
        message = str(info.value)
        assert message.startswith(str(tmp_path / name)), message
        assert problem in message and "\n" not in message, message


def test_truncated_jpeg_is_reported_as_corrupt(tmp_path, celeba):
    original = (celeba / "images" / "000001.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(original[: len(original) // 2])
    with pytest.raises(DataError, match=r"cut.jpg: corrupt or truncated image"):
        read_rgb(tmp_path / "cut.jpg")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="nope.png: file not found"):
        read_rgb(tmp_path / "nope.png")
    with pytest.raises(DataError, match="no images found"):
        list_images(tmp_path)
    with pytest.raises(DataError, match="not a directory of images"):
        list_images(tmp_path / "absent")


def test_good_images_read_exactly_as_pil_decodes(tmp_path, rgb, celeba):
    write_png(tmp_path / "a.png", rgb)
    assert np.array_equal(read_rgb(tmp_path / "a.png"), rgb)
    photo = celeba / "images" / "000002.jpg"
    assert np.array_equal(read_rgb(photo), np.asarray(Image.open(photo).convert("RGB")))
    assert not list(tmp_path.glob("*.tmp")), "atomic write leaves no temp file"


def test_listing_is_sorted_and_filters_non_images(tmp_path, rgb):
    for name in ("b.png", "a.jpg", ".hidden.png"):
        Image.fromarray(rgb).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]


def test_converting_reads_16bit_grey_by_its_high_byte_and_grey_as_three_equal_channels(tmp_path):
    values = np.array([[0, 255, 256, 65535], [1000, 30000, 40000, 512]], np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I;16")
    array = read_rgb(tmp_path / "grey16.png", convert=True)
    expected = (values // 256).astype(np.uint8)  # by hand: 65535 -> 255, 30000 -> 117, 256 -> 1
    assert array.shape == (2, 4, 3) and (array == expected[..., None]).all()
    Image.fromarray(expected, mode="L").save(tmp_path / "grey8.png")
    assert (read_rgb(tmp_path / "grey8.png", convert=True) == expected[..., None]).all()
