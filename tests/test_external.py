"""`faceres import-external`: other methods' outputs, named and sized their way, become the folder the evaluate
stage scores; bad folders are one-line errors; a re-import leaves nothing of the last one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceres.core.errors import DataError
from faceres.pipeline.external import KEEP_FILE, import_external
from faceres.pipeline.design import external_folder
from tests.conftest import REPO, small_config

IDS = [f"{i:04d}" for i in range(7)]


def _inputs(root: Path, size: int = 64) -> Path:
    folder = root / "degraded" / "bfr" / "test"
    folder.mkdir(parents=True)
    for i, image_id in enumerate(IDS):
        Image.fromarray(np.full((size, size, 3), 10 * i, np.uint8)).save(folder / f"{image_id}.png")
    return folder


def _colour(i: int) -> tuple[int, int, int]:
    return (20 + 30 * i, 200 - 20 * i, 90)


def test_gfpgan_results_folder_512px_faces_with_the_face_index_suffix(tmp_path):
    inputs = _inputs(tmp_path)
    results = tmp_path / "gfpgan-results"
    (results / "restored_faces").mkdir(parents=True)
    (results / "cmp").mkdir()
    for i, image_id in enumerate(IDS):
        face = np.zeros((512, 512, 3), np.uint8)
        face[:] = _colour(i)
        face[:, 256:] = 255  # right half white: after the resize, the left half stays its colour
        Image.fromarray(face).save(results / "restored_faces" / f"{image_id}_00.png")
        Image.fromarray(face).save(results / "cmp" / f"{image_id}_00.png")
    out = tmp_path / "external" / "gfpgan"
    done = import_external(results, inputs, out)
    assert (done.images, done.resized, done.converted, done.source) == (7, 7, 0, results / "restored_faces")
    assert sorted(p.name for p in out.iterdir()) == [KEEP_FILE, *(f"{i}.png" for i in IDS)]
    for i, image_id in enumerate(IDS):
        array = np.asarray(Image.open(out / f"{image_id}.png"))
        assert array.shape == (64, 64, 3) and array.dtype == np.uint8
        # a flat region keeps its colour (Lanczos ringing only next to the edge at column 32)
        assert np.abs(array[:, :28].astype(int) - _colour(i)).max() <= 1
        assert array[:, 36:].min() >= 254


def test_gpen_names_comparison_images_and_grey_16bit_modes(tmp_path):
    inputs = _inputs(tmp_path)
    folder = tmp_path / "gpen"
    folder.mkdir()
    for i, image_id in enumerate(IDS):
        grey = Image.fromarray(np.full((64, 64), 1000 * i, np.uint16))  # 16-bit grey
        if i % 2:
            grey = Image.fromarray(np.full((64, 64), 40 + i, np.uint8), mode="L")
        grey.save(folder / f"{image_id}_GPEN.png")
        Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(folder / f"{image_id}_COMP.png")
    done = import_external(folder, inputs, tmp_path / "out")
    assert (done.images, done.skipped, done.converted, done.resized) == (7, 7, 7, 0)
    odd = np.asarray(Image.open(tmp_path / "out" / f"{IDS[1]}.png"))
    assert odd.shape == (64, 64, 3) and (odd == 41).all()  # grey to RGB: the three channels equal


def test_a_reimport_replaces_the_folder_whole(tmp_path):
    inputs = _inputs(tmp_path)
    first, out = tmp_path / "first", tmp_path / "out"
    first.mkdir()
    for image_id in IDS:
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(first / f"{image_id}.png")
    import_external(first, inputs, out)
    (out / "stale.png").write_bytes(b"from an earlier import")
    for image_id in IDS:
        Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(first / f"{image_id}.png")
    import_external(first, inputs, out)
    assert sorted(p.name for p in out.iterdir()) == [KEEP_FILE, *(f"{i}.png" for i in IDS)]
    assert (np.asarray(Image.open(out / f"{IDS[0]}.png")) == 200).all()


def test_bad_folders_are_one_line_errors_listing_the_first_names_and_the_count(tmp_path):
    inputs = _inputs(tmp_path)
    folder, out = tmp_path / "bad", tmp_path / "out"
    folder.mkdir()
    for name in [*IDS, *(f"photo{i}" for i in range(8))]:
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / f"{name}.png")
    with pytest.raises(DataError) as info:
        import_external(folder, inputs, out)
    message = str(info.value)
    assert "match no degraded input" in message and "photo0.png, photo1.png, photo2.png, photo3.png, photo4.png, ..." \
        in message and "(8 in all)" in message and "\n" not in message
    assert not out.exists(), "nothing written"
    for name in (f"photo{i}" for i in range(8)):
        (folder / f"{name}.png").unlink()
    (folder / f"{IDS[0]}.png").unlink()
    (folder / f"{IDS[1]}.png").rename(folder / f"{IDS[1]}_00.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / f"{IDS[1]}.png")
    with pytest.raises(DataError, match=rf"several outputs for one input: {IDS[1]}.*_00.png"):
        import_external(folder, inputs, out)
    (folder / f"{IDS[1]}_00.png").unlink()
    with pytest.raises(DataError, match=rf"no output for these degraded inputs: {IDS[0]} \(1 in all\)"):
        import_external(folder, inputs, out)
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(folder / f"{IDS[0]}.png")
    with pytest.raises(DataError, match=r"80x64 px; allowed: square face crops"):
        import_external(folder, inputs, out)


def test_the_pipeline_scores_data_external_when_params_give_no_folder(tmp_path):
    config = small_config(external={"gfpgan": None, "gpen": None, "dfdnet": None})
    for method in ("gfpgan", "gpen"):
        (tmp_path / method).mkdir()
        (tmp_path / method / KEEP_FILE).touch()  # as in a clone: the folder DVC depends on, without images
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "gfpgan" / f"{IDS[0]}.png")
    assert external_folder(config, "gfpgan", tmp_path) == tmp_path / "gfpgan"
    assert external_folder(config, "gpen", tmp_path) is None  # not provided: only the .gitkeep
    assert external_folder(config, "dfdnet", tmp_path) is None  # not provided: no folder
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    chosen = small_config(external={"gfpgan": str(elsewhere)})
    assert external_folder(chosen, "gfpgan", tmp_path) == elsewhere


def test_the_command_names_a_method_params_yaml_does_not_list(tmp_path):
    result = subprocess.run([sys.executable, "-m", "faceres.cli", "import-external", "codeformer", str(tmp_path),
                             "--params", str(REPO / "params.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {REPO / 'params.yaml'}: external has no key 'codeformer' (has: dfdnet, gfpgan, gpen); add "
        "`codeformer: null` under external: so that the pipeline evaluates it"]
