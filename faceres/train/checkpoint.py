"""Checkpoints: written atomically (faceres.core.files.save_torch), read with `weights_only=True` (load_torch), keyed
by fingerprint.

A training run's fingerprint hashes everything that determines its result: the effective parameters, the
training images and the source of the code that trains (the import closure of the training loop and of the
VGG16 loader, read from the source by faceres.core.imports, less the modules in :data:`RESULT_NEUTRAL`). Runs with
equal fingerprints are the same run, so (a) an interrupted run resumes from its last checkpoint when the stage
is rerun, and (b) an arm whose configuration equals another's (e.g. the main model inside each ablation) is
trained once and reused. A checkpoint carries what its fingerprint hashed, so one of another run is refused
with what differs.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import torch

from faceres.core import imports
from faceres.core.errors import FaceresError
from faceres.core.files import save_torch

CHECKPOINT_FORMAT = 2  # 2: carries its fingerprint's inputs (settings, data digest, code file digests)

# The code that trains a generator: the loop (models, losses, degradation, augmentation, seeds, image decoding,
# ... by import) and the VGG16 loader of the perceptual loss (the weights it verifies by hash).
TRAINING_CODE = ("faceres.train.loop", "faceres.weights.load")
# Modules in that closure that cannot change the trained weights: messages and exception classes, the cache's
# location, and the synthetic renderer (its images enter the fingerprint through the data digest).
RESULT_NEUTRAL = ("faceres.core.console", "faceres.core.errors", "faceres.core.cache", "faceres.data.synthetic")


def code_digest() -> str:
    """sha256 over the source files that define how a generator is trained (derived from the imports)."""
    return imports.code_digest(TRAINING_CODE, RESULT_NEUTRAL)


def fingerprint(settings: dict[str, Any], data_digest: str) -> str:
    return _fingerprint(settings, data_digest, code_digest())


def fingerprint_inputs(settings: dict[str, Any], data_digest: str) -> tuple[str, dict[str, Any]]:
    """(:func:`fingerprint`, what it hashes with the code file by file: stored in each checkpoint, a few kB), the
    code read once."""
    code = imports.file_digests(TRAINING_CODE, RESULT_NEUTRAL)
    inputs = {"settings": settings, "data": data_digest, "code": code}
    return _fingerprint(settings, data_digest, imports.digest_of(code)), inputs


def _fingerprint(settings: dict[str, Any], data_digest: str, code: str) -> str:
    payload = json.dumps({"settings": settings, "data": data_digest, "code": code}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def inputs_difference(stored: dict[str, Any] | None, current: dict[str, Any]) -> str:
    """What differs between a checkpoint's fingerprint inputs and this run's, in a few words."""
    if not stored:
        return "it records no fingerprint inputs (written by an older faceres)"
    parts = []
    settings = _differing_keys(stored.get("settings", {}), current["settings"])
    if settings:
        parts.append("settings " + ", ".join(settings[:4]) + (" ..." if len(settings) > 4 else ""))
    if stored.get("data") != current["data"]:
        parts.append("the training images")
    code_a, code_b = stored.get("code", {}), current["code"]
    files = sorted(f for f in code_a.keys() | code_b.keys() if code_a.get(f) != code_b.get(f))
    if files:
        parts.append("code " + ", ".join(files[:4]) + (" ..." if len(files) > 4 else ""))
    return "; ".join(parts) or "nothing recorded (another fingerprint formula)"


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(a.keys() | b.keys())
        return [k for key in keys for k in _differing_keys(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]


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
