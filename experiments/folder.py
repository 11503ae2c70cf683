"""A run's folder and its log: where everything a run writes goes.

A run folder holds config.yaml (resolved), log.txt, metrics.csv, bias_grads.csv,
bias_sum.npz (dY at step 1), checkpoint.npz (after every epoch), summary.json and, with
matplotlib, curves.png, bias_grads.png and bias_sum.png.
"""
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from framework.files import TEMP_SUFFIX, atomic_write, remove_stale_temporaries

from .yamlfile import ConfigError, dump

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer per folder is then up to the user
    fcntl = None

RUN_FILES = ("config.yaml", "log.txt", "metrics.csv", "steps.csv", "bias_grads.csv",
             "bias_sum.npz", "checkpoint.npz", "best.npz", "summary.json", "curves.png",
             "bias_grads.png", "bias_sum.png",
             "confusion.png", "mistakes.png", "comparison.csv", "comparison.png", "draws.yaml",
             ".lock")


class Log:
    """Messages of a run (or sweep): appended to its log.txt (`path`; None for none) and shown
    as `console` says: "off" (a sweep's run, whose console is the sweep's), "quiet" (only the
    messages marked `always`: the result, errors), "normal", or "verbose" (details too).

    While a progress bar is on the screen, messages go through tqdm.write so they never land
    on the bar's line.
    """

    def __init__(self, path=None, console="normal"):
        # screen: False as well once stdout's reader has gone (`| head`)
        self.screen, self.quiet = console != "off", console == "quiet"
        self.verbose = console == "verbose"
        self.file = open(path, "a", encoding="utf-8") if path is not None else None

    def __call__(self, message="", always=False, screen=True):
        if self.screen and screen and (always or not self.quiet):
            try:
                tqdm.write(message, file=sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:  # the run goes on, into its log file
                self.screen = False
                stdout_closed()
        if self.file is not None:
            self.file.write(message + "\n")
            self.file.flush()

    def detail(self, message):
        """A message for log.txt, shown on the screen only with --verbose."""
        self(message, screen=self.verbose)

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class Busy(ConfigError):
    """A folder whose lock a live process holds; `holder` is its process id (or "unknown")."""

    def __init__(self, message, holder):
        super().__init__(message)
        self.holder = holder


def stdout_closed():
    """stdout's reader has gone (`python train.py | head -3`): what is still printed goes to
    os.devnull, and so does Python's flush of stdout at exit, which would report the broken
    pipe and exit 120."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # sys.stdout is not a file (a test's capture): nothing to do
        pass
    finally:
        os.close(devnull)


def lock(folder):
    """Takes the folder's one-writer lock (an OS lock on folder/.lock, released by the kernel when
    the process ends, however it ends); returns the open lock file, which must stay open.
    A folder another live process holds is refused, naming that process."""
    handle = open(folder / ".lock", "a+", encoding="ascii")
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = lock_holder(handle)
            handle.close()
            raise Busy(f"{folder}: another train.py (process {holder}) is writing to this run "
                       "folder; wait until it ends (or stop it), then use --resume.", holder
                       ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    remove_stale_temporaries(folder)  # ours now: anything half-written is a killed process's
    return handle


@contextmanager
def held(folder, refusal):
    """The folder's lock while a command that reads a run and writes into it (--eval, --plots)
    works there; a folder a live process holds is refused with the message refusal(its process
    id). A folder no train.py has worked in (no .lock) is left without one."""
    if not (folder / ".lock").exists():
        yield
        return
    try:
        handle = lock(folder)
    except Busy as e:
        raise ConfigError(refusal(e.holder)) from None
    try:
        yield
    finally:
        handle.close()


def lock_holder(handle):
    """The process id the lock file names, once it names a live process, else "unknown". The
    holder writes its id just after taking the lock: until then the file is empty or names an
    earlier run's process, so wait a moment for it."""
    deadline = time.monotonic() + 2
    while True:
        handle.seek(0)
        text = handle.read().strip()
        if text.isdigit() and alive(int(text)):
            return text
        if time.monotonic() > deadline:
            return "unknown"
        time.sleep(0.01)


def alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def new_run_folder(runs_dir, name):
    """A fresh folder runs_dir/<date>-<time>-<name> (suffixed -2, -3 ... when taken)."""
    base = Path(runs_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    folder, n = base, 1
    while True:
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            n += 1
            folder = base.with_name(f"{base.name}-{n}")


def claim_folder(folder, taken_if="config.yaml"):
    """A new sweep's or run's folder, made when missing, and locked; refused when it holds other
    files or `taken_if` (a sweep's config.yaml, a run's checkpoint.npz: one was there before).
    Returns the open lock file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    refuse_other_files(folder)
    handle = lock(folder)
    if (folder / taken_if).exists():
        handle.close()
        raise ConfigError(f"{folder}: this folder already holds a run. Continue it with "
                          f"`python train.py --resume {folder}`, or pick another --out.")
    return handle


def refuse_other_files(folder):
    """Other files are looked for before the lock is taken: a refused folder is left as it was,
    without a .lock of ours (a killed run's temporaries are a run's, not other files)."""
    others = sorted(p.name for p in folder.iterdir()
                    if p.name not in RUN_FILES and not p.name.endswith(TEMP_SUFFIX))
    if others:
        raise ConfigError(f"{folder}: this folder holds other files ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}); a run gets an empty or new "
                          "folder (--out).")


def claim_run_folder(folder, resume):
    """The lock of one run's folder, which is made when missing: a new run (resume False) is
    refused in a folder with other files or with a checkpoint (a run already trained there).
    Returns (the open lock file, whether the folder was empty when the lock was taken: then a
    run that fails before its first checkpoint may remove it)."""
    if resume:
        return lock(folder), False
    handle = claim_folder(folder, taken_if="checkpoint.npz")
    return handle, {p.name for p in folder.iterdir()} <= {".lock"}


def save_config(config, folder, note):
    """Writes the resolved config as folder/config.yaml, with where it came from as a comment."""
    with atomic_write(folder / "config.yaml", "w", encoding="utf-8") as f:
        f.write(f"# {note}\n{dump(config)}")
