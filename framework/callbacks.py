"""What a run does besides the step itself, hooked into fit from outside.

A callback has any of these hooks, each given fit's State (framework.loop.State):
    on_fit_start    before the first epoch (after a resume's restore)
    on_epoch_start  before an epoch's first batch
    on_batch_start  once a batch is gathered (state.x, state.t), before forward: it may replace
                    state.x (data augmentation)
    after_backward  once every gradient of a step is computed, before the optimizer's step
    on_step_end     after the optimizer's step
    on_epoch_end    after the epoch's record (train and val metrics) is made: add to it, save, stop
    on_fit_end      after the last epoch
fit calls them in the order the callbacks are given. A hook that does nothing costs a call.
"""
import math

import numpy as np
from tqdm import tqdm

from .bias_log import BiasLines, bias_report
from .broadcast import reuse
from .checkpoint import save
from .evaluation import evaluate, scores


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; says at which step and where."""


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_fit_start(self, state):
        pass

    def on_epoch_start(self, state):
        pass

    def on_batch_start(self, state):
        pass

    def after_backward(self, state):
        pass

    def on_step_end(self, state):
        pass

    def on_epoch_end(self, state):
        pass

    def on_fit_end(self, state):
        pass


class LRSchedule(Callback):
    """Sets optimizer.lr = schedule(s) before each step s (counted from 0 over the whole run);
    an lr that is NaN or infinite (a step schedule's gamma > 1 compounded) stops the run with
    NonFiniteError before it reaches the weights."""

    def __init__(self, schedule):
        self.schedule = schedule

    def after_backward(self, state):
        lr = self.schedule(state.step - 1)  # state.step counts the step being taken
        if not math.isfinite(lr):
            raise NonFiniteError(f"step {state.step} (epoch {state.epoch}): the learning-rate "
                                 f"schedule gives lr {lr}")
        state.optimizer.lr = lr


class StopAfter(Callback):
    """Ends the run after `steps` optimizer steps in all (the book trains for iterations, not
    epochs)."""

    def __init__(self, steps):
        self.steps = steps

    def on_fit_start(self, state):
        state.stop = state.step >= self.steps

    def on_step_end(self, state):
        if state.step >= self.steps:
            state.stop = True


class RandomShift(Callback):
    """Data augmentation: each training image (N, C, H, W) is moved by a random whole number of
    pixels, -pixels..pixels down and across (from `rng`), what moves in is 0. Each epoch then
    shows the network slightly different digits, so it learns less of where a stroke sits.

    Vectorised over the examples that share a shift: at most (2 pixels + 1)² copies a batch.
    """

    def __init__(self, pixels, rng):
        self.pixels, self.rng, self.shifted = pixels, rng, None

    def on_batch_start(self, state):
        x = state.x
        if x.ndim != 4:
            raise ValueError(f"RandomShift: needs images (N, C, H, W), got a batch of shape "
                             f"{x.shape}")
        p = self.pixels
        shifts = self.rng.integers(-p, p + 1, size=(len(x), 2))
        self.shifted = out = reuse(self.shifted, x.shape, x.dtype)
        out[...] = 0
        h, w = x.shape[2:]
        for dy in range(-p, p + 1):
            for dx in range(-p, p + 1):
                index = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
                if len(index):  # y[i + dy, j + dx] = x[i, j] where both lie inside the image
                    out[index, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                        x[index, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        state.x = out


class Evaluate(Callback):
    """Adds `<name>_loss` and `<name>_acc` to the epoch's record for each split {name: (x, t)},
    every `every` epochs and after the last one (no `_acc` when the loss gives no accuracy)."""

    def __init__(self, splits, every=1, batch_size=250):
        self.splits, self.every, self.batch_size = splits, every, batch_size

    def on_epoch_end(self, state):
        if state.epoch % self.every == 0 or state.epoch == state.epochs:
            for name, (x, t) in self.splits.items():
                state.record.update(scores(name, *evaluate(state.model, state.loss_fn, x, t,
                                                           self.batch_size, comm=state.comm)))


class EarlyStopping(Callback):
    """Stops once val_acc has not improved for `patience` evaluations (ties are no improvement).

    history: the records of epochs run before this fit (when resuming), so a resumed run
    decides exactly as the uninterrupted one would.
    """

    def __init__(self, patience, history=()):
        self.patience = patience
        self.accuracies = [r["val_acc"] for r in history if "val_acc" in r]
        self.stopped_early = False

    def patience_used_up(self):
        if not self.accuracies:
            return False
        best = int(np.argmax(self.accuracies))  # the first best
        return len(self.accuracies) - 1 - best >= self.patience

    def on_fit_start(self, state):
        state.stop = self.stopped_early = self.patience_used_up()

    def on_epoch_end(self, state):
        if "val_loss" in state.record and "val_acc" not in state.record:
            raise ValueError(f"EarlyStopping watches val_acc, and {type(state.loss_fn).__name__} "
                             "gives no accuracy (its targets name no class)")
        if "val_acc" in state.record:
            self.accuracies.append(state.record["val_acc"])
        if state.epoch < state.epochs and self.patience_used_up():
            state.stop = self.stopped_early = True


class CheckFinite(Callback):
    """Stops with NonFiniteError when a step's loss or a gradient is NaN or infinite.

    Each step checks the loss and the bias gradients only: a bias gradient sums its layer's dY
    (sum_to), so a NaN or inf anywhere in dY shows in the small db. Only on a failure are all
    gradients checked, to name the layer nearest the loss whose gradient went bad first, and the
    input batch, which is the culprit when it holds NaN or inf itself.
    """

    def on_fit_start(self, state):
        self.backprop_order = state.model.parameters()[::-1]
        self.sentinels = [p for p in self.backprop_order if p.data.ndim == 1] or self.backprop_order

    def after_backward(self, state):
        if math.isfinite(state.loss) and all(np.isfinite(p.grad).all() for p in self.sentinels):
            return
        where = f"step {state.step} (epoch {state.epoch}): loss {state.loss}; "
        bad_rows = np.flatnonzero(~np.isfinite(state.x.reshape(len(state.x), -1)).all(axis=1))
        if len(bad_rows):
            raise NonFiniteError(where + f"the input batch holds NaN or inf (in {len(bad_rows)} "
                                 f"of its {len(state.x)} examples, the first at batch row "
                                 f"{bad_rows[0]}): the data, not the model, is at fault")
        culprit = next((p.name for p in self.backprop_order if not np.isfinite(p.grad).all()), None)
        raise NonFiniteError(where + (f"first non-finite gradient in {culprit}" if culprit
                                      else "all gradients finite"))

    def on_epoch_end(self, state):
        bad = [key for key, value in state.record.items()
               if key.endswith("_loss") and not math.isfinite(value)]
        if bad:  # the steps' own losses were finite: it is the model at the epoch's end
            raise NonFiniteError(f"epoch {state.epoch}: {', '.join(bad)} is "
                                 f"{state.record[bad[0]]} after the epoch's last step")


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss and accuracy (bar=None: only on a terminal),
    and with lines=True one line per epoch, printed whether or not a bar is shown. Of the
    processes of a data-parallel run, rank 0 alone shows them."""

    def __init__(self, bar=None, lines=True):
        self.bar, self.lines, self.current = bar, lines, None

    def on_fit_start(self, state):
        if state.comm.rank != 0:
            self.bar, self.lines = False, False

    def on_epoch_start(self, state):
        self.current = tqdm(total=state.steps_per_epoch, desc=f"epoch {state.epoch}/{state.epochs}",
                            leave=False, disable=None if self.bar is None else not self.bar)

    def on_step_end(self, state):
        self.current.update()
        if state.step % 25 == 0:
            shown = {"loss": f"{state.total_loss / state.seen:.4f}"}
            if state.correct is not None:
                shown["acc"] = f"{state.correct / state.seen:.4f}"
            self.current.set_postfix(shown, refresh=False)

    def on_epoch_end(self, state):
        self.current.close()
        if self.lines:
            print(epoch_line(state.record, state.epochs), flush=True)


class BiasLog(Callback):
    """The bias-gradient report (framework.bias_log) on the first batch of every epoch
    (every_epoch) and every `every` steps; the step's records (one per bias layer) go to `log`
    (default: print them, in full the first time, then one line a step)."""

    def __init__(self, every_epoch=True, every=0, log=None):
        self.every_epoch, self.every = every_epoch, every
        self.log = log if log is not None else self.print
        self.lines = BiasLines()

    def after_backward(self, state):
        if (self.every_epoch and state.seen == 0) or (self.every and state.step % self.every == 0):
            records = bias_report(state.model, state.loss_fn, state.x, state.t, state.step,
                                  state.epoch, comm=state.comm)
            if records:
                self.log(records)

    def print(self, records):
        tqdm.write(self.lines(records))


class Checkpoint(Callback):
    """Saves model, optimizer, epoch, history and the generator's state to `path` at the start
    and after every epoch (framework.save), but only while every weight is finite.

    rng: the run's generator, so a resumed run draws what the uninterrupted one would.
    history: the records of epochs run before this fit (when resuming).
    best: a second path, rewritten whenever val_acc beats every earlier epoch's.
    extra: a function returning more to store ({name: value}), called at each save.
    A data-parallel run (fit's comm) gives it in every process: rank 0 alone writes, recording
    the number of processes (`processes`) and, with process_rng (each process's own generator,
    framework.comm.process_rng), every process's state in rank order (`process_rngs`).
    """

    def __init__(self, path, rng=None, history=(), best=None, extra=None, process_rng=None):
        self.path, self.rng, self.previous = path, rng, list(history)
        self.best, self.extra, self.process_rng = best, extra, process_rng
        self.best_acc = max((r["val_acc"] for r in self.previous if "val_acc" in r), default=None)
        self.state = self.saved_epoch = self.process_rngs = self.complete = None
        self.best_due = False  # an epoch beat the best, and best.npz does not hold it yet

    def on_fit_start(self, state):
        self.state = state
        self.complete = self.epochs_done()
        self.gather_process_rngs()
        self.save(self.path)

    def on_epoch_end(self, state):
        acc = state.record.get("val_acc")
        if (self.best is not None and acc is not None
                and (self.best_acc is None or acc > self.best_acc)):
            self.best_acc, self.best_due = acc, True
        self.complete = self.epochs_done()  # every callback before this one has ended the epoch
        self.gather_process_rngs()
        self.save(self.path)
        self.save_best()

    def save_best(self):
        """best.npz, when an epoch beat the best and it is not written yet."""
        if self.best_due:
            self.save(self.best, keep=False)
            self.best_due = False

    def epochs_done(self):
        return self.state.history[-1]["epoch"] if self.state.history else self.state.epoch

    def gather_process_rngs(self):
        """Every process's own generator state, on rank 0, at the same moment in each: kept for
        the saves until the next epoch ends (a save after Ctrl-C cannot wait for the others)."""
        if self.process_rng is not None:
            self.process_rngs = self.state.comm.gather(self.process_rng.bit_generator.state)

    def save(self, path, keep=True):
        """Writes the checkpoint of the last completed epoch, unless a weight is NaN or infinite."""
        if self.state.comm.rank != 0 or not all(np.isfinite(p.data).all()
                                                 for p in self.state.model.parameters()):
            return
        extra = {"rng": self.rng.bit_generator.state} if self.rng is not None else {}
        extra["processes"] = self.state.comm.size
        if self.process_rngs is not None:
            extra["process_rngs"] = self.process_rngs
        extra.update(self.extra() if self.extra is not None else {})
        save(path, self.state.model, self.state.optimizer, epoch=self.epochs_done(),
             history=self.previous + self.state.history, **extra)
        if keep:
            self.saved_epoch = self.epochs_done()

    def ensure_saved(self):
        """After Ctrl-C: the last complete epoch must be on disk (the signal may have hit its
        save, or best.npz's). An epoch is complete once every callback before this one has ended
        it: one that Ctrl-C stopped earlier (in its test evaluation, before its rows were
        written) is not saved, and a resume runs it again from the epoch before."""
        if self.state is None:
            return
        if self.saved_epoch != self.complete:
            self.save(self.path)
        if self.complete == self.epochs_done():  # a resume takes this epoch's best as known
            self.save_best()


def epoch_line(r, epochs):
    """One line per epoch (val and test: loss, then accuracy, when the loss gives one):
    `epoch 3/10  train loss 0.0712 acc 97.81%  val 0.0812 97.60%  lr 6.5e-04  1.4 s`."""
    line = f"epoch {r['epoch']}/{epochs}  train loss {r['train_loss']:.4f}"
    line += f" acc {r['train_acc']:.2%}" if "train_acc" in r else ""
    for split in ("val", "test"):
        if f"{split}_loss" in r:
            line += f"  {split} {r[f'{split}_loss']:.4f}"
            line += f" {r[f'{split}_acc']:.2%}" if f"{split}_acc" in r else ""
    return line + f"  lr {r['lr']:.1e}  {r['seconds']:.1f} s"
