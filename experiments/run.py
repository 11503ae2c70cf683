"""One experiment in one folder, as a job (run_one): data, the run's objects from the config,
then framework.fit with the callbacks that write the run's files (see folder.py for what a run
folder holds)."""
import csv
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import framework as F
from framework.bias_log import BiasLines
from framework.callbacks import epoch_line
from framework.comm import LOCAL, process_rng

from .bias_sum import BiasSumSample
from .build import build_training, load_data, parameter_count
from .folder import Log, claim_run_folder, save_config
from .plots import plot_run, read_csv
from .processes import set_blas_threads
from .resume import restore, trim_csv
from .summary import summarize, write_summary
from .workers import BLAS_VARIABLES
from .yamlfile import dump

METRIC_COLUMNS = ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                  "test_loss", "test_acc", "seconds"]
BIAS_COLUMNS = ["step", "epoch", "layer", "batch_size", "positions", "dY_shape", "db_shape",
                "db_norm", "sum_norm", "sum_check", "ones_check", "numeric_rel_err", "db_sum",
                "identity_check", "top_class", "top_db", "processes", "partial_norms"]


class Interrupted(Exception):
    """Ctrl-C stopped the run; `epoch` is the last completed epoch, checkpointed in `folder`.

    complete: training had finished and only `unwritten` (summary, plots) was left to write:
    it may not have been written.
    resume: the folder `--resume` continues (a sweep's, when `folder` is one of its runs);
    run: which sweep run, as the message names it (None for a run of its own); others: which
    other runs of the sweep were stopped too; waiting: which had not started; done: how many
    were done, for a stop between runs.
    """

    def __init__(self, folder, epoch, complete=False, unwritten="", resume=None, run=None,
                 others=(), waiting=(), done=0):
        super().__init__("interrupted" + (f" after epoch {epoch}" if epoch is not None else ""))
        self.folder, self.epoch, self.complete, self.unwritten = folder, epoch, complete, unwritten
        self.resume, self.run, self.others = resume if resume is not None else folder, run, others
        self.waiting, self.done = waiting, done


class BiasCSV:
    """Receives the bias log's records of a step: appends them to bias_grads.csv and, unless
    quiet, logs them: in full with a key at the first logged step, then one line a step."""

    def __init__(self, folder, log, print_lines):
        self.path, self.log = folder / "bias_grads.csv", log
        self.lines = BiasLines() if print_lines else None

    def __call__(self, records):
        if self.lines is not None:
            self.log(self.lines(records))
        new = not self.path.exists()
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, BIAS_COLUMNS, extrasaction="ignore", lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerows(records)


class StepsCSV(F.Callback):
    """steps.csv: every step's training loss, accuracy on its batch and learning rate (for
    per-iteration plots, such as the book's optimizer comparison), appended at the end of each
    epoch."""

    COLUMNS = ["step", "epoch", "loss", "acc", "lr"]

    def __init__(self, folder):
        self.path, self.rows = folder / "steps.csv", []
        self.counted = (0, 0)  # fit's running (seen, correct) at the last step

    def on_epoch_start(self, state):
        self.counted = (0, 0)  # fit starts its running totals again each epoch

    def on_step_end(self, state):
        seen, correct = state.seen - self.counted[0], state.correct - self.counted[1]
        self.counted = (state.seen, state.correct)
        self.rows.append((state.step, state.epoch, state.loss, correct / seen, state.optimizer.lr))

    def on_epoch_end(self, state):
        new = not self.path.exists()
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            if new:
                writer.writerow(self.COLUMNS)
            writer.writerows(self.rows)
        self.rows = []


class MetricsCSV(F.Callback):
    """Rewrites metrics.csv (every epoch so far, resumed ones included) after each epoch."""

    def __init__(self, folder, history=()):
        self.path, self.previous = folder / "metrics.csv", list(history)

    def on_fit_start(self, state):
        self.write(state)

    def on_epoch_end(self, state):
        self.write(state)

    def write(self, state):
        self.records = self.previous + state.history
        table = pd.DataFrame(self.records)
        table = table.reindex(columns=[c for c in METRIC_COLUMNS if c in table.columns])
        table.to_csv(self.path, index=False)


class StopFile(F.Callback):
    """Ends the run as Ctrl-C does (KeyboardInterrupt: the last completed epoch is saved) once
    the file `path` exists, looked for at most every half second; how a sweep stops its runs in
    worker processes and on other machines."""

    def __init__(self, path):
        self.path, self.next_look = path, 0.0

    def on_fit_start(self, state):
        self.look()

    def on_step_end(self, state):
        self.look()

    def look(self):
        now = time.monotonic()
        if now >= self.next_look:
            self.next_look = now + 0.5
            if os.path.exists(self.path):
                raise KeyboardInterrupt


class EpochLog(F.Callback):
    """Logs one line per epoch (after the first, a note on why train and val differ: what the
    model does differently while training is named only when the model has it)."""

    def __init__(self, log):
        self.log, self.noted = log, False

    def on_epoch_end(self, state):
        self.log(epoch_line(state.record, state.epochs))
        if not self.noted:
            self.log(self.note(state.model))
            self.noted = True

    @staticmethod
    def note(model):
        training = ["running means over the epoch"]
        if any(isinstance(layer, F.Dropout) and layer.p > 0 for layer in model.layers):
            training.append("dropout on")
        if any(isinstance(layer, F.BatchNorm) for layer in model.layers):
            training.append("batchnorm on batch statistics")
        return f"      (train: {', '.join(training)}; val and test: the model at its end)"


def blas_line():
    """numpy's version and the BLAS it was built with, and what the environment tells BLAS:
    OPENBLAS_CORETYPE (only ever the user's) and the thread counts (the user's, or those a
    sweep's worker set for itself)."""
    line = f"numpy {np.__version__}"
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        line += f", BLAS {blas['name']} {blas.get('version', '')}".rstrip()
    except (TypeError, KeyError):  # numpy before 1.26 has no mode="dicts"
        pass
    settings = [f"{key}={os.environ[key]}" for key in ("OPENBLAS_CORETYPE", *BLAS_VARIABLES)
                if key in os.environ]
    return line + (f" ({', '.join(settings)})" if settings else "")


def run_one(config, folder, resume=False, origin=None, console="off", stop=None, comm=None):
    """Runs one experiment (or, with resume, continues it) in `folder`; returns its summary.

    A run is a job: it takes and returns plain data, so it runs the same in this process, in a
    worker process or on another machine. It holds the folder's lock while it works, writes its
    own log.txt and every other file of the folder (see folder.py), and a divergence is a
    result (status "diverged"), not an error. Ctrl-C raises Interrupted once the last completed
    epoch is saved.

    origin: where the config came from (a file, --set overrides), logged and written on
    config.yaml's first line (None on a resume that changes nothing: config.yaml stays as it
    is). console: "off" (a sweep's run: log.txt only), "quiet", "normal" or "verbose" (the
    config too). stop: a file whose appearance ends the run as Ctrl-C does (how a sweep stops
    runs in other processes and on other machines). A run that fails before its first
    checkpoint in a folder that was empty leaves no folder.
    comm: the processes training this one run together (framework.comm; mpiexec -n K train.py),
    which all call run_one: rank 0 owns the folder (its lock, its log and every file), the others
    write nothing, not even to the console, and return only the status.
    """
    comm = LOCAL if comm is None else comm
    if comm.rank != 0:
        set_blas_threads(comm)
        summary = train(config, folder, Log(console="off"), resume, False, stop, comm)
        # Its part is over; rank 0 still draws and writes, and reports a Ctrl-C. One taken here
        # would end this process, and mpiexec the job, under rank 0's work and words.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return summary
    folder = Path(folder)
    handle, empty = claim_run_folder(folder, resume)
    log = Log(folder / "log.txt", console)
    try:
        log.detail(blas_line())
        log(f"{'resuming' if resume else 'run'}: {folder}")
        if comm.size > 1:
            log(set_blas_threads(comm))
        if origin is not None:
            log(f"config: {origin}")
            save_config(config, folder, f"resolved config{', resumed' if resume else ''} of "
                                        f"{origin}")
        log.detail(f"--- resolved config\n{dump(config).rstrip()}\n---")
        summary = train(config, folder, log, resume, progress=config["logging"]["progress"]
                        if console != "off" else False, stop=stop, comm=comm)
        conclude(folder, summary, config, log)
        if summary["status"] == "diverged":
            log(f"diverged: {summary['error']}", screen=False)  # the caller says what to do
        else:
            log(result_line(summary), always=True)
            log(f"run folder: {folder}", always=True)
            if summary["test_accuracy"] is not None:  # --eval evaluates on the test set
                log(f"evaluate it: python train.py --eval {folder}", always=True)
        return summary
    except BaseException as e:  # the console hears it from the caller; the log keeps it too
        log(f"stopped: {type(e).__name__}: {e}".rstrip(": "), screen=False)
        log.close()
        if empty and not (folder / "checkpoint.npz").exists():
            # A run that never started leaves no folder; removed while the lock is still ours,
            # so never a folder another process has started to use.
            shutil.rmtree(folder, ignore_errors=True)
            if console != "off":
                print(f"(removed {folder}: the run never started)", file=sys.stderr)
        raise
    finally:
        log.close()
        handle.close()


def result_line(summary):
    """`finished: test accuracy 98.43% (best val 98.50% at epoch 9) after 10 epochs (24.1 s)`."""
    r = summary
    best = (f" (best val {r['best_val_accuracy']:.2%} at epoch {r['best_val_epoch']})"
            if r["best_val_accuracy"] is not None else "")
    test = (f"test accuracy {r['test_accuracy']:.2%}" if r["test_accuracy"] is not None
            else "no test set")
    epochs = f"{r['epochs']} epoch" + ("s" if r["epochs"] != 1 else "")
    return f"{r['status']}: {test}{best} after {epochs} ({r['train_seconds']:.1f} s)"


def train(config, folder, log, resume, progress, stop, comm=LOCAL):
    """The run itself: data, the run's objects, fit with the callbacks that write the folder's
    files (rank 0's only, in a run over processes), the summary (of the others: the status)."""
    started = time.perf_counter()
    training, writes = config["training"], comm.rank == 0
    rng = np.random.default_rng(training["seed"])  # the same in every process: weights, batches
    own = process_rng(training["seed"], comm)  # each process's dropout masks and shifts, if several
    if comm.rank != 0:  # rank 0 gets the data first (downloads them once for all) ...
        comm.barrier()
    data = load_data(config, rng, progress=progress, log=log)
    if comm.rank == 0:  # ... and the others read them from its cache
        comm.barrier()
    log(f"      train {len(data.train[0]):,}  val {0 if data.val is None else len(data.val[0]):,}  "
        f"test {0 if data.test is None else len(data.test[0]):,} examples of shape "
        f"{data.train[0].shape[1:]}")
    model, schedule, optimizer, steps_per_epoch = build_training(config, data.train, rng, own)
    log(model.summary(compact=True))

    start, history, earlier_seconds = 0, [], 0.0
    if resume:
        start, history = restore(folder, model, optimizer, rng, config, comm, own)
        if start == training["epochs"]:
            log(f"this run has done all {start} epochs: nothing to resume (its summary is redone)")
        earlier_seconds = float(F.load(folder / "checkpoint.npz").get("wall_seconds", 0.0))
        if writes:
            trim_csv(folder / "bias_grads.csv", start, BIAS_COLUMNS)
            trim_csv(folder / "steps.csv", start, StepsCSV.COLUMNS)
        log(f"resuming {folder} after epoch {start} of {training['epochs']}")

    every = training["eval_every"]
    splits = {"test": data.test} if every == 1 else {"val": data.val, "test": data.test}
    checkpoint = F.Checkpoint(folder / "checkpoint.npz", rng=rng, history=history,
                              best=folder / "best.npz" if data.val is not None else None,
                              extra=lambda: {"config": config, "wall_seconds":
                                             earlier_seconds + time.perf_counter() - started},
                              process_rng=own)
    metrics = MetricsCSV(folder, history)
    early = F.EarlyStopping(training["patience"], history) if training["patience"] else None
    max_steps = training["max_steps"]
    # cut short: max_steps ends the run before the planned epochs do
    cut = max_steps is not None and max_steps < training["epochs"] * steps_per_epoch
    callbacks = [
        *([F.RandomShift(shift, own or rng)] if (shift := config["data"]["augment_shift"])
          else []),
        F.LRSchedule(schedule),  # the learning rate's one owner: sets it before every step
        F.CheckFinite(),
        BiasSumSample(folder),  # before BiasLog, whose float64 check runs forward again
        F.BiasLog(training["bias_every_epoch"], training["bias_every"],
                  log=BiasCSV(folder, log, config["logging"]["bias_lines"])),
        F.ProgressBar(progress, lines=False),
        F.Evaluate({name: split for name, split in splits.items() if split is not None},
                   every=every),
        *([StepsCSV(folder), metrics] if writes else []),
        checkpoint,  # epoch 0 (or the restored one) too: a NaN in epoch 1 still leaves a good state
        *([EpochLog(log)] if writes else []),
        *([early] if early else []),
        *([F.StopAfter(max_steps)] if max_steps else []),
        *([StopFile(stop)] if stop else []),
    ]
    loss_fn = F.LOSSES[config["loss"]]()  # the config's choice (framework/losses.py)
    # Overflow shows up as NonFiniteError with its step and layer; numpy's warnings would only
    # say the same thing less precisely, in the middle of the log.
    try:  # over processes, a Ctrl-C stops every one of them at the same step
        with np.errstate(over="ignore", invalid="ignore"), comm.deferred_interrupts():
            F.fit(model, loss_fn, optimizer, data.train, epochs=training["epochs"],
                  batch_size=config["data"]["batch_size"], rng=rng,
                  shuffle=config["data"]["shuffle"], drop_last=config["data"]["drop_last"],
                  val=data.val if every == 1 else None, callbacks=callbacks, start_epoch=start,
                  comm=comm)
    except KeyboardInterrupt:
        checkpoint.ensure_saved()
        raise Interrupted(folder, checkpoint.saved_epoch) from None
    except F.NonFiniteError as e:  # every process stops at the same step: it sees the same sums
        if not writes:
            return {"status": "diverged"}
        return finish(metrics.records, model, earlier_seconds, started, "diverged",
                      error=str(e), last_good_epoch=checkpoint.saved_epoch)
    status = "finished"
    if cut:
        status = f"stopped at step {max_steps} (training.max_steps)"
    if early is not None and early.stopped_early:
        status = "stopped early"
        log(f"early stopping: validation accuracy has not improved for {training['patience']} "
            "evaluations")
    if not writes:
        return {"status": status}
    return finish(metrics.records, model, earlier_seconds, started, status)


def finish(history, model, earlier_seconds, started, status, **more):
    """The run's summary. wall_seconds adds the time of the processes that ran this run before a
    resume; `more` (a diverged run's error and the epoch of its last finite checkpoint) joins
    it."""
    summary = summarize(history, status)
    summary.update(parameters=parameter_count(model),
                   wall_seconds=round(earlier_seconds + time.perf_counter() - started, 3), **more)
    return summary


def conclude(folder, summary, config, log):
    """The run's pictures, from its files, then summary.json, once train() has returned.

    The summary comes last: a run folder with one is done (a sweep's --resume passes it by), so
    Ctrl-C before it leaves a run that --resume completes. The pictures wait for train() to
    return because matplotlib's parsers leave reference cycles that hold the frames below them
    until Python's cycle collector runs: drawn inside train(), they kept the run's data alive
    into the next run of a sweep's worker."""
    try:
        if config["logging"]["plots"]:
            metrics = read_csv(folder / "metrics.csv")
            plot_run(folder, [] if metrics is None else metrics.to_dict("records"), config, log)
        write_summary(folder, summary)
    except KeyboardInterrupt:
        raise Interrupted(folder, summary.get("last_good_epoch", summary["epochs"]),
                          complete=True, unwritten="summary.json and the plots") from None
