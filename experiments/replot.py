"""`train.py --plots RUN`: the pictures of a run, or of a sweep and each of its runs, drawn again
from the files in its folder (after installing matplotlib, say, for a run trained without it)."""
import pandas as pd

from .config import load
from .folder import held
from .plots import plot_comparison, plot_run, pyplot, read_csv
from .sweep import run_labels, settings_that_differ
from .yamlfile import ConfigError


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
        raise ConfigError(f"--plots {typed}: no metrics.csv yet: the run has not completed an "
                          "epoch.")
    with held(folder, refusal(typed)):
        if (folder / "metrics.csv").is_file():
            redraw_run(folder, log)
            return 0
        for sub in runs:
            with held(sub, refusal(f"{typed}/{sub.name}")):
                redraw_run(sub, log)
        table = read_csv(folder / "comparison.csv")
        if table is not None and "folder" in table:
            configs = [load(folder / sweep_run(folder, name) / "config.yaml")
                       for name in table["folder"]]
            differing = settings_that_differ(configs)
            labels = run_labels(pd.DataFrame(differing), list(differing[0]))
            plot_comparison(folder, table, labels, log)
    return 0


def refusal(typed):
    """The message for a folder a live train.py writes to: a live run's own plots are drawn when
    it ends, and two writers of one file would tear it."""
    return (lambda holder: f"--plots {typed}: a train.py (process {holder}) is still writing to "
            "this folder; its plots are drawn when it ends.")


def redraw_run(folder, log):
    """curves.png and bias_grads.png of one run, from its config.yaml and CSVs."""
    config = load(folder / "config.yaml")
    metrics = read_csv(folder / "metrics.csv")
    if metrics is None or not {"epoch", "step", "train_loss", "train_acc"} <= set(metrics):
        raise ConfigError(f"{folder / 'metrics.csv'}: not a run's metrics (it needs the columns "
                          "epoch, step, train_loss, train_acc), or no epoch has ended yet.")
    plot_run(folder, metrics.to_dict("records"), config, log)


def sweep_run(folder, name):
    """A run's sub-folder as comparison.csv names it, refused unless it is one in `folder`."""
    name = str(name)
    if name in ("", ".", "..") or "/" in name or "\\" in name or not (folder / name).is_dir():
        raise ConfigError(f"{folder / 'comparison.csv'}: names {name!r}, which is not one of the "
                          "sweep's run folders.")
    return name
