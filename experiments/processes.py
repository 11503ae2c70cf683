"""One run over several processes: `mpiexec -n K python train.py CONFIG` (or srun under SLURM).

Which processes train.py was started in, how many BLAS threads each uses, and how a process that
fails alone ends them all. The training itself is framework.fit's (its comm); rank 0 owns the
run folder (run.run_one), the others write nothing.
"""
import os
import sys
import time

from framework.comm import LOCAL

from .workers import users_blas_threads
from .yamlfile import ConfigError

# What an MPI launcher tells each process it starts: MPICH and Intel MPI (and srun --mpi=pmi2)
# the size, Open MPI the size, PMIx (srun --mpi=pmix) only that there is one.
LAUNCHERS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def launched():
    """The processes of this run: an MPIComm when an MPI launcher started more than one,
    else this process alone (framework.comm.LOCAL), as a plain `python train.py` is."""
    sizes = [int(os.environ[name]) for name in LAUNCHERS if os.environ.get(name, "").isdigit()]
    if not any(size > 1 for size in sizes) and "PMIX_RANK" not in os.environ:
        return LOCAL
    try:
        from framework.comm import MPIComm
        comm = MPIComm()
    except ImportError:
        raise ConfigError("started by an MPI launcher (mpiexec or srun) with several processes, "
                          "but mpi4py is not installed here: python -m pip install -e \".[mpi]\" "
                          "(it brings MPICH too)") from None
    return comm if comm.size > 1 else LOCAL


def set_blas_threads(comm):
    """Each process's share of its machine's cores for BLAS (a node's cores over the processes
    on it that share them), unless the user chose in the environment; returns the log line.

    Two processes with two BLAS threads each on two cores fight over them (oversubscription: a
    CNN epoch three times slower). threadpoolctl sets OpenBLAS's count in this process only;
    the environment, the user's, is left as it is."""
    chosen = users_blas_threads()
    if chosen:
        settings = ", ".join(f"{name}={value}" for name, value in chosen.items())
        return (f"processes: {comm.size} (MPI); BLAS threads as your environment says "
                f"({settings}) in each")
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(
        range(os.cpu_count() or 1))
    node = comm.comm.Split_type(comm.mpi.COMM_TYPE_SHARED)  # the processes on this machine
    sharing = sum(1 for cores in node.allgather(mine) if cores & mine)
    node.Free()
    threads = max(1, len(mine) // sharing)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return (f"processes: {comm.size} (MPI); BLAS threads not set (threadpoolctl is not "
                f"installed: pip install -e \".[mpi]\"); set OPENBLAS_NUM_THREADS={threads}")
    threadpool_limits(threads, user_api="blas")
    return (f"processes: {comm.size} (MPI), {sharing} on this machine; BLAS threads: {threads} "
            f"in each (its share of {len(mine)} cores; OPENBLAS_NUM_THREADS overrides)")


def end(comm, code, together, said=""):
    """The exit code of this process, or, when it failed alone (not together with every other
    process, as a divergence or a Ctrl-C during training is), the end of the whole job.

    An MPI process that exits while the others wait for it in a sum leaves them waiting forever,
    so a process that fails alone aborts the job (mpiexec then exits with `code`) once its message
    is out: rank 0's was printed as it came; another's (`said`, held back) after a moment, since
    when every process fails alike (a config mistake) rank 0's abort ends it before its copy."""
    if comm.size == 1 or code == 0 or together:
        return code
    if comm.rank != 0:
        time.sleep(2)
        print(f"rank {comm.rank} of {comm.size}: {said.strip()}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    comm.abort(code)
    return code
