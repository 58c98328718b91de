"""Which faceres modules a piece of code imports, read from the source, and the digest of that code.

One reader serves every place that must know what code a result depends on: the DVC deps of each stage
(tests/test_dvc_deps.py), the run cache's training fingerprint (faceres.train.checkpoint) and the feature
cache's key (faceres.metrics.fid). Every ``import faceres...`` and ``from faceres... import`` counts, also inside
functions (lazy imports run too), and importing ``faceres.a.b`` runs ``faceres/__init__.py`` and
``faceres/a/__init__.py`` on the way in. Relative imports are not used in faceres and are not followed.

A cache key hashes the import closure of the code that computes the cached result, minus a short list of
modules named as unable to change it (console output, error classes): so an edit anywhere else invalidates
the cache without anyone keeping a list of source paths up to date.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from typing import Iterable

PACKAGE = Path(__file__).resolve().parents[1]  # faceres/


def module_file(name: str, package: Path = PACKAGE) -> Path | None:
    """faceres.a.b -> <package>/a/b.py or <package>/a/b/__init__.py; None for a name that is not a module (a
    function or class imported with ``from``)."""
    parts = name.split(".")
    assert parts[0] == package.name, name
    path = package.joinpath(*parts[1:])
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imported_modules(file: Path, package: Path = PACKAGE) -> set[Path]:
    """The module files of `package` that `file` imports directly (its own package's ``__init__`` included)."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name == package.name or name.startswith(package.name + "."):
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):  # a package's __init__ runs on the way in
                    module = module_file(".".join(parts[:depth]), package)
                    if module is not None:
                        found.add(module)
    return found


def import_closure(files: Iterable[Path], package: Path = PACKAGE) -> set[Path]:
    """Every module file of `package` reachable from `files` through imports, `files` themselves included
    when they belong to the package."""
    todo = list(files)
    seen = {f for f in todo if package in f.parents}
    while todo:
        for module in imported_modules(todo.pop(), package):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def code_files(entries: tuple[str, ...], neutral: tuple[str, ...], package: Path = PACKAGE) -> list[Path]:
    """The files a result computed by the modules `entries` depends on: their import closure without the
    `neutral` modules (named as unable to change the result), sorted."""
    entry_files = [_required(name, package) for name in entries]
    neutral_files = {_required(name, package) for name in neutral}
    return sorted(import_closure(entry_files, package) - neutral_files)


def file_digests(entries: tuple[str, ...], neutral: tuple[str, ...], package: Path = PACKAGE) -> dict[str, str]:
    """{package-relative path: sha256 of its bytes} of :func:`code_files` (what a mismatch message can name)."""
    return {
        str(file.relative_to(package.parent)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in code_files(entries, neutral, package)
    }


@functools.cache
def code_digest(entries: tuple[str, ...], neutral: tuple[str, ...], package: Path = PACKAGE) -> str:
    """sha256 over the paths and contents of :func:`code_files`: part of the key of anything cached that this
    code computed, so editing any module it imports invalidates the cache (computed once per process)."""
    return digest_of(file_digests(entries, neutral, package))


def digest_of(file_digests_: dict[str, str]) -> str:
    """The one sha256 of a :func:`file_digests` mapping (what :func:`code_digest` returns for it)."""
    digest = hashlib.sha256()
    for path, sha in file_digests_.items():
        digest.update(f"{path}\0{sha}\0".encode())
    return digest.hexdigest()


def _required(name: str, package: Path) -> Path:
    file = module_file(name, package)
    assert file is not None, f"{name}: not a module of {package}"
    return file
