"""Data parallelism: K processes each take their share of every batch, and their gradients add up.

A batched layer's bias gradient is a sum over the batch's rows (db = dY.sum(axis=0)); split the
rows over K processes and db is the sum of K partial sums, one per process. So is every other
gradient (dW = xᵀ·dY sums over the rows too), and the loss, once each process divides its part by
the whole batch's size. Summing them over the processes (MPI's Allreduce) before the optimizer's
step gives every process the step one process takes on the whole batch, up to the order of the
additions. fit(..., comm=...) does it: each process takes its rows of every batch of the one
permutation all processes draw from the same seed, and the AllReduce callback sums.

The processes are reached through a communicator (framework/comm.py): Local() for one process,
MPIComm() over MPI.
"""
import numpy as np

from .callbacks import Callback
from .comm import LOCAL, agree, digest


class AllReduce(Callback):
    """Sums over the processes (state.comm), in after_backward before the optimizer's step: every
    gradient (each process's covers its rows of the batch), the loss (each process's part, divided
    by the whole batch's size) and the count of correct predictions. fit puts it first when given
    a comm of more than one process, so the callbacks after it (the non-finite check, the bias
    log) see the whole batch's values, the same in every process, and decide alike.

    Also gives each layer the comm for the fit (BatchNorm sums its statistics over the
    processes), and checks that the processes hold the same weights and draw the same
    permutation at the start of every epoch.
    """

    def on_fit_start(self, state):
        comm = state.comm
        for layer in state.model.layers:
            layer.comm = comm
        self.params = state.model.parameters()
        self.groups = []  # (parameters, one buffer for all their gradients) per dtype
        for dtype in sorted({p.data.dtype for p in self.params}, key=str):
            group = [p for p in self.params if p.data.dtype == dtype]
            self.groups.append((group, np.empty(sum(p.data.size for p in group), dtype)))
        self.scalars = np.empty(3)

    def on_epoch_start(self, state):
        agree(state.comm, f"the weights and the order of the examples at the start of epoch "
                          f"{state.epoch}",
              (digest(p.data for p in self.params), digest([state.order])))

    def after_backward(self, state):
        comm = state.comm
        for group, flat in self.groups:
            np.concatenate([p.grad.reshape(-1) for p in group], out=flat)
            comm.allreduce(flat)
            first = 0
            for p in group:
                p.grad[...] = flat[first:first + p.grad.size].reshape(p.grad.shape)
                first += p.grad.size
        # hits is None in every process alike: a loss that counts no correct examples
        self.scalars[:] = state.loss, state.hits or 0, comm.interrupted
        comm.allreduce(self.scalars)
        if self.scalars[2]:
            raise KeyboardInterrupt
        state.loss = float(self.scalars[0])
        state.hits = None if state.hits is None else int(self.scalars[1])

    def on_fit_end(self, state):
        for layer in state.model.layers:  # the model, used alone again, sums over itself
            layer.comm = LOCAL
