"""Parser for the IDX file format used by MNIST, Fashion-MNIST and friends.

Layout: two zero bytes, a type code, the number of dimensions, then one
big-endian uint32 per dimension, then the data in big-endian order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """An IDX file is truncated, corrupt or not an IDX file at all."""


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse raw (already decompressed) IDX bytes into an array in native byte order.

    ``source`` names the file in error messages. For uint8 data the result is a
    read-only view of ``data``, so no copy is made.
    """
    if len(data) < 4:
        raise IDXError(f"{source}: only {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise IDXError(f"{source}: bad magic number {data[:4].hex()} "
                       "(expected 0000 then type and ndim): not an IDX file")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise IDXError(f"{source}: unknown IDX data type code 0x{code:02x}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IDXError(f"{source}: truncated header: {ndim} dimensions need {header_len} bytes, "
                       f"file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_len
    if found < expected:
        raise IDXError(f"{source}: truncated: header says shape {shape} ({expected} data bytes) "
                       f"but only {found} bytes follow")
    if found > expected:
        raise IDXError(f"{source}: {found - expected} unexpected trailing bytes "
                       f"after data of shape {shape}")
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw (detected from its first bytes)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            # EOFError is the infamous "Compressed file ended before the
            # end-of-stream marker" of a partial download.
            raise IDXError(f"{path}: damaged gzip data ({exc}); "
                           "delete the file and download it again") from None
    return parse_idx(data, str(path))
