"""A dataset is one entry: configs, --help, the memory estimate, the loaders and --eval's pictures
read it, and a user's own dataset, registered from their own module, trains from a config."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_train_cli import tiny_config

from datasets import DATASETS, Dataset, Synthetic, register
from experiments import config as C
from experiments.cli import main
from framework.checks import Integer, checked

REPO = Path(__file__).resolve().parents[1]


class Stripes(Dataset):
    """Stripes across or down: 3x6x5 colour images, 2 classes (a test's own dataset)"""

    @checked
    def __init__(self, train: Integer(2) = 60, test: Integer(0) = 20):
        self.example_shape, self.classes = (3, 6, 5), 2
        self.sizes = {"train": train, "test": test}
        self.dtype = np.dtype(np.uint8)

    def load(self, rng, progress=None, log=print):
        n_train, n = self.sizes["train"], self.sizes["train"] + self.sizes["test"]
        t = rng.integers(2, size=n)
        x = rng.integers(0, 60, (n, 3, 6, 5), dtype=np.uint8)
        x[t == 0, :, ::2, :] += 150  # rows
        x[t == 1, :, :, ::2] += 150  # columns
        test = (x[n_train:], t[n_train:]) if self.sizes["test"] else None
        return (x[:n_train], t[:n_train]), test


@pytest.fixture
def stripes():
    """Stripes registered as a user's module would do it, and taken out again afterwards."""
    register(Stripes)
    yield Stripes
    del DATASETS.classes["stripes"]


STRIPES = """\
data: {dataset: stripes, validation: 10, batch_size: 10}
model: [{conv2d: {out: 4, kernel: 3, pad: 1}}, relu, {maxpool2d: {kernel: 2}}, {affine: {out: 2}}]
optimizer: {name: adam, lr: 0.01}
training: {epochs: 5, seed: 0}
logging: {progress: false, plots: false}
"""


def run_stripes(tmp_path, capsys, *sets):
    """Trains the stripes config into tmp_path/run; returns (exit code, stdout, stderr)."""
    path = tmp_path / "stripes.yaml"
    path.write_text(STRIPES, encoding="utf-8")
    overrides = [arg for s in sets for arg in ("--set", s)]
    code = main([str(path), "--out", str(tmp_path / "run"), *overrides])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_users_own_dataset_trains_from_a_config(tmp_path, capsys, stripes):
    code, out, err = run_stripes(tmp_path, capsys)
    assert code == 0, err
    assert "test 20 examples of shape (3, 6, 5)" in out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test_accuracy"] > 0.9


def test_a_dataset_without_a_test_set_trains_and_says_so(tmp_path, capsys, stripes):
    code, out, err = run_stripes(tmp_path, capsys, "data.test=0")
    assert code == 0, err
    assert "test 0 examples" in out and "no test set" in out
    assert "--eval" not in out  # the closing lines offer no evaluation it would refuse
    assert main(["--eval", str(tmp_path / "run")]) == 2
    assert "stripes has no test set" in capsys.readouterr().err


def test_eval_draws_the_mistakes_of_colour_images(tmp_path, capsys, stripes):
    pytest.importorskip("matplotlib")
    code, _, err = run_stripes(tmp_path, capsys, "optimizer.lr=1e-6", "training.epochs=1")
    assert code == 0, err
    assert main(["--eval", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "mistakes.png").exists()


@pytest.mark.parametrize("shape, drawn", [((1, 4, 3), (4, 3)), ((3, 4, 3), (4, 3, 3)),
                                          ((2, 4, 3), (4, 3)), ((7,), None)])
def test_an_example_is_drawn_as_grey_colour_or_not_at_all(shape, drawn):
    entry = Stripes()
    entry.example_shape = shape
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    picture = entry.picture(x)
    assert (picture is None) if drawn is None else picture.shape == drawn
    if shape[0] == 3:  # imshow takes colour as (H, W, 3) in [0, 1]
        assert picture.min() == 0 and picture.max() == 1


def test_uint8_examples_reach_the_model_scaled_to_float32():
    x = np.array([[0, 51, 255]], np.uint8)
    np.testing.assert_array_equal(Dataset.model_input(x), np.float32([[0, 0.2, 1]]))
    floats = np.float32([[3.5]])
    assert Dataset.model_input(floats) is floats


def test_help_lists_every_dataset_with_its_settings_and_description(capsys, stripes):
    assert main(["--help"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    for name in ("mnist", "fashion", "synthetic", "stripes"):
        assert f" {name} " in printed
    assert ("stripes train: an integer ≥ 2 (default 60) test: an integer ≥ 0 (default 20) "
            "Stripes across or down") in printed
    assert "classes: an integer ≥ 2 (default 3) Gaussian blobs" in printed


def test_a_setting_of_another_dataset_is_refused_naming_both():
    with pytest.raises(C.ConfigError, match=r"--set data.train=10: data.train: mnist does not use "
                       r"'train' \(its settings: dir, mirrors\); remove it or set it to null"):
        C.load(None, ["data.train=10"])


def test_a_setting_of_another_dataset_set_to_null_is_accepted():
    config = C.load(None, ["data={dataset: synthetic, dir: null, validation: 10}",
                           "model.6.affine.out=3"])
    assert config["data"]["dataset"] == "synthetic" and "dir" not in config["data"]


def test_data_dir_for_a_dataset_without_a_folder_names_the_flag(tmp_path, capsys):
    assert main([tiny_config(tmp_path), "--data-dir", str(tmp_path / "d"), "--quiet"]) == 2
    assert "--data-dir" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_shifting_vectors_is_refused_naming_the_dataset_and_its_shape(tmp_path):
    with pytest.raises(C.ConfigError, match="the examples of synthetic are vectors of 8 numbers"):
        C.load(tiny_config(tmp_path), ["data.augment_shift=1"])


def test_the_memory_estimate_refuses_a_users_dataset_too_big_for_the_machine(tmp_path, capsys,
                                                                             stripes):
    code, _, err = run_stripes(tmp_path, capsys, f"data.train={10 ** 13}")
    assert code == 2 and "needs about" in err and not (tmp_path / "run").exists()


def test_registering_a_constructor_argument_without_a_check_is_refused():
    class Plain(Dataset):
        def __init__(self, size=3):
            pass

    with pytest.raises(TypeError, match="Plain: constructor argument 'size' has no check, so "
                       "configs and checkpoints would leave it out; write `size: Integer"):
        register(Plain)
    assert "plain" not in DATASETS


def test_registering_without_checked_is_refused():
    class Unchecked(Dataset):
        def __init__(self, size: Integer(1) = 3):
            pass

    with pytest.raises(TypeError, match=r"Unchecked: .* write @checked"):
        register(Unchecked)


def test_registering_under_a_name_taken_is_refused():
    class Synthetic(Dataset):
        pass

    with pytest.raises(TypeError, match="a dataset named 'synthetic' is already registered"):
        register(Synthetic)
    assert DATASETS["synthetic"] is not Synthetic


def test_registering_what_is_not_a_dataset_is_refused():
    with pytest.raises(TypeError, match="dict is not a subclass of Dataset"):
        register(dict)


def test_registering_again_the_same_class_is_harmless():
    assert register(DATASETS["synthetic"]) is Synthetic


def test_no_code_outside_datasets_names_a_dataset():
    """No "mnist" in experiments/ (prose may say MNIST: --help describes the digits)."""
    names = "|".join(DATASETS)
    for path in [*(REPO / "experiments").glob("*.py"), REPO / "train.py"]:
        found = re.findall(rf"[\"']({names})[\"']", path.read_text(encoding="utf-8"))
        assert not found, f"{path.relative_to(REPO)} names {found}"
