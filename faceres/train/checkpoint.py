"""Checkpoints: written atomically (faceres.files.save_torch), read with `weights_only=True` (load_torch), keyed
by fingerprint.

A training run's fingerprint hashes everything that determines its result: the effective parameters, the
training images and the source of the code that trains. Runs with equal fingerprints are the same run, so
(a) an interrupted run resumes from its last checkpoint when the stage is rerun, and (b) an arm whose
configuration equals another's (e.g. the main model inside each ablation) is trained once and reused.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import torch

from faceres.errors import FaceresError
from faceres.files import save_torch, source_digest

# The files of a training run: the run cache's checkpoint and final/ folder, and models/<arm>/
GENERATOR_FILE = "generator.pt"
CURVE_FILE = "curve.csv"
SUMMARY_FILE = "train.json"
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1

# The library code a trained generator depends on; editing any of it changes the fingerprint.
_CODE_PATHS = ("models", "train", "degrade", "losses.py", "config", "streams.py", "devices.py")


def code_digest() -> str:
    """sha256 over the source files that define how a generator is trained."""
    return source_digest(*_CODE_PATHS)


def fingerprint(settings: dict[str, Any], data_digest: str) -> str:
    payload = json.dumps({"settings": settings, "data": data_digest, "code": code_digest()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _to_host(obj: Any) -> Any:
    """A copy of `obj` with every tensor cloned to the CPU (a snapshot the training step can no longer change)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints in a background thread: the caller waits only for the copy of the state to the host.

    At the paper profile a checkpoint is ~0.8 GB; written synchronously (with fsync) it stalls rank 0 and
    every rank waiting for it in the next all-reduce. One write is in flight at a time; a failed write is
    raised by the next :meth:`save` or by :meth:`wait`.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, state: dict, path: str | Path) -> None:
        self.wait()
        snapshot = _to_host(state)

        def write() -> None:
            try:
                save_torch(snapshot, path)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the training thread
                self._error = exc

        self._thread = threading.Thread(target=write, name="faceres-checkpoint", daemon=False)
        self._thread.start()

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise FaceresError(f"checkpoint write failed: {type(error).__name__}: {error}") from error
