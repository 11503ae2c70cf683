"""Sweeps: one sub-folder per grid combination, per-value settings, a ranked comparison table."""

import errno

import pandas as pd
import yaml

from experiments.cli import main
from experiments.config import load, user_config
from experiments.run import run_one
from experiments.sweep import combinations

SWEEP = """\
data:
  dataset: synthetic
  validation: 100
  batch_size: 50
  train: 400
  test: 100
  features: 8
  classes: 3
model: [{affine: {out: 16}}, relu, {affine: {out: 3}}]
optimizer: {name: sgd, lr: 0.05}
schedule: {name: none}
training: {epochs: 2, seed: 0}
logging: {progress: false, plots: false}
sweep:
  grid:
    optimizer.name: [sgd, adam]
    training.seed: [0, 1]
  with:
    optimizer.name=adam: {optimizer.lr: 0.003}
"""


def write(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_combination_with_its_settings(tmp_path):
    path = write(tmp_path, SWEEP)
    runs = combinations(load(path), user_config(path)[0], str(path))
    assert [label for label, _, _ in runs] == ["optimizer.name=sgd,training.seed=0",
                                               "optimizer.name=sgd,training.seed=1",
                                               "optimizer.name=adam,training.seed=0",
                                               "optimizer.name=adam,training.seed=1"]
    assert [config["optimizer"]["lr"] for _, _, config in runs] == [0.05, 0.05, 0.003, 0.003]
    assert all(config["sweep"] is None for _, _, config in runs)


def test_sweep_runs_and_ranks(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(write(tmp_path, SWEEP)), "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert table["best_val_accuracy"].is_monotonic_decreasing
    assert set(table["optimizer.name"]) == {"sgd", "adam"}
    for folder in table["folder"]:
        assert (out / folder / "metrics.csv").exists()
    sub = yaml.safe_load((out / "optimizer.name=adam,training.seed=1" / "config.yaml").read_text())
    assert sub["optimizer"] == {**sub["optimizer"], "name": "adam", "lr": 0.003}
    assert sub["training"]["seed"] == 1
    assert "sweep done: 4 runs" in capsys.readouterr().out


def test_diverging_run_does_not_stop_the_sweep(tmp_path):
    text = SWEEP.replace("optimizer.name=adam: {optimizer.lr: 0.003}",
                         "optimizer.name=adam: {optimizer.lr: 1e30}")
    out = tmp_path / "out"
    assert main([str(write(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["status"]) == ["finished", "finished", "diverged", "diverged"]


def test_setting_for_a_value_not_in_the_grid_is_refused(tmp_path, capsys):
    text = SWEEP.replace("optimizer.name=adam:", "optimizer.name=adma:")
    assert main([str(write(tmp_path, text)), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "sweep.with: 'optimizer.name=adma' never happens" in err
    assert not (tmp_path / "out").exists()


def test_bad_grid_key_is_refused_before_any_run(tmp_path, capsys):
    text = SWEEP.replace("training.seed: [0, 1]", "training.sed: [0, 1]")
    assert main([str(write(tmp_path, text)), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "sweep combination" in err
    assert "training.sed: unknown key 'sed' (did you mean 'seed'?)" in err


def test_resumed_sweep_skips_finished_runs(tmp_path, capsys):
    out = tmp_path / "out"
    main([str(write(tmp_path, SWEEP)), "--out", str(out), "--quiet"])
    before = (out / "comparison.csv").read_text()
    capsys.readouterr()
    assert main(["--resume", str(out)]) == 0
    assert capsys.readouterr().out.count("already done") == 4
    assert (out / "comparison.csv").read_text() == before


def test_a_failing_run_does_not_stop_the_others_and_is_run_again_by_resume(tmp_path, monkeypatch,
                                                                            capsys):
    runs = []

    def second_run_fills_the_disk(config, folder, *args, **kwargs):
        runs.append(folder)
        if len(runs) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "metrics.csv"))
        return run_one(config, folder, *args, **kwargs)

    monkeypatch.setattr("experiments.run.run_one", second_run_fills_the_disk)
    out = tmp_path / "out"
    assert main([str(write(tmp_path, SWEEP)), "--out", str(out), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "1 of 4 runs failed: optimizer.name=sgd,training.seed=1: No space left" in err
    assert err.endswith(f"python train.py --resume {out}")
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["status"]) == ["finished", "finished", "finished", "failed"]
    assert table["error"].iloc[3] == f"No space left on device: {runs[1] / 'metrics.csv'}"
    monkeypatch.undo()
    assert main(["--resume", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["status"]) == ["finished"] * 4
    assert (out / "log.txt").read_text().count("already done") == 3


def test_ctrl_c_in_a_sweep_names_the_runs_checkpoint_and_resumes_the_sweep(tmp_path, capsys,
                                                                             ctrl_c_in_epoch_3):
    out = tmp_path / "out"
    with ctrl_c_in_epoch_3():
        assert main([str(write(tmp_path, SWEEP)), "--out", str(out), "--quiet",
                     "--set", "training.epochs=3"]) == 130
    err = " ".join(capsys.readouterr().err.split())
    run = out / "optimizer.name=sgd,training.seed=0"
    assert "epoch 2 is the last completed one of sweep run 1/4" in err
    assert f"saved in {run / 'checkpoint.npz'}" in err and (run / "checkpoint.npz").exists()
    assert err.endswith(f"python train.py --resume {out}")
    assert main(["--resume", str(out), "--quiet"]) == 0


def test_ctrl_c_before_a_sweep_runs_first_epoch_keeps_the_finished_runs(tmp_path, capsys,
                                                                         monkeypatch):
    import experiments.run
    real, calls = experiments.run.load_data, []

    def ctrl_c_loading_run_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # in run 2's data loading
        return real(*args, **kwargs)

    monkeypatch.setattr(experiments.run, "load_data", ctrl_c_loading_run_2)
    out = tmp_path / "out"
    assert main([str(write(tmp_path, SWEEP)), "--out", str(out), "--quiet"]) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert "sweep run 2/4 (optimizer.name=sgd,training.seed=1) had not completed an epoch" in err
    assert err.endswith(f"python train.py --resume {out}")
    assert (out / "optimizer.name=sgd,training.seed=0" / "summary.json").exists()

