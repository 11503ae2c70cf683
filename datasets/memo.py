"""A small JSON file per data folder that remembers facts about the files beside it.

verify.py keeps each download's sha256 there, cache.py each .npy cache's crc32. Losing the
file, or an entry in it, only ever costs work: the fact is then checked or computed again.
"""

from __future__ import annotations

import json
from pathlib import Path

from framework.files import atomic_write

SIDECAR_NAME = ".npdl-verified.json"


def read(folder: Path) -> dict:
    """The folder's memo: file name -> entry (a dict); empty when missing or unreadable."""
    try:
        with open(folder / SIDECAR_NAME, encoding="utf-8") as f:
            memo = json.load(f)
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def entry(folder: Path, name: str) -> dict:
    """The memo's entry for one file, or an empty dict."""
    found = read(folder).get(name)
    return found if isinstance(found, dict) else {}


def record(folder: Path, name: str, facts: dict) -> None:
    """Replace the entry for ``name``; a read-only folder is left as it is."""
    memo = read(folder)
    memo[name] = facts
    try:
        with atomic_write(folder / SIDECAR_NAME, "w", encoding="utf-8") as f:
            json.dump(memo, f, indent=1, sort_keys=True)
    except OSError:
        pass  # nothing is lost but the shortcut: the fact is worked out again next time
