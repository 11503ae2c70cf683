"""A small float64 CNN with BatchNorm trained by framework.fit, as a script that test_mpi.py
runs under `mpiexec -n K` and imports to train the same in one process.

    mpiexec -n 2 python tests/mpi_fit.py OPTIMIZER STEPS OUT.npz [fail-at-step]

Rank 0 writes the weights after STEPS steps, and the history, to OUT.npz. With a fourth
argument, rank 1 raises at that step (a fault only one process has).
"""
import sys

import numpy as np

import framework as F
from framework.comm import MPIComm

LR = {"sgd": 0.05, "adam": 1e-3}
BATCH = 16
EXAMPLES = 99  # 6 batches of 16 and a last one of 3, which 2 processes split 1 and 2


def data():
    rng = np.random.default_rng(100)
    x = rng.standard_normal((EXAMPLES, 1, 6, 6))
    return x, rng.integers(0, 3, EXAMPLES)


def model(seed=0):
    """Conv, BatchNorm over images, pooling, an affine layer, BatchNorm over rows, in float64.

    Each BatchNorm comes after a ReLU, not straight after a bias: BatchNorm subtracts the mean,
    so a bias just before it has a gradient of exactly 0, and what backward computes for it is
    rounding (about 1e-17), which Adam divides by its own size: summed in another order, such a
    bias moves by about 1e-9 in 20 steps while every other weight agrees to 1e-15.
    """
    rng = np.random.default_rng(seed)
    f64 = np.float64
    return F.Sequential(F.Conv2D(1, 4, 3, padding=1, rng=rng, dtype=f64), F.ReLU(),
                        F.BatchNorm(4, dtype=f64), F.MaxPool2D(2), F.Flatten(),
                        F.Affine(36, 5, rng=rng, dtype=f64), F.ReLU(), F.BatchNorm(5, dtype=f64),
                        F.Affine(5, 3, rng=rng, dtype=f64), input_shape=(1, 6, 6))


class FailAt(F.Callback):
    """Raises in rank 1 alone, at a given step."""

    def __init__(self, step):
        self.step = step

    def on_batch_start(self, state):
        if state.comm.rank == 1 and state.step + 1 == self.step:
            raise ValueError(f"a fault in rank 1 at step {self.step}")


def train(optimizer, steps, comm=None, fail_at=None):
    """(model, history) after `steps` steps of fit, shuffling from seed 0."""
    net = model()
    opt = {"sgd": F.SGD, "adam": F.Adam}[optimizer](net.parameters(), lr=LR[optimizer])
    callbacks = [F.CheckFinite(), F.StopAfter(steps)] + ([FailAt(fail_at)] if fail_at else [])
    history = F.fit(net, F.SoftmaxCrossEntropy(), opt, data(), epochs=100, batch_size=BATCH,
                    rng=np.random.default_rng(0), callbacks=callbacks, comm=comm)
    return net, history


def main(optimizer, steps, out, fail_at=None):
    comm = MPIComm()
    net, history = train(optimizer, int(steps), comm, int(fail_at) if fail_at else None)
    if comm.rank == 0:
        np.savez(out, train_loss=history["train_loss"].to_numpy(),
                 train_acc=history["train_acc"].to_numpy(), **net.state_dict())


if __name__ == "__main__":
    main(*sys.argv[1:])
