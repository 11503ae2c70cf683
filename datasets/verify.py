"""Checksums for downloaded files, remembered so a warm start does not re-hash.

Hashing the 10 MB MNIST training images takes tens of milliseconds; doing it on
every ``load_mnist()`` would eat most of the warm-load budget. So a file's
digest is stored in a small JSON sidecar keyed on its size and ``mtime_ns``:
any rewrite of the file changes the key and forces a full re-hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from framework.files import atomic_write

SIDECAR_NAME = ".npdl-verified.json"


@dataclass(frozen=True)
class FileSpec:
    """A file we expect to obtain: its name, exact size in bytes and sha256 hex digest."""

    name: str
    size: int
    sha256: str


def sha256_of(path: Path) -> str:
    """Return the sha256 hex digest of a file, read in chunks."""
    with open(path, "rb") as f:
        return sha256_of_file(f)


def sha256_of_file(f, chunk_size: int = 1 << 20) -> str:
    """Return the sha256 hex digest of an open binary file, from its position to its end."""
    digest = hashlib.sha256()
    while chunk := f.read(chunk_size):
        digest.update(chunk)
    return digest.hexdigest()


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_sidecar(folder: Path) -> dict:
    try:
        with open(folder / SIDECAR_NAME, encoding="utf-8") as f:
            memo = json.load(f)
        return memo if isinstance(memo, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or damaged memo only costs a re-hash


def remember(path: Path, sha256: str) -> None:
    """Record that ``path`` (as it is now on disk) has digest ``sha256``."""
    memo = _read_sidecar(path.parent)
    memo[path.name] = {**_stat_key(path), "sha256": sha256}
    try:
        with atomic_write(path.parent / SIDECAR_NAME, "w", encoding="utf-8") as f:
            json.dump(memo, f, indent=1, sort_keys=True)
    except OSError:
        pass  # a read-only data folder still works; it just re-hashes each time


def check(path: Path, spec: FileSpec) -> str | None:
    """Return None when ``path`` matches ``spec``, else a short reason why not.

    Cheap when the sidecar already vouches for this exact file (same size and
    mtime_ns); otherwise hashes it fully and remembers a good result.
    """
    try:
        key = _stat_key(path)
    except FileNotFoundError:
        return "missing"
    if key["size"] != spec.size:
        return f"wrong size {key['size']} (expected {spec.size})"
    entry = _read_sidecar(path.parent).get(path.name)
    if entry == {**key, "sha256": spec.sha256}:
        return None
    digest = sha256_of(path)
    if digest != spec.sha256:
        return f"sha256 mismatch (got {digest[:12]}..., expected {spec.sha256[:12]}...)"
    remember(path, digest)
    return None
