"""The .npy cache: used while its recorded crc32 matches, else rebuilt from the verified .gz
with a warning that names it. Runs on the small made-up dataset of conftest.py."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

from datasets import load_mnist, mnist
from datasets.memo import SIDECAR_NAME


def cache_file(root, key):
    """The .npy cache made from the dataset file ``key`` (its name is key.<digest>.npy)."""
    (npy,) = root.glob(f"{key}.*.npy")
    return npy


def rewrite_array_bytes(npy, change) -> None:
    """Replace the array bytes of a .npy file (everything after its header) by change(bytes)."""
    raw = npy.read_bytes()
    start = len(raw) - np.load(npy).nbytes
    changed = change(raw[start:])
    assert changed != raw[start:]
    npy.write_bytes(raw[:start] + changed)


def load_raw(root):
    """Load the tiny dataset as stored: uint8 images and int labels."""
    return load_mnist(root, name="tiny", normalize=False, flatten=False, download=False)


def assert_loads_exactly(root, tiny) -> None:
    (x, t), (xt, tt) = load_raw(root)
    np.testing.assert_array_equal(x[:, 0], tiny.arrays["train_images"])
    np.testing.assert_array_equal(t, tiny.arrays["train_labels"])
    np.testing.assert_array_equal(xt[:, 0], tiny.arrays["test_images"])
    np.testing.assert_array_equal(tt, tiny.arrays["test_labels"])


def assert_loads_silently(root, tiny) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_loads_exactly(root, tiny)


@pytest.fixture
def root(tmp_path, tiny):
    """A data folder filled with the tiny dataset and its caches."""
    root = tmp_path / "root"
    load_mnist(root, name="tiny")
    return root


def flip_bit(data: bytes, i: int = 5) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


DAMAGE = {
    "image bit flipped": ("train_images", flip_bit),
    "images zeroed": ("train_images", lambda data: bytes(len(data))),
    "images truncated": ("test_images", lambda data: data[: len(data) // 2]),
    "label changed": ("train_labels", lambda data: bytes([(data[0] + 1) % 3]) + data[1:]),
    "labels shuffled": ("train_labels", lambda data: data[1:] + data[:1]),
    "label 200": ("test_labels", lambda data: data[:3] + bytes([200]) + data[4:]),
}


@pytest.mark.parametrize("key, change", DAMAGE.values(), ids=DAMAGE)
def test_damaged_cache_is_rebuilt_with_a_warning(root, tiny, key, change):
    npy = cache_file(root, key)
    rewrite_array_bytes(npy, change)
    with pytest.warns(UserWarning, match=rf"{re.escape(str(npy))}: .*rebuilding it from {key}\.gz"):
        assert_loads_exactly(root, tiny)
    assert_loads_silently(root, tiny)  # the rebuilt cache is trusted again


def test_cache_of_another_shape_is_rebuilt(root, tiny):
    npy = cache_file(root, "train_images")
    np.save(npy, tiny.arrays["train_images"][:20])
    with pytest.warns(UserWarning, match=r"shape \(20, 4, 4\), expected uint8 \(40, 4, 4\)"):
        assert_loads_exactly(root, tiny)


def test_crc_mismatch_is_named_in_the_warning(root, tiny):
    rewrite_array_bytes(cache_file(root, "train_labels"), flip_bit)
    with pytest.warns(UserWarning, match="crc32 [0-9a-f]{8} differs from the [0-9a-f]{8} recorded"):
        load_raw(root)


def test_good_cache_is_used_without_parsing_the_gz(root, tiny, monkeypatch):
    def refuse(path):
        raise AssertionError(f"parsed {path} although its cache is good")

    monkeypatch.setattr(mnist, "read_idx", refuse)
    assert_loads_silently(root, tiny)


def test_cache_without_a_recorded_crc_is_rebuilt_quietly(root, tiny):
    sidecar = root / SIDECAR_NAME
    memo = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({k: v for k, v in memo.items() if not k.endswith(".npy")}))
    npy = cache_file(root, "train_images")
    rewrite_array_bytes(npy, flip_bit)  # unverifiable, so it must not be used
    assert_loads_silently(root, tiny)
    assert set(json.loads(sidecar.read_text())) == set(memo)
