"""train.py end to end: real MNIST quick run, synthetic runs, determinism, resume, NaN stop,
bias CSV."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import framework as F
from experiments.cli import main

REPO = Path(__file__).resolve().parents[1]

TINY = """\
name: tiny
data:
  dataset: synthetic
  validation: 100
  batch_size: 50
  train: 400
  test: 100
  features: 8
  classes: 3
model: [{affine: {out: 16}}, relu, {dropout: {p: 0.1}}, {affine: {out: 16}}, relu,
        {affine: {out: 3}}]
optimizer: {name: adam, lr: 0.01}
training: {epochs: 3, seed: 1, bias_every: 4}
logging: {progress: false, plots: false}
"""


def tiny_config(tmp_path, extra=""):
    """A synthetic-data config (no files, well under a second per run) written to tmp_path."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY + extra, encoding="utf-8")
    return str(path)


def metrics_without_time(folder):
    """metrics.csv's text with the wall-clock column (the last) cut off: the rest must repeat
    exactly."""
    lines = (Path(folder) / "metrics.csv").read_text().splitlines()
    assert lines[0].endswith(",seconds")
    return [line.rsplit(",", 1)[0] for line in lines]


def test_quick_config_on_real_mnist(mnist_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_MIRRORS", str(mnist_files))
    out = tmp_path / "run"
    code = main([str(REPO / "configs" / "quick.yaml"), "--data-dir", str(tmp_path / "data"),
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "affine3.b  dY (128, 10) -> db (10,) = sum of 128 rows" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.8 and summary["parameters"] == 669_706
    assert ({"config.yaml", "metrics.csv", "bias_grads.csv", "checkpoint.npz", "log.txt"}
            <= {p.name for p in out.iterdir()})


def test_synthetic_run_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss",
                                     "val_acc", "test_loss", "test_acc", "seconds"]
    assert list(metrics["epoch"]) == [1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and 0 <= summary["test_accuracy"] <= 1
    assert F.load(out / "checkpoint.npz")["epoch"] == 3


def test_set_override_reaches_the_run(tmp_path):
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet", "--set", "training.epochs=1",
                 "--set", "schedule.name=none"]) == 0
    assert len(pd.read_csv(out / "metrics.csv")) == 1
    assert "epochs: 1" in (out / "config.yaml").read_text()
    assert pd.read_csv(out / "metrics.csv")["lr"].iloc[0] == 0.01


def test_same_seed_same_metrics_and_bias_log(tmp_path):
    config = tiny_config(tmp_path)
    for name in ("a", "b"):
        assert main([config, "--out", str(tmp_path / name), "--quiet"]) == 0
    assert metrics_without_time(tmp_path / "a") == metrics_without_time(tmp_path / "b")
    assert ((tmp_path / "a" / "bias_grads.csv").read_bytes()
            == (tmp_path / "b" / "bias_grads.csv").read_bytes())


def test_other_seed_other_metrics(tmp_path):
    config = tiny_config(tmp_path)
    main([config, "--out", str(tmp_path / "a"), "--quiet"])
    main([config, "--out", str(tmp_path / "b"), "--quiet", "--set", "training.seed=2"])
    assert metrics_without_time(tmp_path / "a") != metrics_without_time(tmp_path / "b")


def test_a_run_cut_short_by_max_steps_says_so(tmp_path, capsys):
    out = tmp_path / "run"  # tiny: 300 training examples, batches of 50, so 6 steps an epoch
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet",
                 "--set", "training.max_steps=8"]) == 0
    status = "stopped at step 8 (training.max_steps)"
    assert json.loads((out / "summary.json").read_text())["status"] == status
    assert status in capsys.readouterr().out
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 2  # epochs 1 and 2


def test_max_steps_that_the_planned_epochs_reach_anyway_is_a_finished_run(tmp_path):
    out = tmp_path / "run"  # 3 epochs of 6 steps: 18 in all
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet",
                 "--set", "training.max_steps=18"]) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


BATCHNORM_LAST_ONE = ("--set", "model=[{affine: {out: 16}}, batchnorm, relu, {affine: {out: 3}}]",
                      "--set", "data.subset=251")  # batches of 50: the last of each epoch is 1


def test_batchnorm_and_a_last_batch_of_one_are_refused_before_any_folder_or_data(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("experiments.run.load_data", lambda *args, **kwargs: pytest.fail("data"))
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), *BATCHNORM_LAST_ONE, "--out", str(out), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("batchnorm1: training takes each channel's variance over the batch, which needs at "
            "least 2 values per channel; a batch of 1 example of shape (16,) has 1. 251 training "
            "examples in batches of 50 leave a last batch of 1 each epoch: set data.drop_last: "
            "true to leave it out, or use a data.batch_size that leaves a larger one or none, "
            "such as 49.") in err
    assert not out.exists()


def test_drop_last_plans_the_steps_schedule_and_max_steps_of_full_batches(tmp_path):
    out = tmp_path / "run"  # 251 examples in batches of 50: 5 full batches an epoch, 15 in all
    assert main([tiny_config(tmp_path), *BATCHNORM_LAST_ONE, "--set", "data.drop_last=true",
                 "--set", "training.max_steps=15", "--out", str(out), "--quiet"]) == 0
    assert list(pd.read_csv(out / "metrics.csv")["step"]) == [5, 10, 15]
    steps = pd.read_csv(out / "steps.csv")
    assert list(steps["step"]) == list(range(1, 16))
    assert steps["lr"].iloc[-1] == 0 < steps["lr"].iloc[-2]  # the cosine ends on the last step
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_ctrl_c_then_resume_equals_uninterrupted_run(tmp_path, capsys, ctrl_c_in_epoch_3):
    config = tiny_config(tmp_path)
    assert main([config, "--out", str(tmp_path / "straight"), "--quiet"]) == 0
    interrupted = tmp_path / "interrupted"
    with ctrl_c_in_epoch_3():
        assert main([config, "--out", str(interrupted), "--quiet"]) == 130
    assert f"--resume {interrupted}" in " ".join(capsys.readouterr().err.split())
    assert F.load(interrupted / "checkpoint.npz")["epoch"] == 2

    assert main(["--resume", str(interrupted), "--quiet"]) == 0
    assert len(metrics_without_time(interrupted)) == 4
    assert metrics_without_time(interrupted) == metrics_without_time(tmp_path / "straight")
    assert ((interrupted / "bias_grads.csv").read_bytes()
            == (tmp_path / "straight" / "bias_grads.csv").read_bytes())


@pytest.mark.parametrize("where", ["Evaluate", "StepsCSV", "MetricsCSV"])
def test_ctrl_c_in_an_epochs_end_before_its_checkpoint_saves_the_epoch_before(tmp_path, capsys,
                                                                           monkeypatch, where):
    # The epoch's record is in the history once its steps are done, but its test scores and its
    # rows come after: an epoch saved without them would be resumed after, never completed.
    import experiments.run
    owner = F if where == "Evaluate" else experiments.run
    cls = getattr(owner, where)
    real = cls.on_epoch_end

    def ctrl_c_after_epoch_2s_part(self, state):
        real(self, state)
        if state.epoch == 2:
            raise KeyboardInterrupt

    config = tiny_config(tmp_path)
    assert main([config, "--out", str(tmp_path / "straight"), "--quiet"]) == 0
    monkeypatch.setattr(cls, "on_epoch_end", ctrl_c_after_epoch_2s_part)
    out = tmp_path / "interrupted"
    assert main([config, "--out", str(out), "--quiet"]) == 130
    monkeypatch.undo()
    assert "Epoch 1 is the last completed one" in " ".join(capsys.readouterr().err.split())
    assert F.load(out / "checkpoint.npz")["epoch"] == 1
    assert main(["--resume", str(out), "--quiet"]) == 0
    assert metrics_without_time(out) == metrics_without_time(tmp_path / "straight")
    for name in ("steps.csv", "bias_grads.csv"):
        assert (out / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name


def test_ctrl_c_while_best_npz_is_written_still_leaves_it_written(tmp_path, capsys, monkeypatch):
    # A resume takes the best accuracy from the history: a best.npz left unwritten after Ctrl-C
    # would never be written again, and --eval would evaluate an older epoch as the best.
    real, hit = F.Checkpoint.save, []

    def ctrl_c_in_epoch_2s_best_save(self, path, keep=True):
        if not keep and self.epochs_done() == 2 and not hit:
            hit.append(path)
            raise KeyboardInterrupt
        real(self, path, keep)

    config = tiny_config(tmp_path)
    assert main([config, "--out", str(tmp_path / "straight"), "--quiet"]) == 0
    monkeypatch.setattr(F.Checkpoint, "save", ctrl_c_in_epoch_2s_best_save)
    out = tmp_path / "interrupted"
    assert main([config, "--out", str(out), "--quiet"]) == 130
    monkeypatch.undo()
    assert hit and F.load(out / "best.npz")["epoch"] == F.load(out / "checkpoint.npz")["epoch"] == 2
    assert main(["--resume", str(out), "--quiet"]) == 0
    with np.load(out / "best.npz") as x, np.load(tmp_path / "straight" / "best.npz") as y:
        for key in x.files:
            if key.startswith(("model/", "optimizer/")):
                assert np.array_equal(x[key], y[key]), key


def test_interrupt_during_the_epoch_save_still_leaves_that_epoch_saved(tmp_path, monkeypatch):
    saved = F.Checkpoint.save

    def ctrl_c_while_saving_epoch_2(self, path, keep=True):
        if self.epochs_done() == 2 and self.saved_epoch == 1:
            self.saved_epoch = None  # as if the signal arrived before the rename
            raise KeyboardInterrupt
        saved(self, path, keep)

    monkeypatch.setattr(F.Checkpoint, "save", ctrl_c_while_saving_epoch_2)
    assert main([tiny_config(tmp_path), "--out", str(tmp_path / "run"), "--quiet"]) == 130
    assert F.load(tmp_path / "run" / "checkpoint.npz")["epoch"] == 2


def test_resume_needs_a_run_folder(tmp_path, capsys):
    assert main(["--resume", str(tmp_path), "--quiet"]) == 2
    assert "no config.yaml there" in capsys.readouterr().err


def test_out_folder_holding_a_run_is_refused(tmp_path, capsys):
    config = tiny_config(tmp_path)
    main([config, "--out", str(tmp_path / "run"), "--quiet", "--set", "training.epochs=1"])
    assert main([config, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "already holds a run" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("override, message", [
    ("model.11.maxpool2d.kernel=8",
     "model.11.maxpool2d: MaxPool2D: an input of 7x7 is smaller than the 8x8 kernel"),
    ("model.8=flatten",
     "model.11.maxpool2d: MaxPool2D: expects images (C, H, W), got examples of shape (3136,)"),
])
def test_a_layer_that_does_not_fit_its_input_is_refused_before_any_folder(tmp_path, capsys,
                                                                          override, message):
    out = tmp_path / "run"
    config = str(REPO / "configs" / "mnist_cnn.yaml")
    assert main([config, "--set", override, "--out", str(out), "--quiet"]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not out.exists()


def test_a_cnn_too_large_for_memory_is_refused_before_any_folder(tmp_path, capsys):
    # 20,000 channels of 28x28 for 1000 images: hundreds of GB of activations. The first,
    # rough estimate (every layer with an `out` counted as an affine one) sees under 2 GB;
    # the model's own shapes give the real figure.
    out = tmp_path / "run"
    config = str(REPO / "configs" / "mnist_cnn.yaml")
    assert main([config, "--set", "model.0.conv2d.out=20000", "--set", "data.batch_size=1000",
                 "--out", str(out), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    needed = float(re.search(r"needs about ([0-9.]+) GB", err).group(1))
    assert needed > 500 and not out.exists()


def test_overflow_stops_with_step_and_layer_and_keeps_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    # lr multiplied by 1e30 after epoch 1: epoch 1 trains, epoch 2 overflows.
    code = main([tiny_config(tmp_path), "--out", str(out), "--quiet", "--set", "optimizer.name=sgd",
                 "--set", "optimizer.lr=0.1",
                 "--set", "schedule={name: step, step_epochs: 1, gamma: 1e30}"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 3
    assert re.search(r"step \d+ \(epoch 2\): loss \S+; "
                     r"first non-finite gradient in affine\d\.[Wb]", err)
    assert F.load(out / "checkpoint.npz")["epoch"] == 1
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"


def test_bias_csv_checks_hold(tmp_path):
    out = tmp_path / "run"
    main([tiny_config(tmp_path), "--out", str(out), "--quiet"])
    bias = pd.read_csv(out / "bias_grads.csv")
    assert set(bias["layer"]) == {"affine1.b", "affine2.b", "affine3.b"}
    # 6 steps per epoch: starts 1, 7, 13; every 4
    assert sorted(set(bias["step"])) == [1, 4, 7, 8, 12, 13, 16]
    assert (bias["sum_check"] < 1e-6).all() and (bias["ones_check"] < 1e-6).all()
    assert (bias["numeric_rel_err"] < 1e-5).all()
    output = bias[bias["layer"] == "affine3.b"]
    assert output["db_sum"].abs().max() < 1e-6 and output["identity_check"].max() < 1e-6
    assert bias.loc[bias["layer"] != "affine3.b", "db_sum"].isna().all()


def test_bias_lines_in_the_log(tmp_path, capsys):
    main([tiny_config(tmp_path), "--out", str(tmp_path / "run"), "--set", "training.epochs=1"])
    printed = capsys.readouterr().out
    assert "step 1  affine1.b  dY (50, 16) -> db (16,) = sum of 50 rows" in printed
    assert "Σ_k db_k" in printed and "pushed most" in printed
    assert "Why: python train.py --explain-bias" in printed
    bias_lines = [line for line in printed.splitlines() if "step " in line or line.startswith("  ")]
    assert bias_lines and max(len(line) for line in bias_lines) <= 100


def test_bias_lines_after_the_first_step_are_one_line_a_step(tmp_path, capsys):
    main([tiny_config(tmp_path), "--out", str(tmp_path / "run"), "--set", "training.epochs=3",
          "--set", "training.bias_every=0"])
    later = [line for line in capsys.readouterr().out.splitlines() if "biases:" in line]
    assert [line.split()[1] for line in later] == ["7", "13"]  # epochs 2 and 3 start at steps 7, 13
    assert "largest |db|" in later[0]


@pytest.mark.parametrize("model, training", [
    ("[{affine: {out: 16}}, relu, {affine: {out: 3}}]", "running means over the epoch;"),
    ("[{affine: {out: 16}}, relu, {dropout: {p: 0.1}}, {affine: {out: 3}}]",
     "running means over the epoch, dropout on;"),
    ("[{affine: {out: 16}}, batchnorm, relu, {dropout: {p: 0}}, {affine: {out: 3}}]",
     "running means over the epoch, batchnorm on batch statistics;"),
])
def test_the_epoch_caption_names_only_what_the_model_has(tmp_path, capsys, model, training):
    main([tiny_config(tmp_path), "--out", str(tmp_path / "run"), "--set", "training.epochs=1",
          "--set", f"model={model}"])
    caption = next(line for line in capsys.readouterr().out.splitlines() if "(train: " in line)
    assert caption == f"      (train: {training} val and test: the model at its end)"


def test_early_stopping_on_validation(tmp_path):
    out = tmp_path / "run"
    # An lr of 1e-12 leaves validation accuracy where it is: stop after 1 + patience epochs.
    main([tiny_config(tmp_path), "--out", str(out), "--quiet", "--set", "optimizer.lr=1e-12",
          "--set", "schedule.name=none", "--set", "training.epochs=10",
          "--set", "training.patience=2"])
    assert len(pd.read_csv(out / "metrics.csv")) == 3
    assert json.loads((out / "summary.json").read_text())["status"] == "stopped early"


def test_explain_bias_shows_the_sum_from_the_real_layer(capsys):
    assert main(["--explain-bias"]) == 0
    printed = capsys.readouterr().out
    assert "dY[0] + dY[1] + dY[2] = [0.1, -0.3] + [0.2, 0.1] + [-0.4, 0.5] = [-0.1, 0.3]" in printed
    assert "db from Affine.backward (dY.sum(axis=0)) = [-0.1, 0.3]" in printed
    # and for a conv bias: 2 examples x 9 positions add up, 0.6 + 0.4, as Conv2D.backward computes
    assert "db = dY.sum(axis=(0, 2, 3)) = [1];  Conv2D.backward gave [1]." in printed
    # and over 2 processes: each backward sums its own rows, Allreduce adds the partial sums
    assert "process 0: db_0 = dY[0] + dY[1] = [0.3, -0.2]" in printed
    assert "process 1: db_1 = dY[2]         = [-0.4, 0.5]" in printed
    assert "Allreduce(SUM): db_0 + db_1      = [-0.1, 0.3]" in printed


def test_help_lists_options_and_exit_codes(capsys):
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    assert "--resume DIR" in printed and "exit codes" in printed and "--explain-bias" in printed


@pytest.mark.parametrize("coretype", [None, "Haswell"])
def test_train_py_leaves_the_users_openblas_coretype_alone(tmp_path, coretype):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    # what train.py imports before main() runs, then numpy: what a run sees.
    probe = ("import os, experiments.cli, numpy, framework; "
             "print(os.environ.get('OPENBLAS_CORETYPE'))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(coretype)


def test_train_py_from_another_folder(tmp_path):
    config = tiny_config(tmp_path)
    done = subprocess.run([sys.executable, str(REPO / "train.py"), config, "--out", "run",
                           "--quiet", "--set", "training.epochs=1"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    first_line = (tmp_path / "run" / "log.txt").read_text().splitlines()[0]
    assert first_line.startswith(f"numpy {np.__version__}") and "BLAS" in first_line
    bad = subprocess.run([sys.executable, str(REPO / "train.py"), "--set", "optimizer.nam=adam"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "did you mean 'name'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_tanh_leaky_relu_and_adamw_train_from_the_command_line(tmp_path):
    code = main([tiny_config(tmp_path), "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "model=[{affine: {out: 16}}, tanh, {affine: {out: 8}}, leakyrelu, "
                          "{affine: {out: 3}}]",
                 "--set", "optimizer.name=adamw"])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["test_accuracy"] > 0.5


CNN = """\
name: tiny_cnn
data: {dataset: mnist, validation: 100, subset: 300, batch_size: 50}
model: [{conv2d: {out: 4, kernel: 3, pad: 1}}, batchnorm, relu, {maxpool2d: {kernel: 2}}, flatten,
        {affine: {out: 16}}, relu, {dropout: {p: 0.2}}, {affine: {out: 10}}]
training: {epochs: 3, seed: 2}
logging: {progress: false, plots: false}
"""


def test_a_cnn_run_resumed_after_ctrl_c_equals_the_uninterrupted_one(mnist_files, tmp_path,
                                                                     monkeypatch,
                                                                     ctrl_c_in_epoch_3):
    monkeypatch.setenv("MNIST_MIRRORS", str(mnist_files))
    config = tmp_path / "cnn.yaml"
    config.write_text(CNN, encoding="utf-8")
    common = [str(config), "--data-dir", str(tmp_path / "data"), "--quiet"]
    assert main([*common, "--out", str(tmp_path / "straight")]) == 0
    with ctrl_c_in_epoch_3():
        assert main([*common, "--out", str(tmp_path / "cut")]) == 130
    resume = ["--resume", str(tmp_path / "cut"), "--data-dir", str(tmp_path / "data"), "--quiet"]
    assert main(resume) == 0
    assert metrics_without_time(tmp_path / "cut") == metrics_without_time(tmp_path / "straight")
    for name in ("bias_grads.csv", "steps.csv"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes()
    a = F.load(tmp_path / "cut" / "checkpoint.npz")
    b = F.load(tmp_path / "straight" / "checkpoint.npz")
    for key in a["model"]:  # BatchNorm's running statistics included
        np.testing.assert_array_equal(a["model"][key], b["model"][key], err_msg=key)
    assert "batchnorm1.running_var" in a["model"]


def test_ctrl_c_after_training_says_what_may_be_unwritten_and_how_to_write_it(tmp_path):
    from experiments.cli import interrupted
    from experiments.run import Interrupted
    said = interrupted(Interrupted(tmp_path, 3, complete=True, unwritten="the plots"))
    assert said == (f"Interrupted after training was complete (all 3 epochs are saved in "
                    f"{tmp_path / 'checkpoint.npz'}); the plots may not have been written. Write "
                    f"them with:\n    python train.py --resume {tmp_path}")


def test_ctrl_c_while_the_plots_are_drawn_leaves_a_run_that_resume_completes(tmp_path, capsys,
                                                                            monkeypatch):
    pytest.importorskip("matplotlib")
    import experiments.run

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments.run, "plot_run", ctrl_c)
    out = tmp_path / "run"
    config = tiny_config(tmp_path)
    assert main([config, "--out", str(out), "--quiet", "--set", "logging.plots=true"]) == 130
    monkeypatch.undo()
    assert "summary.json and the plots may not have been written" in " ".join(
        capsys.readouterr().err.split())
    assert not (out / "summary.json").exists()  # so that a sweep's --resume does not pass it by
    assert main(["--resume", str(out), "--quiet"]) == 0
    assert (out / "summary.json").exists() and (out / "curves.png").exists()


def test_ctrl_c_before_the_first_checkpoint_does_not_offer_a_resume(tmp_path, capsys,
                                                                   monkeypatch):
    def ctrl_c(self, state):
        raise KeyboardInterrupt

    monkeypatch.setattr(F.Checkpoint, "on_fit_start", ctrl_c)
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert f"(removed {out}: the run never started)" in err
    assert "Interrupted before the run had saved anything: there is nothing to continue" in err
    assert "--resume" not in err and not out.exists()
