"""MNIST-style datasets: a table of where to get them, ``load_mnist``, and their entries.

Environment variables (for MNIST; Fashion-MNIST uses the FASHION_MNIST_ prefix):

- ``MNIST_DIR``: folder holding the files (default ``$XDG_CACHE_HOME/npdl/mnist``,
  i.e. usually ``~/.cache/npdl/mnist``). An explicit ``root`` wins over it.
- ``MNIST_MIRRORS``: comma-separated list replacing the default mirrors; each entry
  an http(s) base URL, a file:// URL or a local folder holding the ``.gz`` files.
"""

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from datasets import cache
from datasets.download import RetryPolicy, fetch, local_folder
from datasets.entry import Dataset, register
from datasets.idx import IDXError, read_idx
from datasets.images import mnist_like
from datasets.progress import ProgressArg
from datasets.verify import FileSpec
from framework.checks import Optional, Text, TextList, checked


@dataclass(frozen=True)
class IDXDataset:
    """One MNIST-format dataset: its four files, mirrors, and the env vars that configure it."""

    name: str
    files: dict[str, FileSpec]  # keys: train_images, train_labels, test_images, test_labels
    mirrors: tuple[str, ...]  # tried in order: most reliable first
    env_prefix: str  # <prefix>_DIR and <prefix>_MIRRORS
    n_train: int = 60_000
    n_test: int = 10_000
    image_shape: tuple[int, int] = (28, 28)
    num_classes: int = 10


IDX_DATASETS = {
    "mnist": IDXDataset(
        name="mnist",
        files={
            "train_images": FileSpec(
                "train-images-idx3-ubyte.gz", 9912422,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            "train_labels": FileSpec(
                "train-labels-idx1-ubyte.gz", 28881,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            "test_images": FileSpec(
                "t10k-images-idx3-ubyte.gz", 1648877,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            "test_labels": FileSpec(
                "t10k-labels-idx1-ubyte.gz", 4542,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",  # the historic host: often 403/404 or an HTML page
        ),
        env_prefix="MNIST",
    ),
    # Digests and sizes as published by many independent projects (Keras logs,
    # Flux, Chainer-based loaders); not checked against the bytes in this repo's CI.
    "fashion": IDXDataset(
        name="fashion-mnist",
        files={
            "train_images": FileSpec(
                "train-images-idx3-ubyte.gz", 26421880,
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            "train_labels": FileSpec(
                "train-labels-idx1-ubyte.gz", 29515,
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            "test_images": FileSpec(
                "t10k-images-idx3-ubyte.gz", 4422102,
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            "test_labels": FileSpec(
                "t10k-labels-idx1-ubyte.gz", 5148,
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        },
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        env_prefix="FASHION_MNIST",
    ),
}


def default_root(dataset: IDXDataset) -> Path:
    """The folder used when ``root`` is None: $<PREFIX>_DIR, else ``user_cache_root``."""
    override = os.environ.get(f"{dataset.env_prefix}_DIR")
    if override:
        return Path(override).expanduser()
    return user_cache_root(dataset)


def user_cache_root(dataset: IDXDataset) -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME/npdl/<name>, usually ~/.cache/npdl/<name>."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "npdl" / dataset.name


def resolve_mirrors(dataset: IDXDataset, mirrors: str | Sequence[str] | None = None) -> list[str]:
    """The mirrors to try: ``mirrors`` if given, else $<PREFIX>_MIRRORS, else the table's list."""
    if mirrors is None:
        mirrors = os.environ.get(f"{dataset.env_prefix}_MIRRORS") or list(dataset.mirrors)
    if isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    return [m.strip() for m in mirrors if m and m.strip()]


def local_folders(dataset: IDXDataset) -> list[Path]:
    """The folders on this machine where load_mnist finds a dataset's files, in its order: the
    data folder (``default_root``), the folders among the mirrors (``resolve_mirrors``), and
    the user's cache folder."""
    folders = [default_root(dataset)]
    folders += [folder for mirror in resolve_mirrors(dataset)
                if (folder := local_folder(mirror)) is not None]
    return list(dict.fromkeys([*folders, user_cache_root(dataset)]))


def holds(folder: Path, dataset: IDXDataset) -> bool:
    """Whether ``folder`` holds all of a dataset's .gz files at their published sizes."""
    try:
        return all((Path(folder) / spec.name).stat().st_size == spec.size
                   for spec in dataset.files.values())
    except OSError:
        return False


def load_mnist(root: str | Path | None = None, *, normalize: bool = True, flatten: bool = True,
               one_hot: bool | None = None, one_hot_label: bool | None = None,
               dtype=np.float32, download: bool = True,
               mirrors: str | Sequence[str] | None = None, progress: ProgressArg = None,
               name: str = "mnist", policy: RetryPolicy | None = None):
    """Load MNIST (or another ``IDX_DATASETS`` entry) as ``((x_train, t_train), (x_test, t_test))``.

    Images are ``(N, 784)``, or ``(N, 1, 28, 28)`` when ``flatten=False``; scaled to
    [0, 1] in ``dtype`` when ``normalize`` else uint8 0-255. Labels are int64, or
    one-hot rows in ``dtype`` when ``one_hot`` (``one_hot_label``, the name the book
    *Deep Learning from Scratch* uses, is the same option). Missing files are downloaded
    into ``root`` (see ``default_root``) from ``mirrors`` (see ``resolve_mirrors``) unless
    ``download=False``; ``progress`` is None (a bar on a terminal), a bool, or a
    callable receiving byte counts; ``policy`` sets retries and when to give up on a
    slow mirror. Raises DownloadError when a file cannot be had.
    """
    one_hot = _one_hot_option(one_hot, one_hot_label)
    if name not in IDX_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(IDX_DATASETS)}")
    dataset = IDX_DATASETS[name]
    root = Path(root).expanduser() if root is not None else default_root(dataset)
    mirror_list = resolve_mirrors(dataset, mirrors) if download else []
    hint = "" if download else "Nothing was downloaded because download=False.\n"
    hint += _manual_hint(dataset, root)

    def get(key: str, shape: tuple[int, ...]) -> np.ndarray:
        spec = dataset.files[key]
        gz = fetch(spec, root, mirror_list, policy=policy, progress=progress, hint=hint)
        array = _parsed(gz, spec, shape)
        if key.endswith("_labels"):
            _check_labels(array, dataset.num_classes, gz)
        return array

    n_tr, n_te, hw = dataset.n_train, dataset.n_test, dataset.image_shape
    x_train = _images(get("train_images", (n_tr, *hw)), normalize, flatten, dtype)
    t_train = _labels(get("train_labels", (n_tr,)), one_hot, dataset.num_classes, dtype)
    x_test = _images(get("test_images", (n_te, *hw)), normalize, flatten, dtype)
    t_test = _labels(get("test_labels", (n_te,)), one_hot, dataset.num_classes, dtype)
    return (x_train, t_train), (x_test, t_test)


def load_fashion_mnist(root: str | Path | None = None, **kwargs):
    """Load Fashion-MNIST; same arguments and result as ``load_mnist``."""
    return load_mnist(root, name="fashion", **kwargs)


def _parsed(gz: Path, spec: FileSpec, shape: tuple[int, ...]) -> np.ndarray:
    """The uint8 array inside a verified ``.gz``, from a ``.npy`` cache when possible.

    The cache name carries the source's digest, so it can only ever have been made
    from this exact, verified file (never from a same-named file of another dataset).
    A cache whose bytes changed since it was written is rebuilt, with a warning.
    """
    npy = gz.with_name(f"{gz.name.removesuffix('.gz')}.{spec.sha256[:16]}.npy")
    try:
        cached = cache.read(npy, shape)
    except cache.Damaged as exc:
        warnings.warn(f"{npy}: {exc}; rebuilding it from {gz.name}", stacklevel=2)
        cached = None
    if cached is not None:
        return cached
    array = read_idx(gz)
    if array.shape != shape or array.dtype != np.uint8:
        raise IDXError(f"{gz}: holds {array.dtype} data of shape {array.shape}, "
                       f"expected uint8 {shape}")
    cache.write(npy, array)
    return array


def _one_hot_option(one_hot: bool | None, one_hot_label: bool | None) -> bool:
    if one_hot is not None and one_hot_label is not None and one_hot != one_hot_label:
        raise TypeError(f"load_mnist() got one_hot={one_hot!r} and one_hot_label="
                        f"{one_hot_label!r}: they are two names for one option, pass one")
    return bool(one_hot if one_hot is not None else one_hot_label)


def _check_labels(labels: np.ndarray, num_classes: int, source: Path) -> None:
    # A label past the last class would make one-hot rows fail and, worse, integer labels
    # train a wrong model; uint8 labels are never negative.
    outside = np.flatnonzero(labels >= num_classes)
    if outside.size:
        i = int(outside[0])
        raise IDXError(f"{source}: label {labels[i]} at index {i} is outside [0, {num_classes})"
                       f" ({outside.size} of {labels.size} labels are)")


def _images(u8: np.ndarray, normalize: bool, flatten: bool, dtype) -> np.ndarray:
    # One pass, one allocation: np.divide writes dtype directly, no float64 temporary.
    x = np.divide(u8, 255, dtype=dtype) if normalize else np.array(u8)
    return x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *x.shape[1:])


def _labels(u8: np.ndarray, one_hot: bool, num_classes: int, dtype) -> np.ndarray:
    if not one_hot:
        return u8.astype(np.int64)
    rows = np.zeros((len(u8), num_classes), dtype=dtype)
    rows[np.arange(len(u8)), u8] = 1
    return rows


def _manual_hint(dataset: IDXDataset, root: Path) -> str:
    names = "\n".join(f"    {s.name}  ({s.size} bytes, sha256 {s.sha256})"
                      for s in dataset.files.values())
    return (f"To fix this by hand: download these files (unchanged, still gzipped) "
            f"and put them in {root}\n"
            f"{names}\n"
            f"or set {dataset.env_prefix}_MIRRORS to a comma-separated list of web addresses "
            f"or folders that hold them (set {dataset.env_prefix}_DIR to use another data "
            f"folder).")


class IDXImages(Dataset):
    """Grey images in MNIST's format, downloaded and verified (the base of the entries below)."""

    locations = ("dir", "mirrors")
    files: ClassVar[str]  # its IDX_DATASETS key

    @checked
    def __init__(self, dir: Optional(Text()) = None, mirrors: Optional(TextList()) = None):
        self.dir, self.mirrors = dir, mirrors
        table = IDX_DATASETS[self.files]
        self.example_shape = (1, *table.image_shape)
        self.classes = table.num_classes
        self.sizes = {"train": table.n_train, "test": table.n_test}
        self.dtype = np.dtype(np.uint8)

    @classmethod
    def about(cls):
        table = IDX_DATASETS[cls.files]
        return (f"{super().about()}; files in dir, else ${table.env_prefix}_DIR, else "
                f"~/.cache/npdl/{table.name}; downloaded from mirrors, else "
                f"${table.env_prefix}_MIRRORS, else the built-in ones")

    def load(self, rng, progress=None, log=print):
        table = IDX_DATASETS[self.files]
        root = Path(self.dir).expanduser() if self.dir else default_root(table)
        missing = [spec for spec in table.files.values() if not (root / spec.name).exists()]
        if missing:
            size = sum(spec.size for spec in missing) / 1e6
            log(f"data: fetching {table.name} ({size:.0f} MB, {len(missing)} files) from its "
                f"mirrors (web addresses or folders) into {root}")
        # uint8 as stored: train.py splits them, then scales each split once (splitting float32
        # images would hold two copies of the training set at once).
        loaded = load_mnist(root, mirrors=self.mirrors, progress=progress, name=self.files,
                            normalize=False, flatten=False)
        log(f"data: {table.name} from {root} (verified; parsed arrays cached there)")
        return loaded


@register
class MNIST(IDXImages):
    """Handwritten digits: 28x28 grey images, 10 classes, 60,000 training and 10,000 test"""

    files = "mnist"
    photo = staticmethod(mnist_like)


@register
class Fashion(IDXImages):
    """Fashion-MNIST, clothes: 28x28 grey images, 10 classes, 60,000 training and 10,000 test"""

    files = "fashion"
