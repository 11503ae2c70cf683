"""Your own data from one file (data: {dataset: file, path: ...}): a .npz or a .csv trains from a
config and from Python, its shape and classes read from the file, and a bad file is refused
before any folder is made, naming the file and the array."""
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

import framework as F
from datasets import File
from experiments import config as C
from experiments.cli import main

CONFIG = """\
data: {{dataset: file, path: {path}, validation: 20, batch_size: 20}}
model: {model}
optimizer: {{name: adam, lr: 0.01}}
training: {{epochs: 6, seed: 0}}
logging: {{progress: false, plots: false}}
"""
MLP = "[{affine: {out: 16}}, relu, {affine: {out: 3}}]"
CNN = ("[{conv2d: {out: 4, kernel: 3, pad: 1}}, relu, {maxpool2d: {kernel: 2}}, "
       "{affine: {out: 2}}]")


def blobs(n=200, features=5, classes=3, seed=0):
    """(x float32 (n, features), t): one centre per class, unit noise."""
    rng = np.random.default_rng(seed)
    t = rng.integers(classes, size=n)
    centres = 3 * rng.standard_normal((classes, features))
    return (centres[t] + rng.standard_normal((n, features))).astype(np.float32), t


def stripes(shape, n=160, seed=0):
    """(uint8 images (n, *shape), t): rows lit for class 0, columns for class 1."""
    rng = np.random.default_rng(seed)
    t = rng.integers(2, size=n)
    x = rng.integers(0, 50, (n, *shape)).astype(np.uint8)
    x[t == 0, ..., ::2, :] += 150
    x[t == 1, ..., :, ::2] += 150
    return x, t


def npz(path, x, t, test=40, **extra):
    np.savez(path, x_train=x[test:], t_train=t[test:], x_test=x[:test], t_test=t[:test], **extra)
    return path


def train(tmp_path, capsys, path, model, *sets):
    """Trains the file at `path` from a config; returns (exit code, stdout, stderr)."""
    config = tmp_path / "mine.yaml"
    config.write_text(CONFIG.format(path=path, model=model), encoding="utf-8")
    code = main([str(config), "--out", str(tmp_path / "run"), *[a for s in sets
                                                                 for a in ("--set", s)]])
    out, err = capsys.readouterr()
    return code, out, err


def accuracy(tmp_path):
    return json.loads((tmp_path / "run" / "summary.json").read_text())["test_accuracy"]


def test_feature_vectors_in_a_npz_train_an_mlp_from_a_config(tmp_path, capsys):
    x, t = blobs()
    code, out, err = train(tmp_path, capsys, npz(tmp_path / "mine.npz", x, t), MLP)
    assert code == 0, err
    assert "test 40 examples of shape (5,)" in out and "3 classes" in out
    assert accuracy(tmp_path) > 0.9


@pytest.mark.parametrize("shape", [(8, 8), (3, 8, 8)], ids=["N-H-W", "N-C-H-W"])
def test_images_in_a_npz_train_the_cnn_configs_layers(tmp_path, capsys, shape):
    x, t = stripes(shape)
    code, out, err = train(tmp_path, capsys, npz(tmp_path / "mine.npz", x, t), CNN)
    assert code == 0, err
    channels = shape[0] if len(shape) == 3 else 1
    assert f"examples of shape ({channels}, 8, 8)" in out
    assert accuracy(tmp_path) > 0.9


def test_a_csv_with_a_label_column_trains_from_a_config(tmp_path, capsys):
    x, t = blobs()
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    table.insert(2, "label", t)  # anywhere among the columns
    table.to_csv(tmp_path / "mine.csv", index=False)
    code, out, err = train(tmp_path, capsys, tmp_path / "mine.csv", MLP)
    assert code == 0, err
    assert "train 180  val 20  test 0 examples of shape (5,)" in out and "no test set" in out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["best_val_accuracy"] > 0.9


def test_a_npz_without_a_test_set_trains(tmp_path, capsys):
    x, t = blobs()
    np.savez(tmp_path / "mine.npz", x_train=x, t_train=t)
    code, out, err = train(tmp_path, capsys, tmp_path / "mine.npz", MLP)
    assert code == 0, err
    assert "no test set" in out


def test_the_file_trains_from_python(tmp_path):
    x, t = blobs()
    entry = File(str(npz(tmp_path / "mine.npz", x, t)))
    (x_train, t_train), (x_test, t_test) = entry.load()
    rng = np.random.default_rng(0)
    model = F.Sequential(F.Affine(5, 16, rng=rng), F.ReLU(), F.Affine(16, entry.classes, rng=rng))
    F.fit(model, F.SoftmaxCrossEntropy(), F.Adam(model.parameters(), lr=0.01),
          (entry.model_input(x_train), t_train), epochs=5, batch_size=20, rng=rng, callbacks=[])
    assert np.mean(model.predict(entry.model_input(x_test)) == t_test) > 0.9


def test_shape_classes_sizes_and_bytes_come_from_the_file(tmp_path):
    x, t = stripes((3, 6, 5), n=50)
    t[7] = 4  # five classes: 0 .. 4
    entry = File(str(npz(tmp_path / "mine.npz", x, t, test=10)))
    assert entry.example_shape == (3, 6, 5) and entry.classes == 5
    assert entry.sizes == {"train": 40, "test": 10} and entry.dtype == np.uint8
    assert entry.nbytes() == 50 * (90 * (1 + 4) + 8)  # uint8, its float32 copy, int64 labels
    (x_train, t_train), _ = entry.load()
    np.testing.assert_array_equal(x_train, x[10:])
    assert t_train.dtype == np.int64


def test_a_file_too_big_for_the_memory_is_refused_before_any_folder(tmp_path, capsys,
                                                                   monkeypatch):
    x, t = blobs()
    path = npz(tmp_path / "mine.npz", x, t)
    monkeypatch.setattr("experiments.memory.available_bytes", lambda: File(str(path)).nbytes())
    code, _, err = train(tmp_path, capsys, path, MLP)
    assert code == 2 and "needs about" in err and not (tmp_path / "run").exists()


# ---- bad files: each refused while the config is checked, naming the file and the array

def bad(tmp_path, name="bad.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def deflated_member_with_wrong_size(tmp_path):
    """A .npz whose x_train header declares more examples than the member holds."""
    path = tmp_path / "bad.npz"
    x, t = blobs(n=20)
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("x_train.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (1000, 5)})
            f.write(x.tobytes())
        with archive.open("t_train.npy", "w") as f:
            np.save(f, t)
    return path


x20, t20 = blobs(n=20)
CASES = {
    "missing": (lambda p: p / "nothing.npz", "nothing.npz: No such file"),
    "a folder": (lambda p: p, "not a regular file"),
    "another kind of file": (lambda p: (p / "x.txt").write_text("1") and p / "x.txt",
                             "expected a .npz"),
    "not a zip": (lambda p: (p / "x.npz").write_bytes(b"garbage" * 10) and p / "x.npz",
                  "File is not a zip file"),
    "no x_train": (lambda p: bad(p, t_train=t20), "has no x_train"),
    "an unknown array": (lambda p: bad(p, x_train=x20, t_train=t20, X_test=x20),
                         "holds X_test; a .npz dataset holds x_train"),
    "x_test without t_test": (lambda p: bad(p, x_train=x20, t_train=t20, x_test=x20),
                              "holds x_test but no t_test"),
    "python objects": (lambda p: bad(p, x_train=np.array([{}, 1], dtype=object), t_train=t20),
                       "x_train: holds object items"),
    "lengths differ": (lambda p: bad(p, x_train=x20, t_train=t20[:19]),
                       "x_train holds 20 examples but t_train 19 labels"),
    "one-dimensional x": (lambda p: bad(p, x_train=x20[:, 0], t_train=t20),
                          "x_train has shape (20,)"),
    "float labels": (lambda p: bad(p, x_train=x20, t_train=t20.astype(float)),
                     "t_train holds float64 values; labels are integers"),
    "bool examples": (lambda p: bad(p, x_train=x20 > 0, t_train=t20), "x_train holds bool"),
    "negative label": (lambda p: bad(p, x_train=x20, t_train=np.where(np.arange(20) == 6, -2,
                                                                       t20)),
                       "t_train holds the label -2 at example 6"),
    "one class": (lambda p: bad(p, x_train=x20, t_train=t20 * 0), "every label is 0"),
    "NaN": (lambda p: bad(p, x_train=np.where(np.arange(100).reshape(20, 5) == 37, np.nan,
                                              x20), t_train=t20),
            "x_train holds nan at example 7"),
    "infinity": (lambda p: bad(p, x_train=np.where(np.arange(100).reshape(20, 5) == 3, np.inf,
                                                   x20), t_train=t20),
                 "x_train holds inf at example 0"),
    "beyond float32": (lambda p: bad(p, x_train=x20.astype(np.float64) * 1e300, t_train=t20),
                       "within float32's range"),
    "integers float32 cannot hold": (lambda p: bad(p, x_train=np.full((20, 5), 2**40),
                                                   t_train=t20), "integers within ±16,777,216"),
    "test examples of another shape": (lambda p: bad(p, x_train=x20, t_train=t20,
                                                     x_test=x20[:, :4], t_test=t20),
                                       "x_test holds float32 examples of shape (4,)"),
    "a header larger than its data": (deflated_member_with_wrong_size,
                                      "x_train: its header says (1000, 5) float32"),
    "a csv without a label column": (lambda p: (p / "x.csv").write_text("a,b\n1,2\n3,4\n")
                                     and p / "x.csv", "has no 'label' column"),
    "a csv with a word": (lambda p: (p / "x.csv").write_text("label,a\n0,2\n1,x\n1,3\n")
                          and p / "x.csv", "column 'a' holds 'x' in data row 2"),
    "a csv with an empty cell": (lambda p: (p / "x.csv").write_text("label,a\n0,2\n1,\n1,3\n")
                                 and p / "x.csv", "column 'a' holds an empty cell in data row 2"),
    "a csv with a fractional label": (lambda p: (p / "x.csv").write_text(
        "label,a\n0,2\n1.5,1\n1,3\n") and p / "x.csv", "column 'label' holds 1.5 in data row 2"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_file_is_refused_naming_the_file_and_what_is_wrong(tmp_path, capsys, case):
    make, expected = case
    path = make(tmp_path)
    with pytest.raises(C.ConfigError) as refused:
        C.load(None, [f"data={{dataset: file, path: '{path}', validation: 2}}",
                      "model.6.affine.out=3"])
    message = str(refused.value)
    assert f"data.path: {path}" in message and expected in message
    code, _, err = train(tmp_path, capsys, path, MLP)
    assert code == 2 and expected in " ".join(err.split()) and not (tmp_path / "run").exists()


def test_a_npz_is_read_without_pickle(tmp_path):
    path = bad(tmp_path, x_train=np.array([{}, 1], dtype=object), t_train=t20)
    with pytest.raises(ValueError, match="object items"):
        File(str(path))


def test_an_output_layer_that_does_not_fit_the_files_classes_names_the_file(tmp_path, capsys):
    x, t = blobs()
    path = npz(tmp_path / "mine.npz", x, t)
    code, _, err = train(tmp_path, capsys, path, MLP, "model.2.affine.out=4")
    assert code == 2
    assert (f"model.2.affine.out: out of range: the output layer has 4 units but {path} has 3 "
            "classes") in " ".join(err.split())


def npy_with_header(text, data_bytes):
    """A .npy file's bytes whose header is `text` as written (not what numpy would write)."""
    head = text.encode()
    head += b" " * (63 - len(head) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head + b"\0" * data_bytes


@pytest.mark.parametrize("shape, message", [
    ("(4, -2, -3)", r"x_train: its header declares the shape \(4, -2, -3\), with a negative "),
    ("(4, 6", r"x_train: not a readable .npy array \(TokenError"),  # ast/tokenize's own errors
])
def test_a_crafted_header_is_refused_before_any_folder(tmp_path, shape, message):
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w") as z:  # 4 * (-2) * (-3) = 24 numbers: the size agrees
        z.writestr("x_train.npy", npy_with_header(
            f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}", 96))
        z.writestr("t_train.npy", npy_with_header(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", 32))
    with pytest.raises(ValueError, match=message):
        File(str(path))
