"""IDX parser on small files generated here: good ones round-trip, bad ones say what is wrong."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from datasets.idx import IDXError, parse_idx, read_idx


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """Encode ``array`` as IDX with type ``code``, big-endian as the format demands."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)


def test_uint8_images_round_trip_from_raw_file(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(IMAGES, 0x08))
    array = read_idx(path)
    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array, IMAGES)


def test_gzipped_file_is_detected_and_decompressed(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.array([5, 0, 4], dtype=np.uint8), 0x08)))
    np.testing.assert_array_equal(read_idx(path), [5, 0, 4])


@pytest.mark.parametrize("dtype, code", [(np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D),
                                         (np.float64, 0x0E)])
def test_multibyte_types_are_big_endian_and_returned_native(dtype, code):
    values = np.array([[1, -2], [300, 70000 if dtype != np.int16 else 3]], dtype=dtype)
    array = parse_idx(idx_bytes(values, code))
    assert array.dtype == np.dtype(dtype) and array.dtype.isnative
    np.testing.assert_array_equal(array, values)


def test_truncated_data_names_file_and_sizes(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(IMAGES, 0x08)[:-5])
    message = (r"short-idx3-ubyte: truncated: header says shape \(2, 3, 4\) "
               r"\(24 data bytes\) but only 19")
    with pytest.raises(IDXError, match=message):
        read_idx(path)


def test_truncated_header_is_reported():
    with pytest.raises(IDXError, match="truncated header: 3 dimensions need 16 bytes"):
        parse_idx(idx_bytes(IMAGES, 0x08)[:10], "x")


def test_too_short_for_any_header():
    with pytest.raises(IDXError, match="too short"):
        parse_idx(b"\0\0", "x")


def test_wrong_magic_is_not_an_idx_file():
    with pytest.raises(IDXError, match="bad magic number 3c68746d.*not an IDX file"):
        parse_idx(b"<html><body>404</body></html>", "page.html")


def test_unknown_type_code_is_rejected():
    with pytest.raises(IDXError, match="unknown IDX data type code 0x07"):
        parse_idx(idx_bytes(IMAGES, 0x07), "x")


def test_dims_smaller_than_data_report_trailing_bytes():
    data = bytearray(idx_bytes(IMAGES, 0x08))
    data[4:8] = struct.pack(">I", 1)  # claims 1 image where there are 2
    with pytest.raises(IDXError, match="12 unexpected trailing bytes"):
        parse_idx(bytes(data), "x")


def test_truncated_gzip_is_an_idx_error_not_eof_error(tmp_path):
    path = tmp_path / "partial.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES, 0x08))[:-12])
    with pytest.raises(IDXError, match="partial.gz: damaged gzip data"):
        read_idx(path)
