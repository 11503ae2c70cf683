"""The training loop shared by train.py, the configs and library users.

Everything a run does besides the step itself (progress, checks, the bias log, the learning-rate
schedule, evaluation of other splits, checkpoints, early stopping) is a callback: see callbacks.py.
"""
import time

import numpy as np

from .callbacks import CheckFinite, ProgressBar
from .comm import LOCAL, share, split_batch_size
from .evaluation import evaluate, scores, tally
from .parallel import AllReduce


class State:
    """What callbacks see of the run in progress; fit fills it in as it goes.

    model, loss_fn, optimizer, epochs, steps_per_epoch, comm: as given to fit.
    epoch, step: the current epoch (from 1) and the number of optimizer steps taken or being taken.
    order: the epoch's order of the training examples (the same in every process).
    x, t, logits: the current batch (this process's rows of it) and its outputs.
    loss, hits: the batch's mean loss and its count of correct predictions (loss_fn.correct();
    split over processes, before AllReduce has summed them: this process's part of each).
    seen, total_loss, correct: running totals of the current epoch (correct is None with a loss
    that counts none: loss_fn.correct()).
    record: the epoch's metrics (in on_epoch_end a callback may add its own).
    history: the records of the epochs this fit has run. stop: set it to end the run after
    the current step (the epoch's record then covers the steps taken).
    """

    def __init__(self, model, loss_fn, optimizer, epochs, steps_per_epoch, start_epoch, comm):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.epochs, self.steps_per_epoch, self.comm = epochs, steps_per_epoch, comm
        self.epoch, self.step = start_epoch, start_epoch * steps_per_epoch
        self.order = self.x = self.t = self.logits = self.loss = self.hits = self.record = None
        self.seen, self.total_loss, self.correct = 0, 0.0, 0
        self.history, self.stop = [], False


def fit(model, loss_fn, optimizer, train, *, epochs, batch_size, rng=None, shuffle=True,
        drop_last=False, val=None, callbacks=None, start_epoch=0, comm=None):
    """Trains for epochs start_epoch+1 .. epochs and returns their history as a DataFrame.

    train, val: (x, t) pairs; val is evaluated after every epoch. rng: the numpy Generator that
    draws a fresh permutation of the training set each epoch, required unless shuffle=False
    (which keeps the data's order and draws nothing). drop_last: leave out each epoch's last
    batch when it is smaller than batch_size (as PyTorch's DataLoader); batches some layer cannot
    train on (BatchNorm and a last batch of one) are refused before the first step.
    callbacks: objects with any of the hooks of framework.Callback, called in the order given;
    None means framework.default_callbacks() (the non-finite check and a progress display).
    start_epoch: the epochs already done, when resuming (the generator restored with them).
    comm: the processes this fit is one of (framework.comm; None: this process alone). Each
    takes its share of every batch the permutation gives (the same in every process: rng must be
    too) and its part of the batch's mean loss (loss_fn.forward(y, t, total=batch size)), and an
    AllReduce callback, put first, sums their gradients before every step (framework.parallel).
    """
    if shuffle and not isinstance(rng, np.random.Generator):
        # No default generator: a fresh one per call would shuffle differently from the one the
        # weights and dropout draw from, and a run would no longer repeat from one seed.
        raise TypeError(f"fit: shuffling needs rng, the numpy Generator your weights came from "
                        f"(rng = np.random.default_rng(seed); fit(..., rng=rng)), so that one "
                        f"seed repeats the whole run; got rng={rng!r}. shuffle=False keeps the "
                        f"data's order.")
    comm = LOCAL if comm is None else comm
    rows = split_batch_size(batch_size, comm.size)  # this process's share of a batch
    callbacks = default_callbacks() if callbacks is None else list(callbacks)
    if comm.size > 1:
        if any(isinstance(callback, AllReduce) for callback in callbacks):
            raise ValueError("fit: callbacks hold an AllReduce, and fit puts its own first when "
                             "comm has several processes: leave yours out (the gradients would "
                             "be summed twice)")
        callbacks.insert(0, AllReduce())
    x_train, t_train = train
    n = len(x_train)
    for name, split, use in (("train", train, "training"), ("val", val, "evaluating")):
        if split is not None and len(split[0]) == 0:
            raise ValueError(f"fit: {name} holds no examples (its x has shape {split[0].shape}); "
                             f"{use} needs at least one")
    check_batches(model, x_train.shape[1:], n, batch_size, drop_last)
    state = State(model, loss_fn, optimizer, epochs, steps_per_epoch(n, batch_size, drop_last),
                  start_epoch, comm)
    x_batch = np.empty((rows,) + x_train.shape[1:], x_train.dtype)  # reused every step
    for callback in callbacks:
        callback.on_fit_start(state)
    while state.epoch < epochs and not state.stop:
        state.epoch += 1
        started = time.perf_counter()
        state.order = rng.permutation(n) if shuffle else np.arange(n)
        state.seen, state.total_loss, state.correct = 0, 0.0, 0
        for callback in callbacks:
            callback.on_epoch_start(state)
        for first in range(0, state.steps_per_epoch * batch_size, batch_size):
            batch = state.order[first:first + batch_size]
            index = batch[slice(*share(len(batch), comm))]  # this process's rows of the batch
            # mode="clip" gathers straight into x_batch (under "raise" numpy gathers into a
            # temporary, then copies); a permutation's indices are always in range.
            state.x = np.take(x_train, index, axis=0, out=x_batch[:len(index)], mode="clip")
            state.t = t_train[index]
            for callback in callbacks:
                callback.on_batch_start(state)  # augmentation may replace state.x here

            state.logits = model.forward(state.x, train=True)
            # Split over processes, this one's rows' losses divided by the whole batch's size:
            # its part of the batch's mean, and of every gradient (framework.parallel).
            part = {"total": len(batch)} if comm.size > 1 else {}
            state.loss = loss_fn.forward(state.logits, state.t, **part)
            state.hits = loss_fn.correct()  # before a callback's forward
            model.backward(loss_fn.backward(), need_dx=False)
            state.step += 1
            for callback in callbacks:
                callback.after_backward(state)  # AllReduce first: sums, over processes
            optimizer.step()

            state.seen += len(batch)
            state.total_loss += state.loss * len(batch)
            state.correct = tally(state.correct, state.hits)
            for callback in callbacks:
                callback.on_step_end(state)
            if state.stop:
                break

        accuracy = None if state.correct is None else state.correct / state.seen
        state.record = {"epoch": state.epoch, "step": state.step, "lr": optimizer.lr,
                        **scores("train", state.total_loss / state.seen, accuracy)}
        if val is not None:
            state.record.update(scores("val", *evaluate(model, loss_fn, *val, comm=comm)))
        state.record["seconds"] = time.perf_counter() - started
        state.history.append(state.record)
        for callback in callbacks:
            callback.on_epoch_end(state)
    for callback in callbacks:
        callback.on_fit_end(state)
    import pandas as pd  # here: importing framework (and datasets, which uses it) must not load it
    return pd.DataFrame(state.history)


def steps_per_epoch(n, batch_size, drop_last=False):
    """Batches (optimizer steps) in an epoch of n examples: the full ones, and a last, smaller one
    unless drop_last."""
    return n // batch_size if drop_last else -(-n // batch_size)


def check_batches(model, example_shape, n, batch_size, drop_last=False,
                  names=("batch_size", "drop_last=True")):
    """Refuses (ValueError) an epoch of n examples of example_shape, in batches of batch_size,
    that training cannot take: no batch at all (drop_last, with fewer than batch_size examples),
    or a batch some layer refuses (Layer.check_training_batch: BatchNorm and a last batch of one).
    names: how the caller spells batch_size and drop_last=True, for the remedy."""
    size, drop = names
    if drop_last and n < batch_size:
        raise ValueError(f"{n} training examples make no full batch of {batch_size}, and {drop} "
                         f"leaves out the incomplete one: an epoch would have no step; use a "
                         f"{size} of at most {n}")
    shapes = [tuple(example_shape), *model.output_shapes(example_shape)]

    def refusal(batch):
        """The first layer's refusal of a training batch of this many examples, else None."""
        for layer, shape in zip(model.layers, shapes):
            try:
                layer.check_training_batch(batch, shape)
            except ValueError as e:
                return str(e)
        return None

    full, last = min(batch_size, n), 0 if drop_last else n % batch_size
    if (problem := refusal(full)) is not None:
        raise ValueError(f"{problem}. " + (f"Use a larger {size} (it is {batch_size})"
                                           if full == batch_size else
                                           f"Give more training examples than {n}"))
    if last and (problem := refusal(last)) is not None:
        def fits(b):  # every batch of an epoch in batches of b, the last included
            return refusal(b) is None and (n % b == 0 or refusal(n % b) is None)
        nearest = next((b for step in range(1, n) for b in (batch_size - step, batch_size + step)
                        if 1 <= b <= n and fits(b)), None)
        raise ValueError(f"{problem}. {n} training examples in batches of {batch_size} leave a "
                         f"last batch of {last} each epoch: set {drop} to leave it out"
                         + (f", or use a {size} that leaves a larger one or none, such as "
                            f"{nearest}" if nearest else "") + ".")


def default_callbacks():
    """What fit runs when given no callbacks: the non-finite check and a progress display."""
    return [CheckFinite(), ProgressBar()]
