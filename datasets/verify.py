"""Checksums for downloaded files, remembered so a warm start does not re-hash.

Re-hashing the 10 MB MNIST training images with sha256 on every ``load_mnist()``
would cost about as much as the rest of a warm load. So a file's digest is stored
in the folder's memo (see memo.py) keyed on its size and ``mtime_ns``: any rewrite
of the file changes the key and forces a full re-hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from datasets import memo


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


def remember(path: Path, sha256: str) -> None:
    """Record that ``path`` (as it is now on disk) has digest ``sha256``."""
    memo.record(path.parent, path.name, {**_stat_key(path), "sha256": sha256})


def check(path: Path, spec: FileSpec) -> str | None:
    """Return None when ``path`` matches ``spec``, else a short reason why not.

    Cheap when the folder's memo already vouches for this exact file (same size and
    mtime_ns); otherwise hashes it fully and remembers a good result.
    """
    try:
        key = _stat_key(path)
    except FileNotFoundError:
        return "missing"
    if key["size"] != spec.size:
        return f"wrong size {key['size']} (expected {spec.size})"
    if memo.entry(path.parent, path.name) == {**key, "sha256": spec.sha256}:
        return None
    digest = sha256_of(path)
    if digest != spec.sha256:
        return f"sha256 mismatch (got {digest[:12]}..., expected {spec.sha256[:12]}...)"
    remember(path, digest)
    return None
