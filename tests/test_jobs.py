"""A run is a job: run_one takes and returns plain data and owns its folder, its log and its
objects; sweeps map it over workers."""
import json
import os

import numpy as np
import pytest
from test_train_cli import tiny_config

from experiments import memory
from experiments.build import build_training, checked_model
from experiments.cli import main
from experiments.config import ConfigError, dataset, load, user_config
from experiments.run import run_one
from experiments.sweep import combinations
from experiments.workers import BLAS_VARIABLES, cores


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
    train, _ = dataset(config["data"]).load(rng)
    model, schedule, optimizer, steps = build_training(config, train, rng)
    assert steps == 8  # 400 examples in batches of 50
    assert optimizer.lr == schedule(0) == config["optimizer"]["lr"] / steps


# ---- --jobs N: runs in worker processes, files identical to --jobs 1

SWEEP = "sweep: {grid: {optimizer.name: [sgd, adam]}}\n"


def same_files(a, b):
    """Asserts that two run folders hold the same results: every CSV (metrics.csv without its
    seconds column) and the checkpoint's arrays, generator state and history (seconds aside)."""
    def without_seconds(path):
        return [line.rsplit(",", 1)[0] for line in (path / "metrics.csv").read_text().splitlines()]

    assert without_seconds(a) == without_seconds(b)
    for name in ("bias_grads.csv", "steps.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    with np.load(a / "checkpoint.npz") as x, np.load(b / "checkpoint.npz") as y:
        assert x.files == y.files
        for key in x.files:
            if key == "json/history":
                untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(
                    str(z[key]))] for z in (x, y)]
                assert untimed[0] == untimed[1]
            elif key != "extra/wall_seconds":
                assert np.array_equal(x[key], y[key]), key


def test_jobs_2_runs_in_workers_and_gives_the_files_of_jobs_1(tmp_path, monkeypatch):
    for key in BLAS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    config = tiny_config(tmp_path, SWEEP)
    assert main([config, "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert main([config, "--out", str(tmp_path / "two"), "--quiet", "--jobs", "2"]) == 0
    for run in ("optimizer.name=sgd", "optimizer.name=adam"):
        same_files(tmp_path / "one" / run, tmp_path / "two" / run)
        first = (tmp_path / "two" / run / "log.txt").read_text().splitlines()[0]
        threads = max(1, cores() // 2)
        assert first.endswith(f"(OPENBLAS_NUM_THREADS={threads}, OMP_NUM_THREADS={threads}, "
                              f"MKL_NUM_THREADS={threads})")  # each worker's own environment
    assert not any(key in os.environ for key in BLAS_VARIABLES)  # never this process's
    assert f"BLAS threads: {threads} per run" in (tmp_path / "two" / "log.txt").read_text()


def test_a_users_blas_threads_are_kept_and_reported(tmp_path, monkeypatch):
    for key in BLAS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    out = tmp_path / "out"
    assert main([tiny_config(tmp_path, SWEEP), "--out", str(out), "--quiet", "--jobs", "2"]) == 0
    assert ("BLAS threads: OMP_NUM_THREADS=3, from your environment (kept in every worker)"
            in (out / "log.txt").read_text())
    first = (out / "optimizer.name=sgd" / "log.txt").read_text().splitlines()[0]
    assert first.endswith("(OMP_NUM_THREADS=3)")


def test_the_memory_check_counts_the_runs_at_once(tmp_path, monkeypatch):
    path = tiny_config(tmp_path, "sweep: {grid: {training.seed: [1, 2, 3]}}\n")
    config = load(path)
    runs = [(label, each) for label, _, each in combinations(config, user_config(path)[0], path)]
    one = memory.model_bytes(runs[0][1], checked_model(runs[0][1], path))
    monkeypatch.setattr(memory, "available_bytes", lambda: int(2.5 * one))
    memory.check_before_work(runs, path, at_once=2)
    with pytest.raises(ConfigError, match="3 runs at once .* fewer at once"):
        memory.check_before_work(runs, path, at_once=3)


def test_jobs_for_a_config_of_one_run_is_refused(tmp_path, capsys):
    assert main([tiny_config(tmp_path), "--out", str(tmp_path / "run"), "--jobs", "2"]) == 2
    assert "--jobs 2: says where the runs of a sweep run" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
