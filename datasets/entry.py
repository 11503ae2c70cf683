"""What a dataset is to the rest of npdl: one entry, a class listed by @register.

Config checks, `--help`, the memory estimate, the loaders of train.py and the pictures of
`--eval` read a dataset only through its entry, so a new dataset (a user's own too, registered
from their own module) is one class and its tests:

    @register
    class Blobs(Dataset):
        \"\"\"Gaussian blobs (the first docstring line is its line in --help).\"\"\"

        @checked
        def __init__(self, classes: Integer(2) = 3):
            self.example_shape, self.classes, self.sizes = (2,), classes, {"train": 90, "test": 30}
            self.dtype = np.dtype(np.float32)

        def load(self, rng, progress=None, log=print):
            ...

It is listed under its class name in lower case (Blobs -> "blobs"), which a config names as
`data.dataset`; its settings are its constructor's checked arguments (framework.checks), which a
config gives beside `dataset:`. An entry (an instance) states, before any data is read:

    example_shape  one example as the model gets it: (C, H, W) for images, (F,) for features
    classes        the labels are 0 .. classes - 1
    sizes          {"train": examples, "test": examples (0: no test set)}
    dtype          the examples as load returns them: uint8 (bytes 0-255) or float32

and `load` returns ((x_train, t_train), (x_test, t_test) or None), t as int64.
"""
import inspect
import math
from typing import ClassVar

import numpy as np

from framework.registry import Registry

DEFAULT = "mnist"  # what a config without data.dataset trains on


class Dataset:
    """Base of the entries; see the module's docstring for what an entry states."""

    # Settings that say where the data lives, not what it is: a resumed run may change them, and
    # `--eval` takes them from the user, never from a checkpoint.
    locations: ClassVar[tuple[str, ...]] = ()

    # How a person's own greyscale picture (H, W) becomes one example, for --predict: a function
    # (image, name) -> example, as the dataset's examples were made; None: it cannot.
    photo: ClassVar = None

    example_shape: tuple[int, ...]
    classes: int
    sizes: dict[str, int]
    dtype: np.dtype

    @classmethod
    def about(cls):
        """The entry's words in --help: its docstring's first paragraph."""
        return " ".join((inspect.getdoc(cls) or "").split("\n\n", 1)[0].split())

    def load(self, rng, progress=None, log=print):
        """((x_train, t_train), (x_test, t_test) or None); rng: the run's numpy Generator."""
        raise NotImplementedError

    def nbytes(self):
        """Memory the loaded data take at their peak: x as loaded, its float32 copy (unless it is
        float32 already) and the int64 labels."""
        n = self.sizes["train"] + self.sizes["test"]
        pixels = math.prod(self.example_shape)
        copy = 0 if self.dtype == np.float32 else 4
        return n * (pixels * (self.dtype.itemsize + copy) + 8)

    @staticmethod
    def model_input(x):
        """x as the model gets it: uint8 bytes scaled to float32 in [0, 1]; float32 as it is."""
        return np.divide(x, 255, dtype=np.float32) if x.dtype == np.uint8 else x

    def picture(self, x):
        """One example (as the model gets it) as a picture for imshow: (H, W) grey or (H, W, 3)
        colour scaled to [0, 1]; None when the examples are not images."""
        if len(self.example_shape) != 3:
            return None
        if self.example_shape[0] != 3:
            return x[0]
        low, high = float(x.min()), float(x.max())
        return (x.transpose(1, 2, 0) - low) / (high - low if high > low else 1.0)


# name -> entry class, in the order registered; @register checks each class as layers are checked
# (framework/registry.py): every constructor argument a checked setting, under @checked.
DATASETS = Registry("dataset", Dataset)
register = DATASETS.register
