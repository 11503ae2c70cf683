"""One experiment in one folder: the log, the per-epoch checkpoint, resume, the files, the plots.

A run folder holds config.yaml (resolved), log.txt, metrics.csv, bias_grads.csv,
checkpoint.npz (after every epoch), summary.json and, with matplotlib, curves.png and
bias_grads.png.
"""
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

import framework as F

from .build import build_model, build_optimizer, build_schedule, load_data, parameter_count
from .config import ConfigError, dump

METRIC_COLUMNS = ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                  "test_loss", "test_acc", "seconds"]
BIAS_COLUMNS = ["step", "epoch", "layer", "batch_size", "dY_shape", "db_shape", "db_norm", "sum_check",
                "ones_check", "numeric_rel_err", "db_sum", "identity_check", "top_class", "top_db"]


class Interrupted(Exception):
    """Ctrl-C stopped the run; `epoch` is the last completed epoch, checkpointed in `folder`."""

    def __init__(self, folder, epoch):
        super().__init__(f"interrupted after epoch {epoch}")
        self.folder, self.epoch = folder, epoch


class Diverged(Exception):
    """The loss or a gradient became NaN/inf; the checkpoint of `epoch` in `folder` is the last good one."""

    def __init__(self, message, folder, epoch):
        super().__init__(message)
        self.folder, self.epoch = folder, epoch


class Log:
    """Prints run messages (unless quiet) and appends them to every open log file."""

    def __init__(self, quiet=False):
        self.quiet, self.files = quiet, []

    def __call__(self, message="", always=False):
        if always or not self.quiet:
            print(message, flush=True)
        for f in self.files:
            f.write(message + "\n")
            f.flush()

    def open(self, path):
        """Also write to `path` until close(path)."""
        self.files.append(open(path, "a", encoding="utf-8"))

    def close(self):
        """Stops writing to the most recently opened file."""
        self.files.pop().close()


def new_run_folder(runs_dir, name):
    """A fresh folder runs_dir/<date>-<time>-<name> (suffixed -2, -3 ... when taken)."""
    base = Path(runs_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir(parents=True)
    return folder


def claim_folder(out):
    """--out DIR: created if needed; refused when it already holds a run."""
    folder = Path(out)
    if (folder / "config.yaml").exists():
        raise ConfigError(f"--out {out}: this folder already holds a run. Continue it with "
                          f"`python train.py --resume {out}`, or pick another --out.")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_config(config, folder, note):
    """Writes the resolved config as folder/config.yaml, with where it came from as a comment."""
    (folder / "config.yaml").write_text(f"# {note}\n{dump(config)}", encoding="utf-8")


class Recorder:
    """fit's log hook: bias lines and bias_grads.csv, and after every epoch metrics.csv and the checkpoint."""

    def __init__(self, folder, log, config, model, optimizer, rng, history):
        self.folder, self.log, self.config = folder, log, config
        self.model, self.optimizer, self.rng = model, optimizer, rng
        self.history = list(history)
        self.saved_epoch = None

    def __call__(self, record):
        if record["event"] == "bias":
            self.bias(record)
        else:
            self.epoch({k: v for k, v in record.items() if k != "event"})

    def bias(self, record):
        if self.config["logging"]["bias_lines"]:
            self.log(F.format_bias(record))
        path = self.folder / "bias_grads.csv"
        new = not path.exists()
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, BIAS_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(record)

    def epoch(self, record):
        self.history.append(record)
        self.write_metrics()
        self.checkpoint()
        self.log(epoch_line(record, self.config["training"]["epochs"]))

    def write_metrics(self):
        table = pd.DataFrame(self.history)
        table = table.reindex(columns=[c for c in METRIC_COLUMNS if c in table.columns])
        table.to_csv(self.folder / "metrics.csv", index=False)

    def epochs_done(self):
        return self.history[-1]["epoch"] if self.history else 0

    def checkpoint(self):
        """Saves model, optimizer, generator state and history as they are after the last epoch."""
        F.save(self.folder / "checkpoint.npz", self.model, self.optimizer, epoch=self.epochs_done(),
               rng=self.rng.bit_generator.state, history=self.history)
        self.saved_epoch = self.epochs_done()

    def ensure_saved(self):
        """After Ctrl-C: the last completed epoch must be on disk (the signal may have hit its save)."""
        if self.saved_epoch != self.epochs_done():
            self.checkpoint()


def epoch_line(r, epochs):
    """One line per epoch for the log."""
    line = f"epoch {r['epoch']}/{epochs}  train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}"
    for split in ("val", "test"):
        if f"{split}_acc" in r:
            line += f"  {split} loss {r[f'{split}_loss']:.4f} acc {r[f'{split}_acc']:.4f}"
    return line + f"  lr {r['lr']:.2e}  {r['seconds']:.1f} s"


def stop_without_improvement(patience):
    """should_stop for fit: True once val_acc has not improved for `patience` evaluations."""
    def should_stop(history):
        accuracies = [r["val_acc"] for r in history if "val_acc" in r]
        if not accuracies:
            return False
        best = int(np.argmax(accuracies))  # the first best: ties are not improvements
        return len(accuracies) - 1 - best >= patience
    return should_stop


def trim_bias_csv(folder, epochs_done):
    """Drops bias rows logged after the checkpoint (the interrupted epoch is trained again)."""
    path = folder / "bias_grads.csv"
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f) if int(row["epoch"]) <= epochs_done]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, BIAS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def restore(folder, model, optimizer, rng):
    """Loads folder/checkpoint.npz into model, optimizer and rng; returns (epoch, history)."""
    path = folder / "checkpoint.npz"
    try:
        state = F.load(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except F.CheckpointError as e:
        raise ConfigError(f"--resume {folder}: {e}.") from None
    except (KeyError, ValueError) as e:
        raise ConfigError(f"--resume {folder}: the checkpoint does not fit the configured model or "
                          f"optimizer ({e}); resume with the run's own config.yaml unchanged.") from None
    rng.bit_generator.state = state["rng"]
    return int(state["epoch"]), state["history"]


def train(config, folder, log, resume=False):
    """Runs (or, with resume, continues) the experiment of `config` in `folder`; returns the summary."""
    started = time.perf_counter()
    training = config["training"]
    rng = np.random.default_rng(training["seed"])
    data = load_data(config, rng, progress=config["logging"]["progress"])
    log(f"data: {config['data']['dataset']}  train {data.train[0].shape}  "
        f"val {None if data.val is None else data.val[0].shape}  test {data.test[0].shape}")
    model = build_model(config, data.train[0].shape[1], rng)
    optimizer = build_optimizer(config, model.parameters())
    batch_size = config["data"]["batch_size"]
    steps_per_epoch = -(-len(data.train[0]) // batch_size)
    log(model.summary())

    start, history = 0, []
    if resume:
        start, history = restore(folder, model, optimizer, rng)
        trim_bias_csv(folder, start)
        log(f"resuming {folder} after epoch {start} of {training['epochs']}")
    recorder = Recorder(folder, log, config, model, optimizer, rng, history)
    recorder.write_metrics()
    recorder.checkpoint()  # epoch 0 (or the restored one): a NaN in epoch 1 still leaves a good state
    # Overflow shows up as NonFiniteError with its step and layer; numpy's warnings would only
    # say the same thing less precisely, in the middle of the log.
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            F.fit(model, F.SoftmaxCrossEntropy(), optimizer, data.train, val=data.val, test=data.test,
                  epochs=training["epochs"], batch_size=batch_size, rng=rng, shuffle=config["data"]["shuffle"],
                  lr_schedule=build_schedule(config, steps_per_epoch), log=recorder,
                  bias_every_epoch=training["bias_every_epoch"], bias_every=training["bias_every"],
                  start_epoch=start, history=history, eval_every=training["eval_every"],
                  should_stop=stop_without_improvement(training["patience"]) if training["patience"] else None,
                  progress=config["logging"]["progress"])
    except KeyboardInterrupt:
        recorder.ensure_saved()
        raise Interrupted(folder, recorder.saved_epoch) from None
    except F.NonFiniteError as e:
        finish(config, folder, log, recorder.history, model, started, "diverged", str(e))
        raise Diverged(str(e), folder, recorder.saved_epoch) from None
    status = "finished"
    if len(recorder.history) < training["epochs"]:
        status = "stopped early"
        log(f"early stopping: validation accuracy has not improved for {training['patience']} evaluations")
    return finish(config, folder, log, recorder.history, model, started, status)


def finish(config, folder, log, history, model, started, status, error=None):
    """Writes summary.json and the plots; returns the summary."""
    summary = summarize(history, status)
    summary.update(parameters=parameter_count(model), wall_seconds=round(time.perf_counter() - started, 3))
    if error:
        summary["error"] = error
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if config["logging"]["plots"]:
        plot_run(folder, history, log)
    return summary


def last(history, key):
    """The latest value of `key` in the history (None when never measured)."""
    return next((r[key] for r in reversed(history) if key in r and not math.isnan(r[key])), None)


def summarize(history, status):
    """The figures of a run that summary.json and sweep tables report."""
    summary = {"status": status, "epochs": len(history), "test_accuracy": last(history, "test_acc"),
               "final_train_loss": last(history, "train_loss"), "best_val_accuracy": None,
               "best_val_epoch": None, "test_accuracy_at_best_val": None,
               "train_seconds": round(sum(r["seconds"] for r in history), 3)}
    evaluated = [r for r in history if "val_acc" in r]
    if evaluated:
        best = max(evaluated, key=lambda r: r["val_acc"])  # max keeps the first of equals
        summary.update(best_val_accuracy=best["val_acc"], best_val_epoch=best["epoch"],
                       test_accuracy_at_best_val=best.get("test_acc"))
    return summary


def pyplot(log):
    """matplotlib.pyplot on the file-only Agg backend, or None (logged) when not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("plots skipped: matplotlib is not installed (python -m pip install -e \".[plot]\")")
        return None
    return plt


def plot_run(folder, history, log):
    """curves.png (loss and accuracy per epoch) and bias_grads.png (|db| of each layer over steps)."""
    plt = pyplot(log)
    if plt is None or not history:
        return
    metrics = pd.DataFrame(history)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, quantity in zip(axes, ("loss", "acc")):
        for split in ("train", "val", "test"):
            column = f"{split}_{quantity}"
            if column in metrics:
                rows = metrics[["epoch", column]].dropna()
                ax.plot(rows["epoch"], rows[column], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if quantity == "acc" else "loss")
        ax.legend()
    figure.tight_layout()
    figure.savefig(folder / "curves.png", dpi=100)
    plt.close(figure)

    bias_csv = folder / "bias_grads.csv"
    if bias_csv.exists():
        bias = pd.read_csv(bias_csv)
        figure, ax = plt.subplots(figsize=(6, 4))
        for layer, rows in bias.groupby("layer", sort=False):
            ax.plot(rows["step"], rows["db_norm"], marker=".", label=layer)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("|db|")
        ax.set_title("bias gradient norm per Affine layer")
        ax.legend()
        figure.tight_layout()
        figure.savefig(folder / "bias_grads.png", dpi=100)
        plt.close(figure)
    log(f"plots: {folder / 'curves.png'}, {folder / 'bias_grads.png'}")
