"""A run is a job: run_one takes and returns plain data and owns its folder, its log and its
objects; sweeps map it over workers."""
import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_train_cli import tiny_config

import experiments.run
import framework as F
from experiments import memory
from experiments.build import build_training, checked_model
from experiments.build import load_data as build_load_data
from experiments.cli import main
from experiments.config import ConfigError, dataset, load, user_config
from experiments.folder import alive, lock
from experiments.run import run_one
from experiments.sweep import combinations
from experiments.workers import BLAS_VARIABLES, cores

REPO = Path(__file__).resolve().parents[1]


def test_run_one_takes_and_returns_plain_data(tmp_path, capsys):
    config = load(tiny_config(tmp_path))
    summary = run_one(config, str(tmp_path / "run"))
    assert summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 3
    assert capsys.readouterr().out == ""  # console "off": everything is in the run's log.txt
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "epoch 3/3" in log and log.rstrip().endswith(f"--eval {tmp_path / 'run'}")


def test_a_runs_data_is_freed_when_it_returns_without_the_cycle_collector(tmp_path, monkeypatch):
    # A worker takes run after run: data a run leaves in reference cycles (an exception whose
    # traceback holds the run's frames) lives on beside the next run's, doubling the worker's
    # memory, until Python's cycle collector happens to run. matplotlib's parsers leave such
    # cycles behind; the plots were once drawn from within the frame that held the data.
    pytest.importorskip("matplotlib")
    config = load(tiny_config(tmp_path))
    config["logging"]["plots"] = True
    loaded = []

    def load_data(*args, **kwargs):
        data = build_load_data(*args, **kwargs)
        loaded.append(weakref.ref(data.train[0]))
        return data

    monkeypatch.setattr(experiments.run, "load_data", load_data)
    gc.collect()
    gc.disable()
    try:
        assert run_one(config, str(tmp_path / "run"))["status"] == "finished"
        assert (tmp_path / "run" / "bias_sum.png").exists()  # math text parsed, cycles left
        assert loaded and loaded[0]() is None
    finally:
        gc.enable()


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
    # three runs on two workers: one worker takes a run after another
    config = tiny_config(tmp_path, "sweep: {grid: {optimizer.name: [sgd, adam, momentum]}}\n")
    assert main([config, "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert main([config, "--out", str(tmp_path / "two"), "--quiet", "--jobs", "2"]) == 0
    for run in ("optimizer.name=sgd", "optimizer.name=adam", "optimizer.name=momentum"):
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


def test_the_memory_check_counts_the_processes_of_one_run_on_this_machine(tmp_path, monkeypatch):
    path = tiny_config(tmp_path)
    config = load(path)
    model = checked_model(config, path)
    alone, halves = memory.model_bytes(config, model), memory.model_bytes(config, model, 2)
    assert halves < alone  # each process makes the activations of half a batch
    monkeypatch.setattr(memory, "available_bytes", lambda: alone)  # enough for one process
    memory.check_before_work([(None, config)], path)
    with pytest.raises(ConfigError, match=r"this config in 2 processes on this machine \(each "
                                          r"holds the whole data set\).* fewer processes"):
        memory.check_before_work([(None, config)], path, processes=2)


def test_jobs_for_a_config_of_one_run_is_refused(tmp_path, capsys):
    assert main([tiny_config(tmp_path), "--out", str(tmp_path / "run"), "--jobs", "2"]) == 2
    assert "--jobs 2: says where the runs of a sweep run" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---- faults: Ctrl-C and a killed worker in the middle of a parallel sweep, then --resume

LONGER = ["--set", "data.train=1100", "--set", "training.epochs=100",
          "--set", "training.bias_every=0"]  # 20 steps an epoch: long enough to stop mid-sweep
# (a test process starved for a second on a loaded machine must still find the runs going)
RUNS = ("optimizer.name=sgd", "optimizer.name=adam")
HANG_GUARD = 120  # seconds: only against hangs


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The sweep's folders, run straight through with --jobs 1 in this process."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    config = tiny_config(folder, SWEEP)
    assert main([config, "--out", str(folder / "sweep"), "--quiet", *LONGER]) == 0
    return config, folder / "sweep"


def sweep_in_a_subprocess(config, out):
    """`train.py CONFIG --out OUT --jobs 2` started in a process of its own, which takes Ctrl-C
    (a shell may start a background job with SIGINT ignored, and children inherit that)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), config, "--out", str(out),
                             "--quiet", "--jobs", "2", *LONGER], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_epoch(run, epoch, process):
    """Waits until `run` has checkpointed `epoch` (its checkpoint is written atomically)."""
    deadline = time.monotonic() + HANG_GUARD
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        try:
            if F.load(run / "checkpoint.npz")["epoch"] >= epoch:
                return
        except (FileNotFoundError, F.CheckpointError):
            pass
        time.sleep(0.05)


def test_ctrl_c_stops_every_worker_says_so_once_and_resume_ends_as_uninterrupted(tmp_path,
                                                                                uninterrupted):
    config, straight = uninterrupted
    out = tmp_path / "sweep"
    sweep = sweep_in_a_subprocess(config, out)
    for run in RUNS:
        wait_for_epoch(out / run, 2, sweep)
    sweep.send_signal(signal.SIGINT)
    _, err = sweep.communicate(timeout=HANG_GUARD)
    assert sweep.returncode == 130, err
    assert err.count("Interrupted") == 1 and "Traceback" not in err
    assert " ".join(err.split()).endswith(f"python train.py --resume {out}")
    # stopped mid-run (the other may have finished already: its worker may have started first)
    assert not all((out / run / "summary.json").exists() for run in RUNS)
    assert main(["--resume", str(out), "--quiet"]) == 0  # in parallel again: jobs 2 was kept
    for run in RUNS:
        same_files(out / run, straight / run)


def test_a_killed_worker_fails_its_run_only_and_resume_ends_as_uninterrupted(tmp_path,
                                                                            uninterrupted):
    config, straight = uninterrupted
    out = tmp_path / "sweep"
    sweep = sweep_in_a_subprocess(config, out)
    wait_for_epoch(out / RUNS[0], 2, sweep)
    worker = int((out / RUNS[0] / ".lock").read_text())  # the process that holds the run
    assert worker != sweep.pid
    os.kill(worker, signal.SIGKILL)
    _, err = sweep.communicate(timeout=HANG_GUARD)
    assert sweep.returncode == 2, err
    err = " ".join(err.split())
    assert f"1 of 2 runs failed: {RUNS[0]}: its worker process died (killed" in err
    table = pd.read_csv(out / "comparison.csv").set_index("folder")
    assert table.loc[RUNS[0], "status"] == "failed" and table.loc[RUNS[1], "status"] == "finished"
    assert main(["--resume", str(out), "--quiet"]) == 0
    for run in RUNS:
        same_files(out / run, straight / run)


def test_a_sweep_killed_outright_leaves_no_run_training_on(tmp_path, uninterrupted):
    config, straight = uninterrupted
    out = tmp_path / "sweep"
    sweep = sweep_in_a_subprocess(config, out)
    for run in RUNS:
        wait_for_epoch(out / run, 1, sweep)
    workers = [int((out / run / ".lock").read_text()) for run in RUNS]
    sweep.kill()
    sweep.communicate(timeout=HANG_GUARD)
    deadline = time.monotonic() + HANG_GUARD
    while any(alive(pid) for pid in workers):  # each stops at its next step, saving
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert main(["--resume", str(out), "--quiet"]) == 0
    for run in RUNS:
        same_files(out / run, straight / run)


def test_a_run_refused_by_the_lock_leaves_the_winners_folder_alone(tmp_path, monkeypatch, capsys):
    out, real = tmp_path / "run", experiments.run.claim_run_folder
    held = []

    def another_writer_first(folder, resume):  # it makes and locks the folder just before us
        folder.mkdir()
        held.append(lock(folder))
        return real(folder, resume)

    monkeypatch.setattr(experiments.run, "claim_run_folder", another_writer_first)
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 2
    assert f"process {os.getpid()}" in capsys.readouterr().err
    assert out.is_dir() and (out / ".lock").exists()  # not removed as 'the run never started'
    held[0].close()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(experiments.run, "load_data", no_data)
    with pytest.raises(MemoryError):
        run_one(load(tiny_config(tmp_path)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_worker_watches_the_sweep_that_started_it_not_whoever_is_its_parent_later(monkeypatch):
    # A sweep killed while a worker bootstraps: the worker's initializer then reads getppid() ==
    # 1 and would wait for its parent to stop being 1, forever. The sweep names itself instead.
    from experiments import workers
    seen = {}

    class Pool:
        def __init__(self, n, mp_context, initializer, initargs):
            seen["initargs"] = initargs

        def submit(self, fn, job):
            return None

        def shutdown(self, wait):
            pass

    monkeypatch.setattr(workers, "ProcessPoolExecutor", Pool)
    workers.Processes(1, 3).submit(print, {})
    assert seen["initargs"] == (3, os.getpid())


def test_a_worker_takes_job_after_job_and_one_that_dies_is_replaced():
    from concurrent.futures.process import BrokenProcessPool

    from experiments.workers import Processes
    executor = Processes(2, 1)
    try:
        first = [executor.submit(os.readlink, "/proc/self").result(HANG_GUARD) for _ in range(3)]
        assert len(set(first)) == 1  # one worker took them all, one after another
        busy = executor.submit(time.sleep, 3)
        second = executor.submit(os.readlink, "/proc/self").result(HANG_GUARD)
        assert second != first[0]  # the first worker is busy: a second one starts
        with pytest.raises(BrokenProcessPool):
            executor.submit(os._exit, 1).result(HANG_GUARD)  # a worker dies with its job
        assert busy.result(HANG_GUARD) is None  # the other worker's job is untouched
        held = executor.submit(time.sleep, 3)
        third = executor.submit(os.readlink, "/proc/self").result(HANG_GUARD)
        assert third not in (first[0], second)  # a new worker in place of the dead one
        held.result(HANG_GUARD)
    finally:
        executor.close()


def test_a_sweep_starts_no_more_workers_than_it_has_runs_left(monkeypatch):
    from experiments.workers import executor_for
    for key in BLAS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    executor = executor_for({"scheduler": None, "jobs": 4}, 2, lambda message: None)
    assert executor.at_once == 2  # a resume with 2 runs left starts 2 workers, not 4 ...
    assert executor.threads == max(1, cores() // 4)  # ... each with the threads of --jobs 4


def test_a_worker_that_dies_between_jobs_is_replaced_not_handed_the_next():
    from experiments.workers import Processes
    executor = Processes(1, 1)
    try:
        idle = int(executor.submit(os.readlink, "/proc/self").result(HANG_GUARD))
        os.kill(idle, signal.SIGKILL)
        deadline = time.monotonic() + HANG_GUARD
        while alive(idle):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # for the pool to see its process gone
        new = int(executor.submit(os.readlink, "/proc/self").result(HANG_GUARD))
        assert new != idle
    finally:
        executor.close()


def test_a_sweep_whose_every_run_fails_says_so_and_no_others_are_done(tmp_path, monkeypatch,
                                                                      capsys):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(experiments.run, "load_data", no_memory)
    assert main([tiny_config(tmp_path, SWEEP), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "2 of 2 runs failed: " in err and "The others are done" not in err
    assert ".." not in err  # each reason's own full stop, then the sentence's


def test_a_run_stopped_alone_stops_the_others_through_the_stop_file(tmp_path):
    from concurrent.futures import Future

    from experiments.workers import run_all

    class OneStopsAlone:  # as a worker whose run took a SIGINT of its own
        at_once = 1

        def submit(self, fn, job):
            future = Future()
            future.set_result({"status": "interrupted"})
            return future

    stop, done = tmp_path / ".stop", []
    left = run_all(OneStopsAlone(), ["a", "b"], stop, lambda job: None,
                   lambda job, summary: done.append(job), lambda: None)
    assert done == ["a"] and left == ["b"] and stop.exists()
