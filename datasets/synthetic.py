"""Gaussian blobs made from the run's generator: a dataset without files, for tests and demos."""
import numpy as np

from datasets.entry import Dataset, register
from framework.checks import Integer, checked


@register
class Synthetic(Dataset):
    """Gaussian blobs, no files: a random centre per class, unit noise around it (tests, demos)"""

    @checked
    def __init__(self, train: Integer(2) = 1000, test: Integer(1) = 300,
                 features: Integer(1) = 20, classes: Integer(2) = 3):
        self.example_shape, self.classes = (features,), classes
        self.sizes = {"train": train, "test": test}
        self.dtype = np.dtype(np.float32)

    def nbytes(self):
        # x is the sum of two float32 arrays of its size (centres and noise)
        n, features = self.sizes["train"] + self.sizes["test"], self.example_shape[0]
        return n * (2 * 4 * features + 8)

    def load(self, rng, progress=None, log=print):
        n_train, n = self.sizes["train"], self.sizes["train"] + self.sizes["test"]
        features = self.example_shape[0]
        centres = 2 * rng.standard_normal((self.classes, features), dtype=np.float32)
        t = rng.integers(self.classes, size=n)
        x = centres[t] + rng.standard_normal((n, features), dtype=np.float32)
        log(f"data: synthetic blobs, {self.classes} classes")
        return (x[:n_train], t[:n_train]), (x[n_train:], t[n_train:])
