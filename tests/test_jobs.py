"""A run is a job: run_one takes and returns plain data and owns its folder, its log and its
objects; sweeps map it over workers."""
import json

import numpy as np
from test_train_cli import tiny_config

from experiments.build import build_training, synthetic
from experiments.config import load
from experiments.run import run_one


def test_run_one_takes_and_returns_plain_data(tmp_path, capsys):
    config = load(tiny_config(tmp_path))
    summary = run_one(config, str(tmp_path / "run"))
    assert summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 3
    assert capsys.readouterr().out == ""  # console "off": everything is in the run's log.txt
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "epoch 3/3" in log and log.rstrip().endswith(f"--eval {tmp_path / 'run'}")


def test_a_diverged_run_is_a_result_not_an_error(tmp_path):
    config = load(tiny_config(tmp_path), ["optimizer.name=sgd", "optimizer.lr=1e30",
                                          "schedule.name=none"])
    summary = run_one(config, tmp_path / "run")
    assert summary["status"] == "diverged" and "(epoch 1)" in summary["error"]
    assert summary["last_good_epoch"] == 0


def test_the_schedule_owns_the_learning_rate(tmp_path):
    config = load(tiny_config(tmp_path), ["schedule.warmup_epochs=1"])
    rng = np.random.default_rng(0)
    train, _ = synthetic(config["data"]["synthetic"], rng)
    model, schedule, optimizer, steps = build_training(config, train, rng)
    assert steps == 8  # 400 examples in batches of 50
    assert optimizer.lr == schedule(0) == config["optimizer"]["lr"] / steps
