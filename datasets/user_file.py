"""A user's own data in one file: `data: {dataset: file, path: my.npz}` (or `path: my.csv`).

A .npz holds x_train and t_train, and optionally x_test and t_test: x as (N, F) feature vectors,
(N, H, W) grey images or (N, C, H, W) images; t as integer labels 0 .. classes - 1. A .csv has a
`label` column and feature columns (read with pandas), and no test set. Examples of uint8 are
bytes scaled to [0, 1] as MNIST's are; other numbers are used as they are, in float32.

The file is untrusted input, described before anything of its size is allocated: the .npz's
member headers are read (never a pickle), every size checked against what the file holds, then
the labels and the examples are scanned in chunks of bounded size for their range, NaN and
infinities. So config checks know the example shape, the classes and the sizes (the memory check
among them) before any folder is made, and every problem names the file and the array.
"""
import functools
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from datasets.entry import Dataset, register
from framework.archive import npy_header
from framework.checks import Invalid, Text, checked

ARRAYS = ("x_train", "t_train", "x_test", "t_test")
CHUNK = 1 << 22  # bytes read at a time while scanning
EXACT_IN_FLOAT32 = 2 ** 24  # larger integers lose digits as float32
CSV_CHUNK_ROWS = 10_000


@register
class File(Dataset):
    """Your own data: path to a .npz (x_train, t_train, optionally x_test, t_test) or a .csv (a
    label column and feature columns)"""

    locations = ("path",)

    @checked
    def __init__(self, path: Text()):
        self.path = Path(path).expanduser()
        found = describe(self.path)
        self.stored, self.example_shape, self.classes, self.sizes = found
        uint8 = self.stored["x_train"][1] == np.uint8
        self.dtype = np.dtype(np.uint8 if uint8 else np.float32)

    def nbytes(self):
        # as stored (np.load, pandas' float64), then the float32 copy the model gets (none for
        # float32), and the labels as int64
        n = self.sizes["train"] + self.sizes["test"]
        itemsize = self.stored["x_train"][1].itemsize
        copy = 0 if self.stored["x_train"][1] == np.float32 else 4
        return n * (math.prod(self.example_shape) * (itemsize + copy) + 8)

    def load(self, rng=None, progress=None, log=print):
        """((x_train, t_train), (x_test, t_test) or None): x uint8 or float32 in the example
        shape, t int64. rng is not used (the file fixes the data)."""
        if describe(self.path) != (self.stored, self.example_shape, self.classes, self.sizes):
            raise Invalid(f"{self.path}: changed since it was checked; run again", ("path",))
        if self.path.suffix.lower() == ".csv":
            train, test = read_csv(self.path), None
        else:
            with np.load(self.path, allow_pickle=False) as npz:
                train = self.split(npz, "train")
                test = self.split(npz, "test") if self.sizes["test"] else None
        log(f"data: {self.path}: {self.sizes['train']:,} training and {self.sizes['test']:,} test "
            f"examples of shape {self.example_shape}, {self.classes} classes")
        return train, test

    def split(self, npz, split):
        x, t = npz[f"x_{split}"], npz[f"t_{split}"]
        if x.dtype != np.uint8:
            x = x.astype(np.float32)
        return np.ascontiguousarray(x).reshape(len(x), *self.example_shape), t.astype(np.int64)


def describe(path):
    """({array: (shape, dtype)}, example shape, classes, {"train": n, "test": n}) of the file at
    `path`, every problem an Invalid at the setting `path`; remembered while the file is
    unchanged."""
    try:
        info = os.stat(path)
    except OSError as e:
        raise Invalid(f"{path}: {e.strerror or e}", ("path",)) from None
    if not stat.S_ISREG(info.st_mode):
        raise Invalid(f"{path}: not a regular file", ("path",))
    if path.suffix.lower() not in (".npz", ".csv"):
        raise Invalid(f"{path}: expected a .npz (x_train, t_train, ...) or a .csv file",
                      ("path",))
    try:
        return described(str(path), info.st_size, info.st_mtime_ns, info.st_ino)
    except (BadFile, OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError) as e:
        raise Invalid(f"{path}: {e}", ("path",)) from None


class BadFile(Exception):
    """What is wrong with the data file (the message names the array)."""


class Labels:
    """What a scan of one split's labels found: their count, the highest, the first negative
    (index, label) or None; fed a chunk at a time, so no scan holds all the labels."""

    def __init__(self):
        self.count, self.high, self.negative = 0, -1, None

    def add(self, t):
        if len(t):
            self.high = max(self.high, int(t.max()))
            if self.negative is None and t.min() < 0:
                i = int(np.argmax(t < 0))
                self.negative = (self.count + i, int(t[i]))
        self.count += len(t)
        return self


@functools.lru_cache(maxsize=8)
def described(path, size, mtime_ns, inode):
    """describe() of a file as it is now (size, time and inode are the cache's key)."""
    scan = scan_csv if path.lower().endswith(".csv") else scan_npz
    stored, labels = scan(Path(path))
    n_train, n_test = labels["train"].count, labels["test"].count
    if n_train < 2:
        raise BadFile(f"{n_train} training example(s); a run needs at least 2")
    for split, seen in labels.items():
        if seen.negative is not None:
            raise BadFile(f"t_{split} holds the label {seen.negative[1]} at example "
                          f"{seen.negative[0]}; labels are 0, 1, 2, ...")
    high = max(seen.high for seen in labels.values())
    if high < 1:
        raise BadFile("every label is 0: a classifier needs at least two classes")
    shape = stored["x_train"][0][1:]
    example = (1, *shape) if len(shape) == 2 else shape
    return stored, tuple(example), high + 1, {"train": n_train, "test": n_test}


# ---- .npz: headers first, then bounded chunks

def scan_npz(path):
    """({array: (shape, dtype)}, {split: Labels}) of a checked .npz."""
    with zipfile.ZipFile(path) as npz:
        members = {name.removesuffix(".npy"): name for name in npz.namelist()}
        unknown = sorted(set(members) - set(ARRAYS))
        if unknown:
            raise BadFile(f"holds {', '.join(unknown)}; a .npz dataset holds x_train, t_train "
                          "and optionally x_test, t_test")
        for needed in ("x_train", "t_train"):
            if needed not in members:
                raise BadFile(f"has no {needed} (it holds {', '.join(members) or 'nothing'})")
        if ("x_test" in members) != ("t_test" in members):
            have, lack = ("x_test", "t_test") if "x_test" in members else ("t_test", "x_test")
            raise BadFile(f"holds {have} but no {lack}; give both or neither")
        stored = {name: header(npz, member) for name, member in members.items()}
        check_shapes(stored)
        labels = {split: Labels() for split in ("train", "test")}
        for split in ("train", "test"):
            if f"t_{split}" in stored:
                for part in chunks(npz, members[f"t_{split}"], *stored[f"t_{split}"]):
                    labels[split].add(part)
        for split in ("train", "test"):
            if f"x_{split}" in stored:
                scan_examples(npz, members[f"x_{split}"], f"x_{split}", stored[f"x_{split}"])
    return {name: stored[name][:2] for name in stored}, labels


def header(npz, member):
    """(shape, dtype, fortran order, bytes of data) of one member, checked against its size."""
    name = member.removesuffix(".npy")
    info = npz.getinfo(member)
    with npz.open(member) as f:
        try:
            shape, fortran, dtype = npy_header(f)
        except (ValueError, EOFError) as e:
            raise BadFile(f"{name}: {e}") from None
        start = f.tell()
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise BadFile(f"{name}: holds {dtype} items (Python objects or records); expected numbers")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != start + nbytes:
        raise BadFile(f"{name}: its header says {shape} {dtype} ({nbytes:,} bytes) but "
                      f"{info.file_size - start:,} bytes follow: the file is damaged")
    return shape, dtype, fortran, nbytes


def check_shapes(stored):
    for split in ("train", "test"):
        if f"x_{split}" not in stored:
            continue
        (xs, xd, *_), (ts, td, *_) = stored[f"x_{split}"], stored[f"t_{split}"]
        if len(xs) not in (2, 3, 4) or 0 in xs[1:]:
            raise BadFile(f"x_{split} has shape {xs}; expected (N, features), (N, H, W) or "
                          "(N, C, H, W)")
        if len(ts) != 1:
            raise BadFile(f"t_{split} has shape {ts}; expected one label per example, (N,)")
        if xs[0] != ts[0]:
            raise BadFile(f"x_{split} holds {xs[0]:,} examples but t_{split} {ts[0]:,} labels")
        if xd.kind not in "uif":
            raise BadFile(f"x_{split} holds {xd} values; expected numbers (uint8 pixels, "
                          "integers or floats)")
        if td.kind not in "ui":
            raise BadFile(f"t_{split} holds {td} values; labels are integers 0, 1, 2, ... "
                          "(t.astype(int) if they are whole numbers)")
    if "x_test" in stored:
        train, test = stored["x_train"], stored["x_test"]
        if train[0][1:] != test[0][1:] or train[1] != test[1]:
            raise BadFile(f"x_test holds {test[1]} examples of shape {test[0][1:]}, x_train "
                          f"{train[1]} of shape {train[0][1:]}; they must match")


def chunks(npz, member, shape, dtype, fortran, nbytes):
    """The member's items in order (C or Fortran, as stored), a bounded number at a time."""
    step = max(1, CHUNK // dtype.itemsize)
    with npz.open(member) as f:
        f.seek(npz.getinfo(member).file_size - nbytes)  # past the header
        left = math.prod(shape)
        while left:
            count = min(step, left)
            data = f.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise BadFile(f"{member}: ends early")
            yield np.frombuffer(data, dtype)
            left -= count


def scan_examples(npz, member, name, found):
    """Refuses NaN, infinities and numbers float32 cannot hold, naming the first example."""
    shape, dtype, fortran, _ = found
    if dtype == np.uint8:
        return
    per_example = math.prod(shape[1:])
    seen = 0
    for part in chunks(npz, member, *found):
        bad = (~np.isfinite(part) | (np.abs(part) > np.finfo(np.float32).max)
               if dtype.kind == "f" else np.abs(part.astype(np.float64)) > EXACT_IN_FLOAT32)
        if bad.any():
            i = seen + int(np.argmax(bad))
            where = (i % shape[0]) if fortran else i // per_example
            raise BadFile(f"{name} holds {part[np.argmax(bad)]} at example {where}; expected "
                          + ("finite numbers within float32's range" if dtype.kind == "f" else
                             f"integers within ±{EXACT_IN_FLOAT32:,} (float32 holds them exactly)"))
        seen += len(part)


# ---- .csv: a label column and feature columns

def scan_csv(path):
    """({array: (shape, dtype)}, {split: Labels}) of a checked .csv, read in chunks of rows."""
    import pandas as pd  # only for a .csv: `import datasets` stays free of pandas

    try:
        columns = list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise BadFile(f"not a CSV table ({e})") from None
    if "label" not in columns:
        raise BadFile(f"has no 'label' column (its columns: {', '.join(map(str, columns[:8]))}"
                      f"{', ...' if len(columns) > 8 else ''})")
    features = [c for c in columns if c != "label"]
    if not features:
        raise BadFile("has only a 'label' column; the other columns are the features")
    labels = Labels()
    try:
        for part in pd.read_csv(path, chunksize=CSV_CHUNK_ROWS):
            check_rows(part, features, labels.count)
            labels.add(part["label"].to_numpy(np.int64))
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise BadFile(f"not a CSV table ({e})") from None
    rows = labels.count
    return ({"x_train": ((rows, len(features)), np.dtype(np.float64)),
             "t_train": ((rows,), np.dtype(np.int64))}, {"train": labels, "test": Labels()})


def check_rows(part, features, first):
    """Refuses a non-number, an empty cell or a non-whole label, naming the column and row."""
    import pandas as pd

    for column in ["label", *features]:
        values = part[column]
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        bad = ~np.isfinite(numbers) | (np.abs(numbers) > np.finfo(np.float32).max)
        if column == "label":
            bad |= numbers != np.round(numbers)
        if bad.any():
            i = int(np.argmax(bad))
            kind = "whole numbers" if column == "label" else "finite numbers"
            value = values.iloc[i]
            shown = ("an empty cell" if pd.isna(value) else
                     repr(value) if isinstance(value, str) else str(value))
            raise BadFile(f"column {column!r} holds {shown} in data row {first + i + 1}; expected "
                          f"{kind}")


def read_csv(path):
    """(x float32 (N, features), t int64) of a .csv describe() has checked."""
    import pandas as pd

    table = pd.read_csv(path)
    x = table.drop(columns="label").to_numpy(np.float32)
    return x, table["label"].to_numpy(np.int64)
