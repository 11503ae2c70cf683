"""Data parallelism over a real MPI: `mpiexec -n 2` from the optional extra (pip install -e
".[mpi]"), which CI installs; without it these tests skip, saying so (in CI they fail)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi_fit import train

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
