"""Stage `prepare`: face images at the profile resolution plus a manifest, from one of two sources.

- ``synthetic`` (the embedded default): procedurally rendered faces, so a fresh clone needs no download.
- ``folder``: any directory of aligned face photos (FFHQ / CelebA-HQ style), centre-cropped to a square and
  resized to the profile resolution; an optional CSV maps files to identities.

Output (``out_dir``): ``images/<split>/<image_id>.png`` and ``manifest.csv`` with one row per source image:
image_id, file, source_file, identity, split, status (ok | skipped), reason. The split is by identity
(no identity appears in both), deterministic from the global seed; with ``folder.test_dir`` set, that folder
is the test split. Outputs are written to a temporary directory and moved into place only when complete, so
a failed run leaves no half-written dataset behind.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
from PIL import Image

from faceres.config.schema import Config, FolderConfig
from faceres.data import synthetic
from faceres.core.errors import DataError
from faceres.core.files import atomic_directory
from faceres.core.imageio import list_images, read_rgb, write_png
from faceres.core.seeds import unit_of

MANIFEST = "manifest.csv"
IMAGES = "images"
MANIFEST_COLUMNS = ["image_id", "file", "source_file", "identity", "split", "status", "reason"]


@dataclass(frozen=True)
class SourceItem:
    """One image to prepare: where it comes from and how to produce its pixels."""

    image_id: str
    source_file: str
    identity: str
    split: str | None = None  # None: decided by the identity split


def split_identities(identities: Iterable[str], fraction: float, seed: int, stream: str = "split",
                     ineligible: frozenset[str] = frozenset()) -> set[str]:
    """The held-out identities: the `round(fraction * n)` (at least one) that rank first by a seeded hash,
    none of them `ineligible` (n counts those too). Fewer eligible identities than that is a DataError."""
    unique = sorted(set(identities))
    n_out = max(1, round(fraction * len(unique))) if len(unique) > 1 and fraction > 0 else 0
    eligible = [identity for identity in unique if identity not in ineligible]
    if len(eligible) < n_out:
        raise DataError(f"{len(eligible)} identities are eligible, {n_out} are to be held out")
    ranked = sorted(eligible, key=lambda identity: (unit_of(stream, seed, identity), identity))
    return set(ranked[:n_out])


def seen_identities(folder: FolderConfig) -> frozenset[str]:
    """The identities of the first ``test_unseen_after`` images of train_dir (by name, whatever the limit):
    those scored before, which the test split leaves out."""
    if folder.test_unseen_after is None:
        return frozenset()
    files = list_images(folder.train_dir)[: folder.test_unseen_after]
    identities = _read_identities(folder.identities_csv, files) if folder.identities_csv else {}
    return frozenset(str(identities.get(f.name, f.stem)) for f in files)


def center_crop_resize(image: np.ndarray, resolution: int, upscale: bool, name: str) -> np.ndarray:
    """Centre square crop resized to resolution x resolution with an antialiasing Lanczos filter."""
    height, width = image.shape[:2]
    side = min(height, width)
    if side < resolution and not upscale:
        raise DataError(
            f"{name}: {width}x{height} is smaller than the target {resolution}x{resolution} after a square "
            f"crop; allowed: images with a side >= {resolution} (or set data.folder.upscale: true)"
        )
    top, left = (height - side) // 2, (width - side) // 2
    if side == resolution:
        return np.ascontiguousarray(image[top : top + side, left : left + side])
    # Resizing the box (not a cropped copy) lets the filter see real pixels beyond the crop edge.
    box = (left, top, left + side, top + side)
    resized = Image.fromarray(image).resize((resolution, resolution), Image.Resampling.LANCZOS, box=box)
    return np.asarray(resized, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------------
# Sources


def synthetic_items(config: Config) -> list[SourceItem]:
    scale = config.scale
    return [
        SourceItem(
            image_id=f"syn{identity:05d}_{image:02d}",
            source_file=f"synthetic:seed={config.seed}/identity={identity}/image={image}",
            identity=f"syn{identity:05d}",
        )
        for identity in range(scale.identities)
        for image in range(scale.images_per_identity)
    ]


def _read_identities(csv_path: str, files: list[Path]) -> dict[str, str]:
    try:
        table = pd.read_csv(csv_path, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{csv_path}: cannot read the identities CSV ({exc})") from None
    if not {"file", "identity"} <= set(table.columns):
        raise DataError(
            f"{csv_path}: columns {list(table.columns)}; allowed: a CSV with columns 'file' and 'identity'"
        )
    mapping = dict(zip(table["file"], table["identity"]))
    missing = [f.name for f in files if f.name not in mapping]
    if missing:
        raise DataError(
            f"{csv_path}: no identity for {len(missing)} image(s), e.g. {', '.join(missing[:3])}; "
            "every image in the folder needs a row (file,identity)"
        )
    return mapping


def folder_items(folder: FolderConfig) -> list[SourceItem]:
    def items_of(directory: str, split: str | None) -> list[SourceItem]:
        files = list_images(directory)
        if folder.limit is not None:
            files = files[: folder.limit]
        identities = _read_identities(folder.identities_csv, files) if folder.identities_csv else {}
        return [
            SourceItem(
                image_id=f.stem,
                source_file=str(f),
                identity=str(identities.get(f.name, f.stem)),
                split=split,
            )
            for f in files
        ]

    items = items_of(folder.train_dir, "train" if folder.test_dir else None)
    if folder.test_dir:
        items += items_of(folder.test_dir, "test")
    seen: dict[str, str] = {}
    for item in items:
        if item.image_id in seen:
            raise DataError(
                f"{item.source_file}: file name collides with {seen[item.image_id]} (same stem "
                f"{item.image_id!r}); allowed: unique file names across train_dir and test_dir"
            )
        seen[item.image_id] = item.source_file
    return items


# --------------------------------------------------------------------------------------------------------
# Rendering / loading one image (picklable for worker processes)


@dataclass(frozen=True)
class _Job:
    item: SourceItem
    source: str
    seed: int
    resolution: int
    upscale: bool
    out_file: str


def _synthetic_indices(item: SourceItem) -> tuple[int, int]:
    identity, image = item.image_id[3:].split("_")
    return int(identity), int(image)


def _run_job(job: _Job) -> str | None:
    """Produce one image file; returns None on success or the one-line reason it is unusable."""
    try:
        if job.source == "synthetic":
            identity, image = _synthetic_indices(job.item)
            pixels = synthetic.render(job.seed, identity, image, job.resolution)
        else:
            pixels = center_crop_resize(
                read_rgb(job.item.source_file), job.resolution, job.upscale, job.item.source_file
            )
        write_png(job.out_file, pixels)
    except DataError as exc:
        return str(exc)
    return None


def _single_threaded_torch() -> None:
    """Worker-process initializer: the parallelism comes from the processes (in the caller's own process,
    torch keeps its thread count: a stage that degrades and then trains must not train on one thread)."""
    import torch

    torch.set_num_threads(1)


def parallel_map(function: Callable, jobs: list, workers: int) -> Iterator:
    """`map` over worker processes (in order), or in this process when workers <= 1 or there is little work."""
    if workers <= 1 or len(jobs) < 2 * workers:
        yield from map(function, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_single_threaded_torch) as pool:
        yield from pool.map(function, jobs, chunksize=max(1, len(jobs) // (workers * 8)))


def prepare_dataset(
    config: Config, out_dir: str | Path, workers: int | None = None, progress: bool = True
) -> pd.DataFrame:
    """Write ``out_dir/images/*.png`` and ``out_dir/manifest.csv``; returns the manifest."""
    out_dir = Path(out_dir)
    source = config.data.source
    items = synthetic_items(config) if source == "synthetic" else folder_items(config.data.folder)
    with atomic_directory(out_dir) as tmp_dir:
        (tmp_dir / IMAGES).mkdir()
        splits = assign_splits(items, config)
        for split in set(splits):
            (tmp_dir / IMAGES / split).mkdir()
        jobs = [
            _Job(
                item=item,
                source=source,
                seed=config.seed,
                resolution=config.resolution,
                upscale=config.data.folder.upscale,
                out_file=str(tmp_dir / IMAGES / split / f"{item.image_id}.png"),
            )
            for item, split in zip(items, splits)
        ]
        workers = config.scale.workers if workers is None else workers
        results = parallel_map(_run_job, jobs, workers)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(jobs), desc=f"prepare ({source})", unit="img", leave=False)
        reasons = list(results)

        bad = [(item, reason) for item, reason in zip(items, reasons) if reason is not None]
        if bad and config.data.on_bad_image == "fail":
            first = bad[0][1]
            more = f" (and {len(bad) - 1} more bad image(s): {', '.join(i.source_file for i, _ in bad[1:4])}" + (
                ", ...)" if len(bad) > 4 else ")"
            )
            raise DataError(first + (more if len(bad) > 1 else "") + "; set data.on_bad_image: skip to skip them")
        if len(bad) == len(items):
            raise DataError(f"{source}: every image was unusable, e.g. {bad[0][1]}")

        manifest = _manifest(items, splits, reasons)
        manifest.to_csv(tmp_dir / MANIFEST, index=False)
    return manifest


def assign_splits(items: list[SourceItem], config: Config) -> list[str]:
    """Each item's split: its folder's (test_dir given), else by a seeded hash of its identity; validation
    identities (``val_fraction``) come out of the training identities, so the test split does not move. With
    ``folder.test_unseen_after``, test identities have no image among that many first files (scored before)."""
    free = [i.identity for i in items if i.split is None]
    seen = seen_identities(config.data.folder) if config.data.source == "folder" else frozenset()
    try:
        test_identities = split_identities(free, config.data.test_fraction, config.seed, ineligible=seen)
    except DataError as error:
        raise DataError(
            f"data.folder.test_unseen_after = {config.data.folder.test_unseen_after}: {error} as the test split "
            f"(data.test_fraction = {config.data.test_fraction}); allowed: a smaller value, a larger "
            f"data.folder.limit or a smaller data.test_fraction"
        ) from None
    val_identities = split_identities([i for i in free if i not in test_identities], config.data.val_fraction,
                                      config.seed, stream="val-split")

    def split_of(item: SourceItem) -> str:
        if item.split is not None:
            return item.split
        return "test" if item.identity in test_identities else "val" if item.identity in val_identities else "train"

    return [split_of(item) for item in items]


def _manifest(items: list[SourceItem], splits: list[str], reasons: list[str | None]) -> pd.DataFrame:
    rows = []
    for item, split, reason in zip(items, splits, reasons):
        rows.append(
            {
                "image_id": item.image_id,
                "file": f"{IMAGES}/{split}/{item.image_id}.png" if reason is None else "",
                "source_file": item.source_file,
                "identity": item.identity,
                "split": split,
                "status": "ok" if reason is None else "skipped",
                "reason": reason or "",
            }
        )
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def read_manifest(data_dir: str | Path, split: str | None = None) -> pd.DataFrame:
    """The usable rows of a prepared dataset's manifest (optionally one split), identities as strings."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no manifest; run the prepare stage first (dvc repro prepare)")
    table = pd.read_csv(path, dtype={"image_id": str, "identity": str}, keep_default_na=False)
    missing = set(MANIFEST_COLUMNS) - set(table.columns)
    if missing:
        raise DataError(f"{path}: missing columns {sorted(missing)}; allowed: a manifest written by prepare")
    table = table[table["status"] == "ok"]
    if split is not None:
        table = table[table["split"] == split]
    return table.reset_index(drop=True)
