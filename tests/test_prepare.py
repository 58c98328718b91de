"""Stage `prepare`: both sources, the identity split, determinism and every bad-input policy."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from faceres.data.prepare import prepare_dataset, read_manifest, split_identities
from faceres.core.errors import DataError
from faceres.core.imageio import read_rgb
from tests.conftest import small_config


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synthetic_source_is_complete_split_by_identity_and_deterministic(tmp_path):
    config = small_config()
    manifest = prepare_dataset(config, tmp_path / "a", progress=False)
    assert len(manifest) == 6 * 2 and (manifest["status"] == "ok").all()
    per_identity_splits = manifest.groupby("identity")["split"].nunique()
    assert (per_identity_splits == 1).all(), "an identity must not straddle train and test"
    assert manifest.drop_duplicates("identity")["split"].value_counts()["test"] == 2  # round(0.34 * 6)
    image = read_rgb(tmp_path / "a" / manifest["file"][0])
    assert image.shape == (64, 64, 3) and image.std() > 10
    prepare_dataset(config, tmp_path / "b", progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    other_seed = prepare_dataset(small_config(seed=1), tmp_path / "c", progress=False)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert len(other_seed) == len(manifest)


def test_split_is_by_seeded_hash_of_identity():
    identities = [f"id{i}" for i in range(100)]
    test = split_identities(identities, 0.1, seed=0)
    assert len(test) == 10 and test == split_identities(reversed(identities), 0.1, seed=0)
    assert test != split_identities(identities, 0.1, seed=1)


def test_validation_identities_come_out_of_training_and_leave_the_test_split_alone():
    from faceres.config.schema import load_config
    from faceres.data.prepare import SourceItem, assign_splits

    items = [SourceItem(f"img{i}", f"{i}.jpg", f"id{i // 3}") for i in range(300)]  # 100 identities x 3
    plain = assign_splits(items, load_config(overrides={"data.val_fraction": 0.0}))
    with_val = assign_splits(items, load_config(overrides={"data.val_fraction": 0.2}))
    assert set(plain) == {"train", "test"}
    assert [a == "test" for a in plain] == [b == "test" for b in with_val]  # the same test images
    by_split = {s: {it.identity for it, x in zip(items, with_val) if x == s} for s in ("train", "val", "test")}
    assert len(by_split["test"]) == 10 and len(by_split["val"]) == 18  # round(0.2 * 90)
    assert not (by_split["val"] & by_split["train"]) and not (by_split["val"] & by_split["test"])


def _folder_config(celeba, **overrides):
    base = {
        "data.source": "folder",
        "data.folder.train_dir": str(celeba / "images"),
        "data.folder.identities_csv": str(celeba / "identities.csv"),
        "data.folder.limit": 40,
        "data.test_fraction": 0.25,
    }
    base.update(overrides)
    return small_config(**base)


def test_folder_source_on_celeba_crops_resizes_and_keeps_identities(tmp_path, celeba):
    manifest = prepare_dataset(_folder_config(celeba), tmp_path / "out", progress=False)
    assert len(manifest) == 40 and manifest["image_id"].iloc[0] == "000001"
    truth = pd.read_csv(celeba / "identities.csv", dtype=str).set_index("file")["identity"]
    assert (manifest["identity"].values == truth.loc[[f"{i}.jpg" for i in manifest["image_id"]]].values).all()
    assert (manifest.groupby("identity")["split"].nunique() == 1).all()
    # Independent reference: PIL's own centre-crop-and-resize.
    expected = ImageOps.fit(Image.open(celeba / "images" / "000001.jpg"), (64, 64), Image.Resampling.LANCZOS)
    row = manifest.set_index("image_id").loc["000001"]
    assert row["file"] == f"images/{row['split']}/000001.png"
    assert np.array_equal(read_rgb(tmp_path / "out" / row["file"]), np.asarray(expected))
    assert len(read_manifest(tmp_path / "out", "test")) + len(read_manifest(tmp_path / "out", "train")) == 40


def test_separate_test_folder_defines_the_test_split(tmp_path, celeba):
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir(), test.mkdir()
    for i, name in enumerate(sorted((celeba / "images").iterdir())[:6]):
        shutil.copy(name, (train if i < 4 else test) / name.name)
    config = _folder_config(celeba, **{"data.folder.train_dir": str(train), "data.folder.test_dir": str(test)})
    manifest = prepare_dataset(config, tmp_path / "out", progress=False)
    assert manifest["split"].tolist() == ["train"] * 4 + ["test"] * 2


def test_images_smaller_than_the_target_need_upscale(tmp_path, celeba):
    config = _folder_config(celeba, **{"profiles.cpu.resolution": 128, "data.folder.limit": 3})
    with pytest.raises(DataError, match=r"000001.jpg: 89x109 is smaller than the target 128x128"):
        prepare_dataset(config, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()
    upscaled = _folder_config(celeba, **{"profiles.cpu.resolution": 128, "data.folder.limit": 3, "data.folder.upscale": True})
    assert len(prepare_dataset(upscaled, tmp_path / "out", progress=False)) == 3


@pytest.fixture
def mixed_folder(tmp_path, celeba):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("000001.jpg", "000002.jpg", "000003.jpg"):
        shutil.copy(celeba / "images" / name, folder / name)
    (folder / "broken.jpg").write_bytes((celeba / "images" / "000004.jpg").read_bytes()[:900])
    Image.open(celeba / "images" / "000005.jpg").convert("L").save(folder / "gray.png")
    return folder


def test_bad_images_fail_by_default_naming_the_files_and_writing_nothing(tmp_path, mixed_folder):
    config = small_config(**{"data.source": "folder", "data.folder.train_dir": str(mixed_folder),
                             "data.folder.identities_csv": None})
    with pytest.raises(DataError) as info:
        prepare_dataset(config, tmp_path / "out", progress=False)
    message = str(info.value)
    assert "broken.jpg: corrupt or truncated image" in message and "gray.png" in message
    assert "data.on_bad_image: skip" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_skip_policy_records_bad_images_in_the_manifest(tmp_path, mixed_folder):
    config = small_config(**{"data.source": "folder", "data.folder.train_dir": str(mixed_folder),
                             "data.folder.identities_csv": None, "data.on_bad_image": "skip"})
    manifest = prepare_dataset(config, tmp_path / "out", progress=False).set_index("image_id")
    assert manifest.loc["broken", "status"] == "skipped" and "corrupt" in manifest.loc["broken", "reason"]
    assert manifest.loc["gray", "status"] == "skipped" and "grayscale" in manifest.loc["gray", "reason"]
    assert (manifest.loc[["000001", "000002", "000003"], "status"] == "ok").all()
    assert len(read_manifest(tmp_path / "out")) == 3
    assert sorted(p.name for p in (tmp_path / "out" / "images").rglob("*.png")) == [
        "000001.png", "000002.png", "000003.png"]


def test_empty_folder_and_incomplete_identity_csv(tmp_path, celeba):
    (tmp_path / "empty").mkdir()
    config = small_config(**{"data.source": "folder", "data.folder.train_dir": str(tmp_path / "empty")})
    with pytest.raises(DataError, match="empty: no images found"):
        prepare_dataset(config, tmp_path / "out", progress=False)
    csv = tmp_path / "ids.csv"
    csv.write_text("file,identity\n000001.jpg,1\n")
    with pytest.raises(DataError, match=r"ids.csv: no identity for 39 image\(s\), e.g. 000002.jpg"):
        prepare_dataset(_folder_config(celeba, **{"data.folder.identities_csv": str(csv)}), tmp_path / "o")
