"""Stage `degrade`: per-task outputs, deterministic, and every image replayable from its manifest row."""

from __future__ import annotations

import hashlib

import pytest
import torch

from faceres.cli import main as cli
from faceres.data.prepare import prepare_dataset
from faceres.pipeline.degrade import degrade_dataset
from faceres.core.imageio import read_rgb
from tests.conftest import small_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    config = small_config(**{"degrade.splits": ["train", "test"]})
    prepare_dataset(config, root / "data", progress=False)
    return config, root


def _bytes(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.png")}


def test_bfr_outputs_are_deterministic_and_within_the_configured_ranges(prepared, tmp_path):
    config, root = prepared
    threads = torch.get_num_threads()
    manifest = degrade_dataset(config, "bfr", root / "data", tmp_path / "a", workers=0)
    assert torch.get_num_threads() == threads  # in this process: a training that follows keeps its threads
    assert len(manifest) == 12 and set(manifest["split"]) == {"train", "test"}
    bfr = config.degrade.bfr.at_resolution(64)
    assert manifest["sigma_x"].between(*bfr.blur_sigma).all()
    assert manifest["scale"].between(*bfr.downsample).all()
    assert manifest["noise_sigma"].between(*bfr.noise_sigma).all()
    assert manifest["jpeg_quality"].between(*bfr.jpeg_quality).all()
    assert read_rgb(tmp_path / "a" / manifest["input_file"][0]).shape == (64, 64, 3)
    degrade_dataset(config, "bfr", root / "data", tmp_path / "b", workers=2)  # worker processes: same bytes
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()


@pytest.mark.parametrize("task, factor", [("sr8", 8), ("sr16", 16)])
def test_sr_tasks_write_low_resolution_images(prepared, tmp_path, task, factor):
    config, root = prepared
    manifest = degrade_dataset(config, task, root / "data", tmp_path / task, workers=0)
    lr = read_rgb(tmp_path / task / manifest["lr_file"][0])
    assert lr.shape == (64 // factor, 64 // factor, 3)
    assert read_rgb(tmp_path / task / manifest["input_file"][0]).shape == (64, 64, 3)


def test_every_image_replays_bit_exactly_from_its_row(prepared, tmp_path, capsys):
    config, root = prepared
    manifest = degrade_dataset(config, "bfr", root / "data", tmp_path / "bfr", workers=0)
    for row in manifest.itertuples():
        out = tmp_path / "replayed" / f"{row.image_id}.png"
        assert cli(["replay", str(tmp_path / "bfr"), row.image_id, "--data", str(root / "data"), "--out", str(out)]) == 0
        assert out.read_bytes() == (tmp_path / "bfr" / row.input_file).read_bytes()
    assert cli(["replay", str(tmp_path / "bfr"), "nope", "--data", str(root / "data"), "--out", str(out)]) == 2
    assert "no row for image_id 'nope'" in capsys.readouterr().err
