"""The training loop shared by train.py, the configs and library users."""
import time

import numpy as np
import pandas as pd
from tqdm import tqdm

from .bias_log import bias_report


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; says at which step and where."""


def evaluate(model, loss_fn, x, t, batch_size=1000):
    """(mean loss, accuracy) of the model in eval mode, in batches to bound memory."""
    total_loss, correct = 0.0, 0
    for first in range(0, len(x), batch_size):
        logits = model.forward(x[first:first + batch_size], train=False)
        total_loss += loss_fn.forward(logits, t[first:first + batch_size]) * len(logits)
        correct += int((logits.argmax(axis=1) == loss_fn.labels).sum())
    return total_loss / len(x), correct / len(x)


def first_nonfinite(params):
    """Name of the first of `params` whose gradient is not finite, else None."""
    for p in params:
        if not np.isfinite(p.grad).all():
            return p.name
    return None


def fit(model, loss_fn, optimizer, train, *, epochs, batch_size, rng, val=None, test=None,
        lr_schedule=None, log=None, bias_every_epoch=True, bias_every=0, start_epoch=0,
        history=(), eval_batch_size=1000, progress=None, shuffle=True, eval_every=1, should_stop=None):
    """Trains for epochs start_epoch+1 .. epochs and returns the history as a DataFrame.

    train, val, test: (x, t) pairs. Each epoch draws a fresh permutation of the training set
    from `rng` (true epochs). lr_schedule(step) -> lr sets the rate before each step. `log`
    receives dicts: {"event": "bias", ...} for bias-gradient records (the first batch of each
    epoch when bias_every_epoch, and every `bias_every` steps) and {"event": "epoch", ...}
    with the epoch's metrics. history: earlier epochs' records, when resuming.
    progress: None shows a bar only on a terminal, False never. shuffle=False keeps the file
    order. val and test are evaluated every `eval_every` epochs and after the last one.
    should_stop(history) -> bool is asked before each epoch (early stopping); asking the
    history, not counting in a closure, keeps a resumed run deciding as the original would.
    """
    x_train, t_train = train
    n = len(x_train)
    steps_per_epoch = -(-n // batch_size)
    step = start_epoch * steps_per_epoch
    history = list(history)
    log = log or (lambda record: None)
    backprop_order = model.parameters()[::-1]  # so an error names the layer nearest the loss
    # Every step checks the loss and the bias gradients only: db = Σ_n dY_n, so a NaN or inf
    # anywhere in a layer's dY shows in its small db (3 µs a step, where all gradients cost 22).
    sentinels = [p for p in backprop_order if p.data.ndim == 1] or backprop_order
    # Batches are gathered into one array reused every step, for the reason in Affine.backward.
    # take(mode="clip"): under the default "raise", numpy gathers into a temporary and copies
    # that into `out` (batch 128: 40 -> 29 us). A permutation's indices are never out of range.
    x_batch = np.empty((batch_size,) + x_train.shape[1:], x_train.dtype)
    for epoch in range(start_epoch + 1, epochs + 1):
        if should_stop is not None and should_stop(history):
            break
        started = time.perf_counter()
        order = rng.permutation(n) if shuffle else np.arange(n)
        total_loss, correct = 0.0, 0
        bar = tqdm(range(0, n, batch_size), desc=f"epoch {epoch}/{epochs}", leave=False,
                   disable=None if progress is None else not progress)
        for first in bar:
            batch = order[first:first + batch_size]
            x, t = np.take(x_train, batch, axis=0, out=x_batch[:len(batch)], mode="clip"), t_train[batch]
            if lr_schedule is not None:
                optimizer.lr = lr_schedule(step)

            logits = model.forward(x, train=True)
            loss = loss_fn.forward(logits, t)
            model.backward(loss_fn.backward(), need_dx=False)
            step += 1

            if not np.isfinite(loss) or first_nonfinite(sentinels):
                where = first_nonfinite(backprop_order)
                raise NonFiniteError(f"step {step} (epoch {epoch}): loss {loss}; "
                                     + (f"first non-finite gradient in {where}" if where
                                        else "all gradients finite"))
            if (bias_every_epoch and first == 0) or (bias_every and step % bias_every == 0):
                for record in bias_report(model, loss_fn, x, t, step, epoch):
                    log(record)
            optimizer.step()

            total_loss += loss * len(x)
            correct += int((logits.argmax(axis=1) == loss_fn.labels).sum())
            if step % 25 == 0:
                bar.set_postfix(loss=f"{total_loss / (first + len(x)):.4f}",
                                acc=f"{correct / (first + len(x)):.4f}", refresh=False)
        bar.close()

        record = {"epoch": epoch, "step": step, "lr": optimizer.lr,
                  "train_loss": total_loss / n, "train_acc": correct / n}
        evaluate_now = epoch % eval_every == 0 or epoch == epochs
        for split, data in (("val", val), ("test", test)):
            if data is not None and evaluate_now:
                record[f"{split}_loss"], record[f"{split}_acc"] = evaluate(model, loss_fn, *data, eval_batch_size)
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        log({"event": "epoch", **record})
    return pd.DataFrame(history)
