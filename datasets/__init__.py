"""Datasets for npdl: each one an entry (datasets.entry) that configs, the memory estimate, the
loaders and the pictures read; MNIST-format loaders that download robustly and load fast.

>>> from datasets import load_mnist, split_validation
>>> (x_train, t_train), (x_test, t_test) = load_mnist()
>>> (x_train, t_train), (x_val, t_val) = split_validation(x_train, t_train, 10_000, seed=0)

Files live in ``$MNIST_DIR`` or ``~/.cache/npdl/mnist``; ``$MNIST_MIRRORS`` replaces
the download mirrors (see ``datasets.mnist``). A dataset of one's own is a class decorated with
``@datasets.register`` (see ``datasets.entry``).
"""

from datasets.download import DownloadError, RetryPolicy, fetch
from datasets.entry import DATASETS, Dataset, register
from datasets.idx import IDXError, parse_idx, read_idx
from datasets.images import ImageError, mnist_like, read_image
from datasets.mnist import (
    IDX_DATASETS,
    IDXDataset,
    default_root,
    load_fashion_mnist,
    load_mnist,
)
from datasets.split import split_validation
from datasets.synthetic import Synthetic
from datasets.user_file import File
from datasets.verify import FileSpec

__all__ = [
    "DATASETS", "Dataset", "DownloadError", "File", "FileSpec", "IDX_DATASETS", "IDXDataset",
    "IDXError", "ImageError", "RetryPolicy", "Synthetic", "default_root", "fetch",
    "load_fashion_mnist", "load_mnist", "mnist_like", "parse_idx", "read_idx", "read_image",
    "register", "split_validation",
]
