"""The .npy cache of a parsed IDX file, checked against its recorded crc32 on every load.

The .gz it is made from is verified by sha256; the cache is a plain file derived from it that
a failing disk, a sync tool or a stray write can change while its name stays the same. The
array's crc32 is recorded in the folder's memo (see memo.py) when the cache is written and
compared on every load. crc32 is the cheapest digest that catches such accidents: every
burst of up to 32 flipped bits for certain, and any other change (zeroed or reordered bytes)
but for odds of 1 in 2**32. Deliberate tampering is out of its reach, but whoever can write
the cache can also write the memo.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from datasets import memo
from framework.files import atomic_write


class Damaged(Exception):
    """A cache file exists but cannot be trusted; the message says what is wrong with it."""


def read(npy: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached uint8 array (read-only, memory-mapped), or None when there is none to use.

    None also when no crc32 is on record (an older version made the cache, or the memo was
    lost): the caller rebuilds it then, quietly. Raises Damaged when the file is unreadable,
    holds another shape or type, or its crc32 differs from the recorded one.
    """
    try:
        array = np.load(npy, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as exc:
        raise Damaged(f"unreadable ({exc})") from None
    if array.dtype != np.uint8 or array.shape != shape or not array.flags.c_contiguous:
        order = "" if array.flags.c_contiguous else " in Fortran order"
        raise Damaged(f"holds {array.dtype} data of shape {array.shape}{order}, "
                      f"expected uint8 {shape}")
    recorded = memo.entry(npy.parent, npy.name).get("crc32")
    if recorded is None:
        return None
    found = _crc32(array)
    if found != recorded:
        raise Damaged(f"crc32 {found} differs from the {recorded} recorded when it was written")
    return array


def write(npy: Path, array: np.ndarray) -> None:
    """Save ``array`` as the cache ``npy`` and record its crc32; a read-only folder is skipped."""
    try:
        with atomic_write(npy) as f:
            np.save(f, array, allow_pickle=False)
    except OSError:
        return  # a read-only folder still loads, just without the speed-up
    memo.record(npy.parent, npy.name, {"crc32": _crc32(array)})


def _crc32(array: np.ndarray) -> str:
    return f"{zlib.crc32(np.ascontiguousarray(array)):08x}"
