"""bench_cnn.py --ranks K: the data-parallel step (K processes, framework.parallel) against one
process with one thread and with every core's thread, and PyTorch, timed in turns in one run.

The K processes run under `mpiexec -n K` as one child group: rank 0 answers the parent on its
stdin and stdout, as the torch child does (timing.TorchProcess), and tells the others what to
run. A step of theirs is train.py's step split K ways: each process's rows of the batch, the
loss over the whole batch's size, backward (BatchNorm summing its statistics over the
processes), AllReduce (gradients, loss, correct count), Adam. While the parent times the other
candidates, the processes wait asleep (polling every 2 ms), not spinning in MPI.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
from timing import Timed, TorchProcess, serve

import framework as F
from experiments.build import build_model
from experiments.config import load
from framework.comm import process_rng, share
from framework.loop import State
from framework.parallel import AllReduce

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
MODELS = {"cnn": CONFIGS / "mnist_cnn.yaml", "mlp": CONFIGS / "mnist_mlp.yaml"}
SEED_SHAPE = (1, 28, 28)


def model_of(name, rng, draws=None):
    """The model of configs/mnist_cnn.yaml or mnist_mlp.yaml, as train.py builds it."""
    return build_model(load(MODELS[name]), SEED_SHAPE, rng, draws)


class Step(Timed):
    """Training steps of one model on the next batches of a fixed synthetic set: with comm, this
    process's rows of each batch and the sums over the processes (the whole step is the slowest
    process's, which the sums wait for)."""

    def __init__(self, name, x, t, batch, seed, comm=None):
        self.model = model_of(name, np.random.default_rng(seed),
                              process_rng(seed, comm) if comm is not None else None)
        self.loss_fn = F.SoftmaxCrossEntropy()
        self.optimizer = F.Adam(self.model.parameters(), lr=1e-3)
        self.x, self.t, self.batch, self.first, self.comm = x, t, batch, 0, comm
        if comm is not None:
            self.state = State(self.model, self.loss_fn, self.optimizer, 1, 1, 0, comm)
            self.reduce = AllReduce()
            self.reduce.on_fit_start(self.state)

    def run(self, steps):
        model, loss_fn, optimizer, batch = self.model, self.loss_fn, self.optimizer, self.batch
        for _ in range(steps):
            if self.first + batch > len(self.x):
                self.first = 0
            first, end = self.first, self.first + batch
            self.first = end
            if self.comm is None:
                loss_fn.forward(model.forward(self.x[first:end], train=True), self.t[first:end])
                model.backward(loss_fn.backward(), need_dx=False)
            else:
                mine = slice(*(first + i for i in share(batch, self.comm)))
                self.state.loss = loss_fn.forward(model.forward(self.x[mine], train=True),
                                                  self.t[mine], total=batch)
                self.state.hits = loss_fn.correct()
                model.backward(loss_fn.backward(), need_dx=False)
                self.reduce.after_backward(self.state)
            optimizer.step()


class Threads(Timed):
    """A candidate run with OpenBLAS limited to `threads` in this process (threadpoolctl)."""

    def __init__(self, inner, threads):
        self.inner, self.threads = inner, threads

    def run(self, steps):
        from threadpoolctl import threadpool_limits
        with threadpool_limits(self.threads, user_api="blas"):
            self.inner.run(steps)


# --- the K processes ------------------------------------------------------------------------

class RanksProcess(TorchProcess):
    """The K processes under mpiexec, asked like the torch child: a candidate's key is
    (model, batch)."""

    def __init__(self, script, ranks, threads, seed):
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), sys.executable,
             script, "--ranks-worker", "--threads", str(threads), "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.version = self.ask("version")


class Leader(Timed):
    """Rank 0's side of a candidate: each run(steps) is told to the other processes first."""

    def __init__(self, comm, key, step):
        self.comm, self.key, self.step = comm, key, step

    def run(self, steps):
        tell(self.comm, (self.key, steps))
        self.step.run(steps)


def tell(comm, what):
    comm.barrier()
    comm.comm.bcast(what, root=0)


def hear(comm):
    """What rank 0 tells, waiting asleep (comm.barrier) until it tells something."""
    comm.barrier()
    return comm.comm.bcast(None, root=0)


def ranks_worker(args, x, t):
    """Every process's loop under mpiexec: rank 0 serves the parent's requests (timing.serve),
    telling the others each run of steps; they run it too."""
    from threadpoolctl import threadpool_limits

    from framework.comm import MPIComm

    comm = MPIComm()
    threadpool_limits(args.threads, user_api="blas")
    steps = {}

    def step(model, batch):
        if (model, batch) not in steps:
            steps[model, batch] = Step(model, x, t, int(batch), args.seed, comm)
        return steps[model, batch]

    if comm.rank != 0:
        while (heard := hear(comm)) is not None:
            key, count = heard
            step(*key).run(count)
        return
    serve(lambda *key: Leader(comm, key, step(*key)),
          f"{comm.size} processes x {args.threads} BLAS thread(s)")
    tell(comm, None)


def ranks_table(args, x, t, torch_process, threads):
    """For each model (CNN, MLP) and batch size: one process with 1 thread and with `threads`,
    K processes with 1 thread each, PyTorch with `threads`; returns the rows."""
    from timing import batch_sizes, measure, spread

    group = RanksProcess(args.script, args.ranks, 1, args.seed)
    print(f"{args.ranks} processes under mpiexec ({group.version}, a child group)")
    rows = []
    k = args.ranks
    print(f"{'model':<6}{'batch':>6}  {'candidate':<22}{'ms/step':>9}{'samples/s':>11}"
          f"{'x torch':>9}{'x 1 thread':>11}{'spread':>8}")
    try:
        for name in args.models.split(","):
            for batch in batch_sizes(args):
                one = "1 process x 1 thread"
                many = f"1 process x {threads} threads"
                ranked = f"{k} processes x 1 thread"
                candidates = {one: Threads(Step(name, x, t, batch, args.seed), 1),
                              many: Threads(Step(name, x, t, batch, args.seed), threads),
                              ranked: group.candidate(name, batch)}
                if torch_process is not None:
                    candidates[f"torch x {threads} threads"] = torch_process.candidate(name,
                                                                                       batch)
                median, times = measure(candidates, args.reps, args.warmup, args.block)
                torch_s = median.get(f"torch x {threads} threads")
                for candidate, s in median.items():
                    row = {"model": name, "batch": batch, "candidate": candidate,
                           "s_per_step": s, "samples_per_s": batch / s,
                           "x_one_thread": median[one] / s, "spread": spread(times[candidate], s),
                           "s_per_step_reps": times[candidate]}
                    if torch_s is not None:
                        row["x_torch"] = s / torch_s
                    rows.append(row)
                    x_torch = f"{row['x_torch']:.2f}" if "x_torch" in row else ""
                    print(f"{name:<6}{batch:>6}  {candidate:<22}{s * 1e3:>9.2f}{batch / s:>11,.0f}"
                          f"{x_torch:>9}{row['x_one_thread']:>11.2f}{row['spread']:>8.0%}")
        rss = group.ask("rss")
    finally:
        group.close()
    print(f"\nx torch: step time / PyTorch's (below 1: faster); x 1 thread: the 1-thread step "
          f"time / this one's (the speed-up). Peak RSS of rank 0: {rss} MB")
    return rows
