"""A sweep on a real Dask cluster: a scheduler and two workers started here as processes on
127.0.0.1 (as `dask scheduler` and `dask worker` are on a cluster), not a mock and not Dask's
synchronous scheduler. Needs the cluster extra (the dev extra brings it)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_jobs import SWEEP, same_files
from test_train_cli import tiny_config

from experiments.cli import main

distributed = pytest.importorskip("distributed")
REPO = Path(__file__).resolve().parents[1]
HANG_GUARD = 120  # seconds: only against hangs


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a Dask scheduler with two single-threaded workers, each a process of its
    own (with its nanny) that imports this project from PYTHONPATH."""
    folder = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    dask = [sys.executable, "-m", "dask"]
    started = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--no-dashboard", "--scheduler-file", "scheduler.json"],
                                cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + HANG_GUARD
        while not (folder / "scheduler.json").exists():
            assert started[0].poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written whole, but give it the moment
        address = json.loads((folder / "scheduler.json").read_text())["address"]
        for _ in range(2):
            started.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1",
                                             "--host", "127.0.0.1", "--no-dashboard"],
                                            cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        with distributed.Client(address, timeout=HANG_GUARD) as client:
            client.wait_for_workers(2, timeout=HANG_GUARD)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            process.wait(HANG_GUARD)


def test_a_sweep_on_dask_workers_gives_the_files_of_jobs_1(tmp_path, scheduler):
    config = tiny_config(tmp_path, SWEEP)
    assert main([config, "--out", str(tmp_path / "here"), "--quiet"]) == 0
    assert main([config, "--out", str(tmp_path / "dask"), "--quiet", "--scheduler", scheduler]) == 0
    for run in ("optimizer.name=sgd", "optimizer.name=adam"):
        same_files(tmp_path / "here" / run, tmp_path / "dask" / run)
        worker = int((tmp_path / "dask" / run / ".lock").read_text())
        assert worker != os.getpid()  # it ran in a worker process
        first = (tmp_path / "dask" / run / "log.txt").read_text().splitlines()[0]
        assert "OPENBLAS_NUM_THREADS=1" in first  # as Dask's nanny sets it for a worker
    log = (tmp_path / "dask" / "log.txt").read_text()
    assert f"Dask scheduler {scheduler}: 2 workers" in log


def test_workers_that_cannot_read_the_data_are_refused_before_any_run(tmp_path, scheduler,
                                                                      capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tiny_config(tmp_path, "sweep: {grid: {training.seed: [1, 2]}}\n")
    out = tmp_path / "sweep"
    assert main([config, "--out", str(out), "--quiet", "--scheduler", scheduler,
                 "--set", f"data={{dataset: mnist, dir: {empty}, mirrors: [{empty}]}}",
                 "--set", "model.5.affine.out=10"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--scheduler {scheduler}: worker tcp://127.0.0.1:" in err
    assert "cannot load the data (mnist)" in err and "Traceback" not in err
    assert not out.exists()
