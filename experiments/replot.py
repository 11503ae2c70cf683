"""`train.py --plots RUN`: the pictures of a run, or of a sweep and each of its runs, drawn again
from the files in its folder (after installing matplotlib, say, for a run trained without it)."""
import pandas as pd

from framework.checks import Integer, Invalid, Real, Text

from .config import SCHEMA
from .folder import held
from .plots import plot_comparison, plot_run, pyplot, read_csv
from .sweep import run_labels, settings_that_differ
from .yamlfile import ConfigError, read_mapping

# What the pictures state of a run's config, each with its check: read on their own, so that a
# run of an older version, whose config.yaml holds settings this one no longer takes, is drawn.
PLOTTED = {("optimizer", "name"): Text(), ("optimizer", "lr"): Real(0, low_open=True),
           ("data", "batch_size"): Integer(1), ("loss",): SCHEMA["loss"][1]}
# The columns of a run's CSVs that hold text; every other one must hold numbers.
TEXT_COLUMNS = {"layer", "dY_shape", "db_shape"}


def redraw(folder, typed, log):
    """Draws the plots of the run or sweep in `folder` (`typed`: as the user wrote it); returns
    0."""
    if not folder.is_dir():
        what = "a file; it takes a run's folder" if folder.exists() else "no such folder"
        raise ConfigError(f"--plots {typed}: {what}.")
    if pyplot(log=None) is None:
        raise ConfigError("--plots draws with matplotlib, which is not installed: "
                          "python -m pip install -e \".[plot]\"")
    runs = sorted(sub for sub in folder.iterdir() if (sub / "metrics.csv").is_file())
    if not (folder / "config.yaml").is_file():
        example = f" (such as --plots {folder / runs[0].name})" if runs else ""
        raise ConfigError(f"--plots {typed}: no config.yaml here: it takes a run's folder, made "
                          f"by train.py{example}.")
    if not (folder / "metrics.csv").is_file() and not runs:
        what = ("no run of this sweep has completed an epoch" if (folder / "comparison.csv")
                .is_file() else "no metrics.csv yet: the run has not completed an epoch")
        raise ConfigError(f"--plots {typed}: {what}.")
    with held(folder, refusal(typed)):
        if (folder / "metrics.csv").is_file():
            redraw_run(folder, log)
            return 0
        for sub in runs:
            with held(sub, refusal(f"{typed}/{sub.name}")):
                redraw_run(sub, log)
        table = read_csv(folder / "comparison.csv")
        if table is not None and {"folder", "status"} <= set(table):
            # a run that failed before its first checkpoint left no folder, and has no curves
            gone = table["status"].eq("failed") & ~table["folder"].map(
                lambda name: (folder / str(name)).is_dir())
            table = table[~gone]
        if table is not None and "folder" in table and len(table):
            configs = [read_mapping(folder / sweep_run(folder, name) / "config.yaml", SCHEMA)
                       for name in table["folder"]]
            differing = settings_that_differ(configs)
            labels = run_labels(differing, list(table["run"]))
            plot_comparison(folder, table, labels, log)
    return 0


def refusal(typed):
    """The message for a folder a live train.py writes to: a live run's own plots are drawn when
    it ends, and two writers of one file would tear it."""
    return (lambda holder: f"--plots {typed}: a train.py (process {holder}) is still writing to "
            "this folder; its plots are drawn when it ends.")


def redraw_run(folder, log):
    """curves.png, bias_grads.png (and bias_sum.png) of one run, from its files."""
    for name in ("metrics.csv", "steps.csv", "bias_grads.csv"):
        numbers_only(folder / name)
    metrics = read_csv(folder / "metrics.csv")
    if metrics is None or not {"epoch", "step", "train_loss", "train_acc"} <= set(metrics):
        raise ConfigError(f"{folder / 'metrics.csv'}: not a run's metrics (it needs the columns "
                          "epoch, step, train_loss, train_acc), or no epoch has ended yet.")
    plot_run(folder, metrics.to_dict("records"), plotted_config(folder / "config.yaml"), log)


def plotted_config(path):
    """The settings of PLOTTED from a run's config.yaml, checked."""
    user, config = read_mapping(path, SCHEMA), {}
    for keys, check in PLOTTED.items():
        value, place = user, config
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        for key in keys[:-1]:
            place = place.setdefault(key, {})
        try:
            place[keys[-1]] = check(value)
        except Invalid as e:
            raise ConfigError(f"{path}: {'.'.join(keys)}: {e.problem}.") from None
    return config


def numbers_only(path):
    """Refuses a run's CSV with text where numbers belong (edited, or another program's)."""
    table = read_csv(path)
    for column in [] if table is None else table.columns:
        if column not in TEXT_COLUMNS and not pd.api.types.is_numeric_dtype(table[column]):
            raise ConfigError(f"{path}: the column {column!r} holds text where numbers belong; "
                              "is it a run's file, as train.py wrote it?")


def sweep_run(folder, name):
    """A run's sub-folder as comparison.csv names it, refused unless it is one in `folder`."""
    name = str(name)
    if name in ("", ".", "..") or "/" in name or "\\" in name or not (folder / name).is_dir():
        raise ConfigError(f"{folder / 'comparison.csv'}: names {name!r}, which is not one of the "
                          "sweep's run folders.")
    return name
