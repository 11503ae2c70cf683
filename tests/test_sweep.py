"""Sweeps: one sub-folder per grid combination, per-value settings, a ranked comparison table."""

import errno

import numpy as np
import pandas as pd
import pytest
import yaml

from experiments.cli import main
from experiments.config import load, user_config
from experiments.run import run_one
from experiments.sweep import combinations, random_draws

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


def test_every_mistake_of_a_grid_is_listed_once(tmp_path, capsys):
    text = SWEEP.replace("training.seed: [0, 1]",
                         "training.epochs: [1, 0]\n    optimizer.lr: [0.1, -1]")
    assert main([str(write(tmp_path, text)), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    for mistake in ("training.epochs: out of range: 0 is not ≥ 1.",
                    "optimizer.lr: out of range: -1 is not > 0."):
        assert err.count(mistake) == 1, mistake  # not once per combination that makes it
    assert not (tmp_path / "out").exists()


def test_a_grid_given_by_set_is_named_in_its_mistakes(tmp_path, capsys):
    path = str(write(tmp_path, SWEEP))
    assert main([path, "--set", "sweep.with={}", "--set", "sweep.grid={optimizer.lr: [-1]}",
                 "--set", "sweep.jobs=2", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("--set sweep.grid={optimizer.lr: [-1]}: sweep combination optimizer.lr=-1: "
            "optimizer.lr: out of range: -1 is not > 0.") in err
    assert main([path, "--set", "sweep.grid.training.epochs=[1, 2]", "--quiet"]) == 2
    assert ("a grid key is one key path: sweep.grid={training.KEY: [...]}"
            in " ".join(capsys.readouterr().err.split()))


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



# ---- sweep.random: seeded draws, written before any run, run again by --resume

RANDOM = SWEEP.split("sweep:")[0] + """\
sweep:
  random:
    runs: 3
    seed: 7
    space:
      optimizer.lr: {log_uniform: [1.0e-4, 1.0e-1]}
      optimizer.momentum: {uniform: [0.5, 0.9]}
      optimizer.name: {choice: [sgd, momentum]}
  with:
    optimizer.name=sgd: {optimizer.momentum: null}
"""


def test_random_draws_are_seeded_and_within_their_ranges(tmp_path):
    path = write(tmp_path, RANDOM)
    config = load(path)
    first = random_draws(config["sweep"]["random"])
    assert first == random_draws(config["sweep"]["random"])  # the seed fixes them
    other = random_draws({**config["sweep"]["random"], "seed": 8})
    assert [d["optimizer.lr"] for d in other] != [d["optimizer.lr"] for d in first]
    many = random_draws({**config["sweep"]["random"], "runs": 400})
    lrs = np.array([d["optimizer.lr"] for d in many])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1
    assert 0.3 < np.mean(np.log10(lrs) < -2.5) < 0.7  # log-uniform: half below the middle decade
    assert all(0.5 <= d["optimizer.momentum"] <= 0.9 for d in many)
    assert {d["optimizer.name"] for d in many} == {"sgd", "momentum"}
    runs = combinations(config, user_config(path)[0], str(path))
    assert [c["optimizer"]["lr"] for _, _, c in runs] == [d["optimizer.lr"] for d in first]
    assert all(c["optimizer"].get("momentum") is None for _, d, c in runs
               if d["optimizer.name"] == "sgd")  # `with:` goes with a choice


def test_resume_runs_the_draws_written_before_any_run(tmp_path, ctrl_c_in_epoch_3):
    out = tmp_path / "out"
    with ctrl_c_in_epoch_3():
        assert main([str(write(tmp_path, RANDOM)), "--out", str(out), "--quiet",
                     "--set", "training.epochs=3"]) == 130
    saved = yaml.safe_load((out / "draws.yaml").read_text())
    assert len(saved["draws"]) == 3 and not (out / "comparison.csv").exists()
    saved["draws"][2]["optimizer.lr"] = 0.0123  # another value it could have drawn
    (out / "draws.yaml").write_text(yaml.safe_dump(saved))
    assert main(["--resume", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert sorted(table["optimizer.lr"]) == sorted(d["optimizer.lr"] for d in saved["draws"])


def test_resume_refuses_draws_of_another_random_search(tmp_path, capsys, ctrl_c_in_epoch_3):
    out = tmp_path / "out"
    with ctrl_c_in_epoch_3():
        main([str(write(tmp_path, RANDOM)), "--out", str(out), "--quiet",
              "--set", "training.epochs=3"])
    capsys.readouterr()
    assert main(["--resume", str(out), "--quiet", "--set", "sweep.random.seed=8"]) == 2
    assert "draws were made by another sweep.random" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("sweep, message", [
    ("{grid: {training.seed: [1]}, random: {runs: 2, space: {training.seed: {choice: [1, 2]}}}}",
     "sweep.grid: a sweep needs either `grid:`"),
    ("{random: {runs: 2, space: {optimizer.lr: {log_uniform: [0, 1]}}}}",
     "sweep.random.space.optimizer.lr.log_uniform: out of range: 0 is not > 0"),
    ("{random: {runs: 2, space: {optimizer.lr: {uniform: [1, 1]}}}}",
     "expected low < high, got [1, 1]"),
    ("{random: {space: {optimizer.lr: {uniform: [0, 1]}}}}", "sweep.random.runs: missing"),
    ("{random: {runs: 2, space: {optimizer.lr: {normal: [0, 1]}}}}",
     "expected one of {uniform: [low, high]}"),
])
def test_a_bad_random_search_is_refused_before_any_run(tmp_path, capsys, sweep, message):
    assert main([str(write(tmp_path, SWEEP)), "--out", str(tmp_path / "out"),
                 "--set", f"sweep={sweep}"]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()


def test_the_console_has_a_line_per_run_and_the_table_the_runs_logs_the_rest(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(write(tmp_path, SWEEP)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("done ")]
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    for run in ("optimizer.name=sgd,training.seed=0", "optimizer.name=adam,training.seed=1"):
        line = next(line for line in lines if line.endswith(str(out / run)))
        assert "test " in line and "best val " in line
        log = (out / run / "log.txt").read_text()
        assert "total parameters" in log and "db = dY summed" in log and "epoch 2/2" in log
    for detail in ("total parameters", "db = dY summed", "epoch 1/2"):  # a run's, in its log
        assert detail not in printed
    assert printed.count(" rank ") == 1 and "sweep done: 4 runs, best optimizer=" in printed


def test_ctrl_c_between_runs_names_the_runs_not_started(tmp_path):
    from experiments.cli import interrupted
    from experiments.run import Interrupted
    said = interrupted(Interrupted(tmp_path, None, resume=tmp_path, done=2,
                                   waiting=["3/4 (training.seed=3)", "4/4 (training.seed=4)"]))
    assert said.startswith("Interrupted: 2 runs of the sweep had not started (3/4 "
                           "(training.seed=3), 4/4 (training.seed=4)); the 2 others are done.")
    assert said.endswith(f"python train.py --resume {tmp_path}")
    none = interrupted(Interrupted(tmp_path, None, resume=tmp_path, waiting=["1/1 (a=1)"]))
    assert none.startswith("Interrupted: 1 run of the sweep had not started (1/1 (a=1)); none "
                           "had finished.")  # not "the others are done": there are none
