"""Seeds from parts: the one stable hash every seed, stream key and host-side draw of the project comes from.

``hash64(text)`` = the first 8 bytes of sha256(text), big-endian: the same on every machine and Python
version, unlike ``hash()``. On top of it: :func:`key_of` (63-bit seeds and stream keys for
:mod:`faceres.core.streams` and ``torch.Generator``), :func:`unit_of` (a uniform in [0, 1) for host-side choices:
the train/test split, which images the augmentation hardens) and ``degrade.sampling.image_seed`` (the
offline degradation's per-image seed, JSON-encoded parts for its manifests). Torch-free, for light stages.
"""

from __future__ import annotations

import hashlib


def hash64(text: str) -> int:
    """The first 8 bytes of sha256(text), big-endian: the one stable hash every seed of the project comes from
    (same on every machine and Python version, unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def key_of(*parts: object) -> int:
    """A 63-bit key (a seed, a stream key) from its parts."""
    return hash64("/".join(str(p) for p in parts)) >> 1


def unit_of(*parts: object) -> float:
    """A pseudo-random number in [0, 1) from its parts (host-side draws: splits, augmentation choices)."""
    return hash64("/".join(str(p) for p in parts)) / 2**64
