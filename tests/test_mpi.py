"""Data parallelism over a real MPI: `mpiexec -n 2` from the optional extra (pip install -e
".[mpi]"), which CI installs; without it these tests skip, saying so (in CI they fail)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mpi_fit import train

import framework as F
from experiments.cli import main
from framework.comm import LOCAL, Local, process_rng, share, split_batch_size

ROOT = Path(__file__).resolve().parents[1]


def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else on PATH; skips (fails in CI)
    without mpi4py or an mpiexec."""
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpiexec")
    try:
        import mpi4py  # noqa: F401  (only whether it is installed: MPI itself is not started)
    except ImportError:
        found = None
    if found is None:
        message = 'needs mpi4py and an mpiexec: pip install -e ".[mpi]"'
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_mpi(processes, *args, timeout=120):
    """`mpiexec -n processes python args...` from the repository's root; the finished process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([mpiexec(), "-n", str(processes), sys.executable, *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_processes_take_the_step_one_process_takes_on_the_whole_batch(optimizer, tmp_path):
    out = tmp_path / "weights.npz"
    done = run_mpi(2, ROOT / "tests" / "mpi_fit.py", optimizer, 20, out)
    assert done.returncode == 0, done.stderr
    model, history = train(optimizer, 20)
    saved = np.load(out)
    for name, array in model.state_dict().items():  # weights and BatchNorm's running statistics
        assert np.abs(saved[name] - array).max() < 1e-12, name
    assert np.abs(saved["train_loss"] - history["train_loss"].to_numpy()).max() < 1e-12
    assert (saved["train_acc"] == history["train_acc"].to_numpy()).all()


def test_a_fault_in_one_process_ends_every_process_with_its_message(tmp_path):
    done = run_mpi(2, ROOT / "tests" / "mpi_fit.py", "sgd", 20, tmp_path / "w.npz", 5, timeout=60)
    assert done.returncode == 1
    assert "ValueError: a fault in rank 1 at step 5" in done.stderr
    assert not (tmp_path / "w.npz").exists()


def test_mpiexec_counts_the_processes_that_share_this_machines_memory():
    done = run_mpi(2, "-c", "from framework.comm import MPIComm; c = MPIComm(); "
                             "seen = c.gather((c.size, c.local_size)); c.rank or print(seen)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(2, 2), (2, 2)]"


def test_every_process_agrees_a_loss_that_counts_nothing_has_no_accuracy():
    # one example for two processes: rank 1 has no rows, so it counted 0 correct, not "nothing"
    done = run_mpi(2, "-c", "import numpy as np, framework as F; "
                            "from framework.comm import MPIComm; c = MPIComm(); "
                            "m = F.Sequential(F.Affine(3, 1, rng=np.random.default_rng(0))); "
                            "x = np.ones((1, 3), np.float32); t = np.zeros((1, 1), np.float32); "
                            "acc = F.evaluate(m, F.MeanSquaredError(), x, t, comm=c)[1]; "
                            "seen = c.gather(acc); c.rank or print(seen)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[None, None]"


def test_a_batch_that_does_not_split_evenly_is_refused_naming_the_nearest_that_does():
    assert split_batch_size(128, 2) == 64
    with pytest.raises(ValueError, match="batch size 129 does not split evenly over 2 processes: "
                                         "the nearest that does is 128 or 130"):
        split_batch_size(129, 2)
    with pytest.raises(ValueError, match="the nearest that does is 129$"):
        split_batch_size(128, 3)
    with pytest.raises(ValueError, match="the nearest that does is 4$"):
        split_batch_size(1, 4)


def test_the_rows_of_a_batch_are_shared_in_rank_order_without_gaps():
    class Rank(Local):
        def __init__(self, rank, size):
            self.rank, self.size = rank, size

    for n in (0, 1, 3, 128):
        shares = [share(n, Rank(r, 3)) for r in range(3)]
        assert shares[0][0] == 0 and shares[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
        assert max(e - f for f, e in shares) - min(e - f for f, e in shares) <= 1


def test_each_process_draws_its_own_stream_and_one_process_the_runs_own():
    class Rank(Local):
        def __init__(self, rank, size):
            self.rank, self.size = rank, size

    assert process_rng(0, LOCAL) is None
    draws = [process_rng(0, Rank(r, 2)).random(4) for r in range(2)]
    assert not np.array_equal(draws[0], draws[1])
    assert np.array_equal(draws[1], process_rng(0, Rank(1, 2)).random(4))  # from the seed alone
    assert not np.array_equal(draws[1], process_rng(1, Rank(1, 2)).random(4))


# --- train.py under mpiexec -----------------------------------------------------------------

# Long enough (about a second an epoch) to be stopped in the middle: synthetic points, dropout
# (each process its own masks) and BatchNorm (statistics over both processes).
LONG = """\
name: long
data:
  dataset: synthetic
  validation: 500
  batch_size: 64
  train: 12500
  test: 500
  features: 32
  classes: 4
model: [{affine: {out: 128}}, batchnorm, relu, {dropout: {p: 0.2}}, {affine: {out: 4}}]
optimizer: {name: adam, lr: 0.001}
training: {epochs: 5, seed: 3, bias_every: 50}
logging: {progress: false, plots: false}
"""


def train_py(processes, *args, timeout=300):
    return run_mpi(processes, ROOT / "train.py", *args, timeout=timeout)


def start_train_py(processes, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([mpiexec(), "-n", str(processes), sys.executable, ROOT / "train.py",
                             *map(str, args)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_epoch(folder, epoch, job, timeout=120):
    """Waits until the run's log.txt shows the line of `epoch`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        log = folder / "log.txt"
        if log.exists() and f"epoch {epoch}/" in log.read_text(encoding="utf-8"):
            return
        time.sleep(0.05)
    raise AssertionError(f"epoch {epoch} never logged: {job.poll()}")


def files_of(folder):
    """What a resumed run must repeat exactly: metrics without time, steps, bias log, weights."""
    metrics = [line.rsplit(",", 1)[0]
               for line in (folder / "metrics.csv").read_text().splitlines()]
    state = F.load(folder / "checkpoint.npz")
    return (metrics, (folder / "steps.csv").read_text(), (folder / "bias_grads.csv").read_text(),
            state["model"], state["optimizer"], state["process_rngs"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The LONG run by 2 processes from start to end, and its config file."""
    where = tmp_path_factory.mktemp("uninterrupted")
    config = where / "long.yaml"
    config.write_text(LONG, encoding="utf-8")
    done = train_py(2, config, "--out", where / "run")
    assert done.returncode == 0, done.stderr
    return config, where / "run", done


def assert_same_run(a, b):
    ma, sa, ba, wa, oa, ra = files_of(a)
    mb, sb, bb, wb, ob, rb = files_of(b)
    assert (ma, sa, ba, ra) == (mb, sb, bb, rb)
    for name in wa:
        assert np.array_equal(wa[name], wb[name]), name
    for name in oa:
        assert np.array_equal(oa[name], ob[name]), name


def test_rank_0_alone_speaks_and_the_log_shows_the_processes_partial_sums(uninterrupted):
    _, run, done = uninterrupted
    assert done.stdout.count("finished: test accuracy") == 1
    log = (run / "log.txt").read_text(encoding="utf-8")
    assert any(re.match(r"processes: 2 \(MPI\).*BLAS threads: 1 in each", line)
               for line in log.splitlines()[:3])  # among the first lines
    assert "affine2.b  dY (32, 4) in each of 2 processes -> db (4,) = sum of 64 rows" in log
    assert "checks: Σ 0.0e+00" in log  # db is exactly the Allreduce sum of the partial sums
    bias = pd.read_csv(run / "bias_grads.csv")
    assert (bias["processes"] == 2).all() and (bias["batch_size"] == 64).all()
    assert F.load(run / "checkpoint.npz")["processes"] == 2


def started_then(config, folder, epoch, stop):
    """Starts the LONG run by 2 processes in `folder`, and once it has logged `epoch`, calls
    stop(job); returns the finished job and its stderr."""
    job = start_train_py(2, config, "--out", folder)
    wait_for_epoch(folder, epoch, job)
    stop(job)
    return job, job.communicate(timeout=60)[1]


def resumes_as_uninterrupted(folder, whole):
    done = train_py(2, "--resume", folder)
    assert done.returncode == 0, done.stderr
    assert_same_run(whole, folder)


def test_ctrl_c_to_mpiexec_leaves_a_run_that_resumes_bit_identical(uninterrupted, tmp_path):
    config, whole, _ = uninterrupted
    job, err = started_then(config, tmp_path / "run", 2, lambda job: job.send_signal(signal.SIGINT))
    assert job.returncode == 130, err
    assert err.count("Interrupted. Epoch") == 1
    assert f"mpiexec -n 2 python train.py --resume {tmp_path / 'run'}" in err
    resumes_as_uninterrupted(tmp_path / "run", whole)


def test_a_killed_process_ends_the_others_and_the_run_resumes_bit_identical(uninterrupted,
                                                                            tmp_path):
    config, whole, _ = uninterrupted
    killed = []

    def kill_rank_0(job):  # its process id is in the run folder's lock
        os.kill(int((tmp_path / "run" / ".lock").read_text()), signal.SIGKILL)
        killed.append(time.monotonic())

    job, _ = started_then(config, tmp_path / "run", 1, kill_rank_0)
    assert time.monotonic() - killed[0] < 10 and job.returncode != 0
    resumes_as_uninterrupted(tmp_path / "run", whole)


def test_resuming_with_another_number_of_processes_is_refused_saying_how_it_ran(uninterrupted,
                                                                                 capsys):
    _, run, _ = uninterrupted
    assert main(["--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "trained by 2 processes and would be resumed by 1" in " ".join(err.split())
    assert f"mpiexec -n 2 python train.py --resume {run}" in err


def test_a_batch_the_processes_cannot_split_is_refused_once_before_any_work(tmp_path):
    config = tmp_path / "long.yaml"
    config.write_text(LONG, encoding="utf-8")
    done = train_py(2, config, "--out", tmp_path / "run", "--set", "data.batch_size=65",
                    timeout=60)
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert said.count("data.batch_size: batch size 65 does not split evenly over 2 processes: "
                      "the nearest that does is 64 or 66") == 1
    assert not (tmp_path / "run").exists()
