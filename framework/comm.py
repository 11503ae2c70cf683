"""Communicators: what a data-parallel run asks of its processes, and no more (see parallel.py).

    rank, size            this process's number (0 .. size-1) and the number of processes
    local_size            how many of them run on this machine (they share its memory)
    allreduce(a)          the numpy array `a` summed over the processes, in place; returns it
    allgather(value)      [every process's value], in rank order, on every process
    gather(value)         the same on rank 0 only (None elsewhere)
    barrier()             waits until every process has called it
    deferred_interrupts() a context: inside it a Ctrl-C ends every process at the same step
Local() is one process alone, whose sums have one term. MPIComm() runs over MPI through mpi4py,
imported only when one is made. Layers that compute over the batch (BatchNorm's statistics) reach
the other processes through their `comm`; they never import MPI.
"""
import signal
import sys
import time
import zlib
from contextlib import contextmanager, nullcontext

import numpy as np


class Local:
    """One process alone: rank 0 of 1; every sum over processes is the value itself."""

    rank, size, local_size = 0, 1, 1
    interrupted = False

    def allreduce(self, a):
        return a

    def allgather(self, value):
        return [value]

    def gather(self, value):
        return [value]

    def barrier(self):
        pass

    def deferred_interrupts(self):
        return nullcontext()


LOCAL = Local()


class MPIComm:
    """The processes of an MPI job (`mpiexec -n K python ...`): mpi4py's COMM_WORLD unless another
    mpi4py communicator is given. Needs the optional extra: pip install -e ".[mpi]".

    A process that stops while the others wait in a sum leaves them waiting forever (MPI has no
    timeouts), so a Ctrl-C, which mpiexec passes to every process, is only noted inside
    deferred_interrupts(): AllReduce sums the notes with the gradients, and every process raises
    KeyboardInterrupt at the same step. A process that fails alone ends the job with abort(code).
    """

    def __init__(self, comm=None):
        from mpi4py import MPI  # the optional extra; only a run over MPI needs it

        self.mpi = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        here = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the processes sharing this memory
        self.local_size = here.Get_size()
        here.Free()
        self.interrupted = False
        if self.size > 1:
            self.previous_excepthook, sys.excepthook = sys.excepthook, self.excepthook

    def excepthook(self, kind, value, traceback):
        """An exception nothing caught: shown, then the whole job ended (exit 1), since the
        other processes would wait for this one forever (what `python -m mpi4py` does)."""
        self.previous_excepthook(kind, value, traceback)
        sys.stderr.flush()
        self.abort(1)

    def allreduce(self, a):
        if not (isinstance(a, np.ndarray) and a.flags.owndata and a.flags.c_contiguous
                and a.flags.writeable):
            # A copy made here would take the sum and be thrown away, and a view would change the
            # array it views (sum_to of a batch of one is a view of the batch itself).
            raise TypeError("MPIComm.allreduce: sums in place, so it needs a writable numpy array "
                            "of its own, not a view of another")
        self.comm.Allreduce(self.mpi.IN_PLACE, a, op=self.mpi.SUM)
        return a

    def allgather(self, value):
        return self.comm.allgather(value)

    def gather(self, value):
        return self.comm.gather(value, root=0)

    def barrier(self):
        """Waits asleep, looking every 2 ms: a blocking MPI call would keep a core busy while it
        waits, and Ctrl-C could not stop it."""
        request = self.comm.Ibarrier()
        while not request.Test():
            time.sleep(0.002)

    def abort(self, code):
        """Ends every process of the job at once, mpiexec exiting with `code`.

        First a moment for mpiexec to pass on what this process just wrote: stderr is a pipe that
        mpiexec drains on its own time, and Abort ends the job whether it has or not, which once
        cut the failing process's message off after its first lines."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.5)
        self.comm.Abort(code)

    @contextmanager
    def deferred_interrupts(self):
        """Inside: Ctrl-C sets `interrupted` instead of raising, for AllReduce to act on at the
        next step in every process alike; leaving, a Ctrl-C noted but not acted on is raised."""
        def note(signum, frame):
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        if self.interrupted:
            raise KeyboardInterrupt


class ProcessesDisagree(RuntimeError):
    """The processes of a data-parallel run hold different weights or draw different batches:
    their sums would mix different runs."""


def split_batch_size(batch_size, size):
    """Refuses a batch size that `size` processes cannot share evenly, naming the nearest that
    they can."""
    if batch_size % size:
        below = batch_size // size * size
        above = below + size
        nearest = ([below] if batch_size - below < above - batch_size else
                   [above] if batch_size - below > above - batch_size else [below, above])
        nearest = [b for b in nearest if b > 0] or [above]
        raise ValueError(f"batch size {batch_size} does not split evenly over {size} processes: "
                         f"the nearest that does is {' or '.join(map(str, nearest))}")
    return batch_size // size


def share(n, comm):
    """(first, end): this process's rows of n, in rank order, as even as n allows."""
    return comm.rank * n // comm.size, (comm.rank + 1) * n // comm.size


def process_rng(seed, comm):
    """This process's own generator, derived from the run's seed and its rank (numpy's
    SeedSequence spawn keys): for what each process draws for its own rows, such as dropout
    masks. One process alone gets None: it draws those from the run's one generator."""
    if comm.size == 1:
        return None
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(comm.rank,)))


def agree(comm, what, value):
    """Refuses values that differ between processes (ProcessesDisagree, naming what differs and
    in which ranks)."""
    values = comm.allgather(value)
    odd = [rank for rank, v in enumerate(values) if v != values[0]]
    if odd:
        raise ProcessesDisagree(
            f"the {comm.size} processes disagree on {what}: rank(s) {', '.join(map(str, odd))} "
            f"differ from rank 0. Every process must run the same code, numpy and data, from the "
            f"same seed, so that the gradients they add are of one run")


def digest(arrays):
    """A checksum of the arrays' bytes, to compare between processes cheaply."""
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8).reshape(-1), crc)
    return crc
