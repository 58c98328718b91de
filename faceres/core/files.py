"""Files: atomic writes and content hashes.

Every file the pipeline writes goes through :func:`atomic_write` (a temporary file in the same folder, then
one rename), so a killed process leaves the old file or the new one, never half of one, and concurrent
readers (parallel experiments sharing a cache) never see a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from faceres.core.errors import FaceresError


@contextlib.contextmanager
def atomic_write(path: str | Path, fsync: bool = False) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces `path` when the block ends without an error (`fsync`: on disk
    before the rename, for checkpoints that must survive a power cut)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A fresh folder beside `path` (``<name>.tmp``) that replaces `path` when the block ends without an error;
    on an error it is removed and `path` stays as it was (a stage's output folder is whole or absent)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def write_json(path: str | Path, document: Any) -> None:
    """`document` as indented JSON, atomically: readers in other processes see the old file or the new one."""
    import json

    with atomic_write(path) as handle:
        handle.write((json.dumps(document, indent=2) + "\n").encode())


def save_torch(obj: Any, path: str | Path) -> None:
    """torch.save, atomically and fsynced: a kill or a power cut leaves the old file intact."""
    import torch  # imported here: most users of this module need no torch

    with atomic_write(path, fsync=True) as handle:
        torch.save(obj, handle)


def load_torch(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a file of ours (checkpoint, generator): tensors and plain containers only (`weights_only=True`)."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FaceresError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file becomes one line
        raise FaceresError(f"{path}: not a readable faceres checkpoint ({type(exc).__name__}: {exc})") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
