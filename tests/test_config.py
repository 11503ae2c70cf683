"""Configs: defaults, YAML reading, overrides, and the messages for every kind of mistake
(exit code 2)."""
from pathlib import Path

import pytest
import yaml

from experiments import config as C
from experiments.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run_cli(tmp_path, capsys, text, *extra):
    """Writes `text` as a config, runs the CLI on it; returns (exit code, stderr unwrapped, the
    config's path)."""
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    code = main([str(path), "--out", str(tmp_path / "out"), "--quiet", *extra])
    return code, " ".join(capsys.readouterr().err.split()), str(path)


@pytest.mark.parametrize("name", ["mnist_mlp.yaml", "quick.yaml", "compare_optimizers.yaml",
                                  "mnist_cnn.yaml", "book_ch6_optimizers.yaml"])
def test_shipped_configs_are_valid(name):
    assert C.load(CONFIGS / name)["data"]["dataset"] == "mnist"


def test_resolved_config_reads_back_unchanged(tmp_path):
    resolved = C.load(CONFIGS / "mnist_mlp.yaml")
    (tmp_path / "config.yaml").write_text(C.dump(resolved), encoding="utf-8")
    assert C.load(tmp_path / "config.yaml") == resolved


def test_defaults_fill_what_the_file_leaves_out(tmp_path):
    (tmp_path / "a.yaml").write_text("optimizer: {lr: 0.01}\n", encoding="utf-8")
    config = C.load(tmp_path / "a.yaml")
    assert config["optimizer"] == {**C.load()["optimizer"], "lr": 0.01}


def test_exponent_without_dot_is_a_number(tmp_path):
    (tmp_path / "a.yaml").write_text("optimizer: {lr: 1e-3}\n", encoding="utf-8")
    assert C.load(tmp_path / "a.yaml")["optimizer"]["lr"] == 0.001


def test_set_overrides_are_yaml_values_and_reach_list_items():
    config = C.load(None, ["optimizer.lr=2e-3", "model.0.affine.out=64", "data.mirrors=[/a, /b]"])
    assert config["optimizer"]["lr"] == 0.002
    assert config["model"][0] == {"affine": {"out": 64, "init": "he"}}
    assert config["data"]["mirrors"] == ["/a", "/b"]


def test_unknown_key_names_file_path_and_suggests(tmp_path, capsys):
    code, err, path = run_cli(tmp_path, capsys, "optimizer:\n  name: adam\n  lrr: 0.01\n")
    assert code == 2
    assert path in err and "optimizer.lrr" in err and "did you mean 'lr'" in err
    assert "Traceback" not in err


def test_wrong_type_says_what_is_allowed(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "training: {epochs: ten}\n")
    assert code == 2
    assert "training.epochs: wrong type: expected an integer ≥ 1, got the text 'ten'" in err


def test_out_of_range_inside_a_layer(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "model: [{affine: {out: 32}}, relu, "
                                             "{dropout: {p: 1.5}}, {affine: {out: 10}}]\n")
    assert code == 2
    assert "model.2.dropout.p: out of range: 1.5 is not ≥ 0 and < 1" in err


def test_misspelt_layer_suggests(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys,
                           "model: [{affine: {out: 32}}, rleu, {affine: {out: 10}}]\n")
    assert code == 2
    assert "model.1: unknown layer 'rleu' (did you mean 'relu'?)" in err


@pytest.mark.parametrize("override, unknown", [
    ("model.0.dense.out=256", "unknown layer 'dense' (did you mean 'affine'? 'dense' is its name "
                              "elsewhere); layers: relu, "),
    ("model.0.afine.out=256", "unknown layer 'afine' (did you mean 'affine'?); layers: relu, "),
])
def test_set_on_a_layer_it_does_not_name_names_the_unknown_layer_as_yaml_does(
        tmp_path, capsys, override, unknown):
    assert main(["--set", override, "--out", str(tmp_path / "run")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"--set {override}: model.0: {unknown}")
    assert not (tmp_path / "run").exists()


def test_the_same_unknown_layer_in_yaml_gets_the_same_words(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "model: [{dense: {out: 32}}, relu, "
                                             "{affine: {out: 10}}]\n")
    assert code == 2
    assert "model.0: unknown layer 'dense' (did you mean 'affine'? 'dense' is its name elsewhere)" \
        in err


def test_set_on_a_layer_of_another_known_kind_says_one_layer_per_item(tmp_path, capsys):
    assert main(["--set", "model.0.conv2d.out=8", "--out", str(tmp_path / "run")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--set model.0.conv2d.out=8: model.0: one layer per list item, got affine and conv2d" \
        in err


def test_output_layer_must_match_classes(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys,
                           "model: [{affine: {out: 32}}, relu, {affine: {out: 7}}]\n")
    assert code == 2
    assert "model.2.affine.out" in err and "10 classes" in err


def test_setting_the_optimizer_does_not_use_is_refused(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "optimizer: {name: adam, momentum: 0.9}\n")
    assert code == 2
    assert "optimizer.momentum: adam does not use 'momentum'" in err


def test_bad_yaml_gives_line_and_column(tmp_path, capsys):
    code, err, path = run_cli(tmp_path, capsys, "data:\n  batch_size: 64\n optimizer: adam\n")
    assert code == 2
    assert f"{path}: line 3, column 2: not valid YAML" in err


def test_duplicate_key_is_refused_with_both_lines(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "training:\n  epochs: 3\n  epochs: 4\n")
    assert code == 2
    assert "line 3" in err and "duplicate key 'epochs' (first given on line 2)" in err


def test_bad_set_value_names_the_override(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "", "--set", "data.batch_size=0")
    assert code == 2
    assert "--set data.batch_size=0: data.batch_size: out of range: 0 is not ≥ 1" in err


@pytest.mark.parametrize("setting", ["schedule.warmup_epochs=1e308",
                                     "schedule.step_epochs=1e308"])
def test_a_schedule_longer_than_any_run_is_refused_before_it_overflows(tmp_path, capsys, setting):
    code, err, _ = run_cli(tmp_path, capsys, "", "--set", setting)
    assert code == 2
    assert f"--set {setting}: {setting.split('=')[0]}: out of range: 1e+308 is not" in err


def test_a_number_too_long_for_python_is_refused_as_config(tmp_path, capsys):
    code, err, path = run_cli(tmp_path, capsys, f"training: {{seed: {'9' * 5000}}}\n")
    assert code == 2
    assert f"{path}: a value YAML cannot read: Exceeds the limit (4300 digits)" in err


def test_set_unknown_key_suggests(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "", "--set", "training.epoch=3")
    assert code == 2
    assert "training.epoch: unknown key 'epoch' (did you mean 'epochs'?)" in err


@pytest.mark.parametrize("config_first", [True, False])
@pytest.mark.parametrize("flag, value", [(["--set", "training.epochs"], "2"),
                                         (["--set=training.epochs"], "2"),
                                         (["--set", "training.epochs="], "2"),
                                         (["--set", "training.seed"], "-2")])
def test_set_with_a_space_instead_of_equals_says_how_to_write_it(tmp_path, capsys, config_first,
                                                                 flag, value):
    # after the config the value is left over; before it, argparse would take it for the config
    path = tmp_path / "exp.yaml"
    path.write_text("", encoding="utf-8")
    words = [*flag, value, "--out", str(tmp_path / "out")]
    assert main([str(path), *words] if config_first else words) == 2
    err = " ".join(capsys.readouterr().err.split())
    key = flag[-1].removeprefix("--set=").removesuffix("=")
    assert f"--set {key} {value}: write --set {key}={value} (one word, with '=')" in err
    assert not (tmp_path / "out").exists()


def test_every_mistake_of_a_config_is_listed_at_once(tmp_path, capsys):
    code, err, path = run_cli(tmp_path, capsys, "data: {batchsize: 64}\n"
                                                "training: {epocs: 3, seed: -1}\n"
                                                "model: [{affine: {out: 0}}, {dropout: {p: 2}},"
                                                " {affine: {out: 10}}]\n"
                                                "optimizer: {name: adam, lr: -1, momentum: 0.9}\n",
                              "--set", "logging.plot=false", "--set", "model.1.dropout.p=3")
    assert code == 2
    for mistake in (f"{path}: data.batchsize: unknown key 'batchsize' (did you mean 'batch_size'?)",
                    f"{path}: training.epocs: unknown key 'epocs' (did you mean 'epochs'?)",
                    f"{path}: training.seed: out of range: -1 is not ≥ 0.",
                    "--set logging.plot=false: logging.plot: unknown key 'plot' (did you mean "
                    "'plots'?)",
                    f"{path}: model.0.affine.out: out of range: 0 is not ≥ 1.",
                    "--set model.1.dropout.p=3: model.1.dropout.p: out of range: 3 is not",
                    f"{path}: optimizer.momentum: adam does not use 'momentum'",
                    f"{path}: optimizer.lr: out of range: -1 is not > 0."):
        assert err.count(mistake) == 1, mistake
    assert not (tmp_path / "out").exists()


def test_set_without_equals_explains_the_form(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "", "--set", "optimizer.lr")
    assert code == 2
    assert "expected KEY.PATH=VALUE" in err


def test_missing_config_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.yaml"), "--quiet"]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_refused_config_does_no_work(tmp_path, capsys):
    code, _, _ = run_cli(tmp_path, capsys, "training: {epochs: -1}\n")
    assert code == 2
    assert not (tmp_path / "out").exists()


def test_saved_config_is_plain_yaml(tmp_path):
    text = C.dump(C.load(CONFIGS / "compare_optimizers.yaml"))
    assert yaml.safe_load(text)["sweep"]["grid"]["optimizer.name"][0] == "sgd"


def test_new_layer_and_optimizer_classes_are_in_configs_without_edits():
    config = C.load(None, ["model.1=tanh", "model.4={leakyrelu: {negative_slope: 0.2}}",
                           "optimizer.name=adamw"])
    assert config["model"][1] == "tanh"
    assert config["model"][4] == {"leakyrelu": {"negative_slope": 0.2}}
    assert config["optimizer"] == {"name": "adamw", "lr": 0.001, "beta1": 0.9, "beta2": 0.999,
                                   "eps": 1e-8, "weight_decay": 0.01}


def test_a_layer_setting_out_of_its_class_range_is_refused_by_the_config(tmp_path, capsys):
    code, err, _ = run_cli(tmp_path, capsys, "model: [{affine: {out: 8}}, "
                                             "{leakyrelu: {negative_slope: 2}}, "
                                             "{affine: {out: 10}}]\n")
    assert code == 2
    assert "model.1.leakyrelu.negative_slope: out of range: 2 is not ≥ 0 and ≤ 1" in err


def test_a_shipped_config_is_found_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the one beside train.py is meant
    out = tmp_path / "run"
    assert main(["configs/quick.yaml", "--out", str(out), "--quiet", "--set", "training.epochs=1",
                 "--set", "data={dataset: synthetic, validation: 100, batch_size: 50,"
                 " classes: 10}"],
                default_config=CONFIGS / "mnist_mlp.yaml") == 0
    assert f"config: {CONFIGS / 'quick.yaml'}" in (out / "log.txt").read_text()


def test_a_missing_config_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["configs/quik.yaml"], default_config=CONFIGS / "mnist_mlp.yaml") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"configs/quik.yaml: no such config file; looked for "
                          f"{tmp_path / 'configs' / 'quik.yaml'} and {CONFIGS / 'quik.yaml'} "
                          "(did you mean 'quick.yaml'?). The shipped configs: ")
