"""load_mnist end to end, its cache, its configuration, and split_validation."""

from __future__ import annotations

import os
import runpy
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from datasets import IDX_DATASETS, DownloadError, IDXError, default_root, load_mnist
from datasets.download import RetryPolicy
from datasets.memo import SIDECAR_NAME
from datasets.mnist import holds, local_folders, resolve_mirrors
from datasets.split import split_validation
from datasets.verify import sha256_of

FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
TRAIN_PIXEL_SUM = 1567298545  # of the uint8 training images
GZ_NAMES = sorted(spec.name for spec in IDX_DATASETS["mnist"].files.values())
REPO = Path(__file__).resolve().parents[1]
FAST = RetryPolicy(attempts=1, backoff=0.0, read_timeout=2.0)


def cache_contents(root) -> list[str]:
    """The folder's files, with the .npy cache names' digest part elided."""
    return sorted(name if not name.endswith(".npy") else name.split(".")[0] + ".npy"
                  for name in os.listdir(root))


COMPLETE_CACHE = sorted(GZ_NAMES + [n.replace(".gz", ".npy") for n in GZ_NAMES] + [SIDECAR_NAME])


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory, mnist_files):
    """A data folder filled once from the shared files used as a local mirror."""
    root = tmp_path_factory.mktemp("mnist")
    load_mnist(root, mirrors=[str(mnist_files)], progress=False)
    return root


@pytest.fixture
def mnist_copy(tmp_path, mnist_root):
    """A private copy of the filled data folder, for tests that damage it."""
    return shutil.copytree(mnist_root, tmp_path / "mnist")


def test_load_over_http_end_to_end(tmp_path, mnist_server):
    (x_train, t_train), (x_test, t_test) = load_mnist(tmp_path, mirrors=[mnist_server.base("ok")],
                                                      policy=FAST)
    assert x_train.shape == (60000, 784) and x_train.dtype == np.float32
    assert x_test.shape == (10000, 784) and x_test.dtype == np.float32
    assert t_train.dtype == np.int64 and t_test.shape == (10000,)
    assert 0.0 == x_train.min() and x_train.max() == 1.0
    assert float(x_train.sum(dtype=np.float64)) * 255 == pytest.approx(TRAIN_PIXEL_SUM, rel=1e-6)
    assert t_train[:10].tolist() == FIRST_TRAIN_LABELS
    assert (int(t_train.sum()), int(t_test.sum())) == (267236, 44434)
    assert cache_contents(tmp_path) == COMPLETE_CACHE


def test_local_folder_mirror_fills_cache(mnist_root):
    assert cache_contents(mnist_root) == COMPLETE_CACHE


def test_verified_cache_works_with_no_mirror_reachable(mnist_root, mnist_dead_mirror):
    (_, t_train), _ = load_mnist(mnist_root, mirrors=[mnist_dead_mirror], policy=FAST)
    assert t_train[:10].tolist() == FIRST_TRAIN_LABELS


def test_unnormalized_unflattened_images_are_uint8_nchw(mnist_root):
    (x_train, _), (x_test, _) = load_mnist(mnist_root, normalize=False, flatten=False,
                                           download=False)
    assert x_train.shape == (60000, 1, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 1, 28, 28) and int(x_test.max()) == 255
    x_train[0, 0, 0, 0] = 1  # an ordinary writable array, not the read-only cache


def test_normalized_images_match_uint8_over_255(mnist_root):
    (x, _), _ = load_mnist(mnist_root, dtype=np.float64, download=False)
    (raw, _), _ = load_mnist(mnist_root, normalize=False, download=False)
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x[:100], raw[:100] / 255.0)


def test_one_hot_labels(mnist_root):
    (_, t_train), _ = load_mnist(mnist_root, one_hot=True, download=False)
    assert t_train.shape == (60000, 10) and t_train.dtype == np.float32
    assert t_train.argmax(axis=1)[:10].tolist() == FIRST_TRAIN_LABELS
    assert t_train.sum() == 60000


def test_one_hot_label_is_the_books_name_for_one_hot(tmp_path, tiny):
    (_, t), (_, tt) = load_mnist(tmp_path, name="tiny", one_hot_label=True)
    assert t.shape == (40, 3) and tt.shape == (10, 3)
    np.testing.assert_array_equal(t.argmax(axis=1), tiny.arrays["train_labels"])


def test_one_hot_and_one_hot_label_that_disagree_are_refused(tmp_path, tiny):
    with pytest.raises(TypeError, match="one_hot=True and one_hot_label=False"):
        load_mnist(tmp_path, name="tiny", one_hot=True, one_hot_label=False)


def test_damaged_gz_in_cache_is_replaced(mnist_copy, mnist_files):
    victim = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:1000])  # a partial download from some other tool
    load_mnist(mnist_copy, mirrors=[str(mnist_files)])
    assert sha256_of(victim) == sha256_of(mnist_files / victim.name)


@pytest.mark.parametrize("keep", [0, 5000], ids=["empty", "truncated"])
def test_damaged_npy_cache_is_rebuilt(mnist_copy, keep):
    npy = next(mnist_copy.glob("train-images-idx3-ubyte.*.npy"))
    npy.write_bytes(npy.read_bytes()[:keep])
    rebuilt = f"{npy.name}: unreadable.*rebuilding it from train-images"
    with pytest.warns(UserWarning, match=rebuilt):
        (x_train, _), _ = load_mnist(mnist_copy, normalize=False, download=False)
    assert x_train.shape == (60000, 784) and int(x_train.sum(dtype=np.int64)) == TRAIN_PIXEL_SUM
    assert npy.stat().st_size > 47_000_000


def test_download_false_with_missing_files_explains_what_to_do(tmp_path):
    with pytest.raises(DownloadError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert "download=False" in message
    assert str(tmp_path) in message and "MNIST_MIRRORS" in message
    assert all(name in message for name in GZ_NAMES)


def test_all_mirrors_failing_is_one_clear_error_and_leaves_nothing(tmp_path, mnist_server,
                                                                   mnist_dead_mirror):
    mirrors = [mnist_dead_mirror, mnist_server.base("html"), mnist_server.base("corrupt")]
    with pytest.raises(DownloadError) as info:
        load_mnist(tmp_path, mirrors=mirrors, policy=FAST)
    message = str(info.value)
    assert all(f"  - {mirror}: " in message for mirror in mirrors)
    assert "sha256 mismatch" in message and "put them in" in message
    assert os.listdir(tmp_path) == []


def test_unknown_dataset_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'kmnist'; known: mnist, fashion"):
        load_mnist(tmp_path, name="kmnist")


def test_environment_chooses_folder_and_mirrors(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MNIST_MIRRORS", " /srv/mnist , https://example.org/mnist/,")
    dataset = IDX_DATASETS["mnist"]
    assert default_root(dataset) == tmp_path / "data"
    assert resolve_mirrors(dataset) == ["/srv/mnist", "https://example.org/mnist/"]
    assert resolve_mirrors(dataset, ["/only/this"]) == ["/only/this"]


def test_default_folder_is_per_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.delenv("MNIST_MIRRORS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_root(IDX_DATASETS["mnist"]) == tmp_path / "npdl" / "mnist"
    assert resolve_mirrors(IDX_DATASETS["mnist"])[-1] == "http://yann.lecun.com/exdb/mnist/"


def test_local_folders_are_where_load_mnist_finds_files(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("MNIST_MIRRORS", f"https://example.org/mnist/,{tmp_path / 'a'},"
                                        f"file://{tmp_path / 'b'}")
    assert local_folders(IDX_DATASETS["mnist"]) == [
        tmp_path / "mine", tmp_path / "a", tmp_path / "b", tmp_path / "cache" / "npdl" / "mnist"]


def test_bench_data_looks_for_mnist_where_load_mnist_does(monkeypatch, tmp_path, mnist_files):
    bench = runpy.run_path(str(REPO / "benchmarks" / "bench_data.py"), run_name="bench_data")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("MNIST_MIRRORS", str(mnist_files))
    places = bench["places"]()  # no --mirror: the first of these that holds the files
    assert places[:2] == [tmp_path / "cache" / "npdl" / "mnist", mnist_files]
    assert next(p for p in places if holds(p, IDX_DATASETS["mnist"])) == mnist_files


def test_another_idx_dataset_is_just_a_table_entry(tmp_path, tiny):
    (x, t), (xt, tt) = load_mnist(tmp_path / "root", name="tiny", one_hot=True)
    assert x.shape == (40, 16) and xt.shape == (10, 16)
    np.testing.assert_array_equal(x, tiny.arrays["train_images"].reshape(40, 16) / np.float32(255))
    np.testing.assert_array_equal(t.argmax(axis=1), tiny.arrays["train_labels"])
    assert tt.shape == (10, 3) and tt.sum() == 10


def test_label_outside_the_classes_is_an_error_naming_file_index_and_value(tmp_path, make_tiny):
    labels = np.zeros(40, dtype=np.uint8)
    labels[[5, 30]] = [7, 200]
    make_tiny(train_labels=labels)
    message = r"train_labels\.gz: label 7 at index 5 is outside \[0, 3\) \(2 of 40 labels are\)"
    with pytest.raises(IDXError, match=message):
        load_mnist(tmp_path / "root", name="tiny")


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_created_files_get_the_users_umask(tmp_path, tiny, mask, mode):
    old = os.umask(mask)
    try:
        load_mnist(tmp_path / "root", name="tiny")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "root").iterdir()}
    assert len(modes) == 9  # four .gz, four .npy caches, the checksum sidecar
    assert modes == dict.fromkeys(modes, mode)


def test_split_validation_is_reproducible_and_partitions():
    x = np.arange(100).reshape(50, 2)
    t = np.arange(50)
    (_, t_tr), (x_va, t_va) = split_validation(x, t, 10, seed=3)
    (_, t_tr2), (_, t_va2) = split_validation(x, t, 10, seed=3)
    assert len(t_va) == 10 and len(t_tr) == 40
    assert sorted(np.concatenate([t_tr, t_va]).tolist()) == list(range(50))
    assert t_va.tolist() == t_va2.tolist() and t_tr.tolist() == t_tr2.tolist()
    np.testing.assert_array_equal(x_va[:, 0], 2 * t_va)  # rows stay paired with their labels


def test_split_validation_depends_on_seed_and_accepts_fraction():
    t = np.arange(1000)
    (_, _), (_, a) = split_validation(t, t, 0.1, seed=0)
    (_, _), (_, b) = split_validation(t, t, 0.1, seed=1)
    assert len(a) == len(b) == 100 and a.tolist() != b.tolist()


def test_split_validation_rejects_bad_size():
    t = np.arange(10)
    with pytest.raises(ValueError, match="size must be"):
        split_validation(t, t, 11, seed=0)
