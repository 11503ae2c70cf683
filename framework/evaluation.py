"""A trained model on data it does not learn from: loss and accuracy in eval mode."""
import numpy as np

from .comm import LOCAL, share


def evaluate(model, loss_fn, x, t, batch_size=250, comm=None):
    """(mean loss, accuracy) of the model in eval mode, in batches to bound memory (a CNN's
    activations for 250 images are already about a hundred MB). The accuracy is None when the
    loss counts no correct examples (targets without classes: a regression). comm: processes
    to share the examples among (framework.comm), each taking its rows and the sums added."""
    if len(x) == 0:
        raise ValueError(f"evaluate: no examples (x has shape {x.shape}); a mean loss and an "
                         "accuracy need at least one")
    comm = LOCAL if comm is None else comm
    mine = range(*share(len(x), comm))  # this process's examples
    total_loss, correct = 0.0, 0
    for first in range(mine.start, mine.stop, batch_size):
        last = min(first + batch_size, mine.stop)
        y = model.forward(x[first:last], train=False)
        total_loss += loss_fn.forward(y, t[first:last]) * len(y)
        correct = tally(correct, loss_fn.correct())
    if comm.size > 1:  # NaN for "counts nothing": a process with no rows has counted 0
        sums = comm.allreduce(np.array([total_loss, np.nan if correct is None else correct]))
        total_loss, correct = float(sums[0]), None if np.isnan(sums[1]) else int(sums[1])
    return total_loss / len(x), None if correct is None else correct / len(x)


def tally(total, correct):
    """total + correct, or None once either is None (a loss that counts nothing)."""
    return None if total is None or correct is None else total + correct


def scores(split, loss, accuracy):
    """{"<split>_loss": loss, "<split>_acc": accuracy} for an epoch's record, without the
    accuracy when the loss gives none."""
    return {f"{split}_loss": loss, **({f"{split}_acc": accuracy} if accuracy is not None else {})}
