"""Stage `degrade@TASK`: degraded inputs for the prepared faces, with a replayable manifest.

Output (``out_dir`` = data/degraded/TASK): ``<split>/<image_id>.png`` (the model input, at the profile
resolution), for SR tasks also ``<split>_lr/<image_id>.png`` (the low-resolution image), and
``manifest.csv``: image_id, split, identity, gt_file, input_file, lr_file and every degradation parameter
(seed included), so `replay_image` re-synthesizes any row bit-exactly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from faceres.config.schema import Config, load_config
from faceres.data.prepare import parallel_map, read_manifest
from faceres.degrade.chain import degrade_batch, replay
from faceres.core.errors import DataError, user_errors_exit
from faceres.core.files import atomic_directory
from faceres.core.imageio import read_rgb, write_png
from faceres.pipeline import stage_args
from faceres.pipeline.layout import MANIFEST, Layout
from faceres.pipeline.tracking import log_outputs, maybe_tracked

log = logging.getLogger(__name__)

BATCH = 32


@dataclass(frozen=True)
class _Chunk:
    """One batch of work for a worker process (plain data: picklable)."""

    task: str
    config: Config
    data_dir: str
    out_dir: str
    rows: list[dict]


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def _to_array(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).contiguous().numpy()


def _run_chunk(chunk: _Chunk) -> list[dict]:
    data_dir, out_dir = Path(chunk.data_dir), Path(chunk.out_dir)
    images = torch.stack([_to_tensor(read_rgb(data_dir / row["file"])) for row in chunk.rows])
    ids = [row["image_id"] for row in chunk.rows]
    config = chunk.config
    inputs, lrs, params = degrade_batch(
        images, ids, chunk.task, config.degrade.task(chunk.task), config.seed, config.resolution
    )
    out_rows = []
    for i, (row, record) in enumerate(zip(chunk.rows, params)):
        split = row["split"]
        input_file = f"{split}/{row['image_id']}.png"
        write_png(out_dir / input_file, _to_array(inputs[i]))
        lr_file = ""
        if lrs is not None:
            lr_file = f"{split}_lr/{row['image_id']}.png"
            write_png(out_dir / lr_file, _to_array(lrs[i]))
        out_rows.append(
            {
                "image_id": row["image_id"],
                "split": split,
                "identity": row["identity"],
                "gt_file": row["file"],
                "input_file": input_file,
                "lr_file": lr_file,
                **{k: v for k, v in record.items() if k != "image_id"},
            }
        )
    return out_rows


def degrade_dataset(
    config: Config, task: str, data_dir: str | Path, out_dir: str | Path, workers: int | None = None
) -> pd.DataFrame:
    """Degrade the prepared images of the configured splits for `task`; returns the manifest."""
    config.degrade.task(task)  # validates the task name
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    table = read_manifest(data_dir)
    table = table[table["split"].isin(config.degrade.splits)]
    if table.empty:
        raise DataError(f"{data_dir / 'manifest.csv'}: no usable images in splits {list(config.degrade.splits)}")
    rows = table.to_dict("records")
    workers = config.scale.workers if workers is None else workers
    from tqdm import tqdm

    with atomic_directory(out_dir) as tmp_dir:
        chunks = [
            _Chunk(task, config, str(data_dir), str(tmp_dir), rows[start : start + BATCH])
            for start in range(0, len(rows), BATCH)
        ]
        results = []
        for part in tqdm(parallel_map(_run_chunk, chunks, workers), total=len(chunks), desc=f"degrade {task}",
                         unit="batch", leave=False):
            results.extend(part)
        manifest = pd.DataFrame(results)
        manifest.to_csv(tmp_dir / MANIFEST, index=False)
    return manifest


def read_degraded_manifest(degraded_dir: str | Path) -> pd.DataFrame:
    path = Path(degraded_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no degradation manifest; run the degrade stage first")
    return pd.read_csv(path, dtype={"image_id": str, "identity": str}, keep_default_na=False)


def replay_image(degraded_dir: Path, image_id: str, data_dir: Path, out_png: Path) -> Path:
    """Re-synthesize one degraded image from its manifest row and ground truth; write it to out_png."""
    manifest = read_degraded_manifest(degraded_dir)
    match = manifest[manifest["image_id"] == str(image_id)]
    if match.empty:
        raise DataError(f"{degraded_dir / MANIFEST}: no row for image_id {image_id!r}")
    row = match.iloc[0].to_dict()
    model_input, _ = replay(row, _to_tensor(read_rgb(Path(data_dir) / row["gt_file"])))
    write_png(out_png, _to_array(model_input))
    return Path(out_png)


def run(config: Config, task: str, data_dir: Path, out_dir: Path, track: bool = True) -> None:
    """:func:`degrade_dataset` inside the stage's MLflow run."""
    with maybe_tracked(config, "degrade", track, run_name=f"degrade-{task}") as mlflow_run:
        if mlflow_run is not None:
            mlflow_run.set_tags({"task": task})
        start = time.perf_counter()
        manifest = degrade_dataset(config, task, data_dir, out_dir)
        seconds = time.perf_counter() - start
        metrics = {"images": len(manifest), "seconds": seconds, "images_per_s": len(manifest) / max(seconds, 1e-9)}
        log_outputs(mlflow_run, metrics, [out_dir / MANIFEST])
        log.info(f"degrade {task}: {len(manifest)} images in {seconds:.1f} s -> {out_dir}")


@user_errors_exit
def main(argv: Sequence[str]) -> None:
    """python stages/degrade.py TASK"""
    (task,) = stage_args(argv, "python stages/degrade.py TASK", 1, 1)
    layout = Layout()
    run(load_config(), task, layout.prepared, layout.degraded / task)
