"""A run's folder and its log: where everything a run writes goes.

A run folder holds config.yaml (resolved), log.txt, metrics.csv, bias_grads.csv,
checkpoint.npz (after every epoch), summary.json and, with matplotlib, curves.png and
bias_grads.png.
"""
import time
from pathlib import Path

from framework.files import atomic_write

from .yamlfile import ConfigError, dump


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
    with atomic_write(folder / "config.yaml", "w", encoding="utf-8") as f:
        f.write(f"# {note}\n{dump(config)}")
