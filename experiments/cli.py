"""The command line behind train.py: main(argv) -> exit code, callable in-process by tests."""
import argparse
import errno
import io
import shutil
import sys
import textwrap
import unicodedata
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from datasets import DownloadError, IDXError
from framework.comm import split_batch_size

from .build import checked_model
from .config import ConfigError, catalogue, expand_paths, resolve, user_config
from .folder import Log, claim_folder, lock, new_run_folder, stdout_closed
from .memory import check_before_work
from .processes import end, launched
from .resume import checked_state
from .run import Interrupted, run_one
from .sweep import combinations, run_sweep

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mnist_mlp.yaml"

EPILOG = """\
examples:
  python train.py                                    the default: configs/mnist_mlp.yaml
  python train.py configs/quick.yaml                 seconds: 5000 examples, 1 epoch
  python train.py configs/mnist_cnn.yaml             a CNN: about 99.5%, about 11 minutes
  python train.py --set optimizer.lr=0.01 --set training.epochs=3
  python train.py --set optimizer.name=momentum --set optimizer.momentum=0.95
  python train.py --set model.0.affine.out=256       list items by position (from 0)
  python train.py --set data.subset=2000 --set schedule.name=none
  python train.py configs/compare_optimizers.yaml    a sweep: a sub-folder per run + comparison.csv
  python train.py configs/compare_optimizers.yaml --jobs 2   two runs at once, a process each
  python train.py SWEEP.yaml --scheduler tcp://HOST:8786     the runs on a Dask cluster
  python train.py --resume runs/20250101-120000-mnist_mlp
  python train.py --eval runs/20250101-120000-mnist_mlp   test accuracy, per class, confusion matrix
  python train.py --plots runs/20250101-120000-mnist_mlp  its plots drawn again from its files
  python train.py --predict runs/20250101-120000-mnist_mlp digit.png --show
                                                     your own digit: the class, the top
                                                     probabilities, and digit-seen.png
  python train.py --explain-bias                     why db = dY.sum(axis=0), worked out

--set values are YAML: 0.01, 1e-3, true, null, [sgd, adam], {out: 64}. Every value is
checked like the file: unknown keys, wrong types and out-of-range values are refused
before any work starts. The run folder (default runs/<date>-<time>-<name>) gets
config.yaml (resolved), log.txt, metrics.csv, steps.csv, bias_grads.csv, bias_sum.npz,
checkpoint.npz (every epoch), best.npz (best validation accuracy), summary.json, and with
matplotlib curves.png, bias_grads.png and bias_sum.png (db as dY's column sums, drawn)
(--plots draws these again, e.g. after installing matplotlib; --eval adds confusion.png and
mistakes.png). Configs name
constructor arguments shortly: conv2d's out, kernel, pad are Conv2D's out_channels,
kernel_size, padding (the layers list above).

data: the datasets above say where they find their files; --data-dir DIR is data.dir, the
folder of a dataset that downloads them (mirrors: comma-separated URLs or folders). --eval
never takes these places from the checkpoint: yours are --data-dir and --set data.dir=...,
data.mirrors=..., data.path=..., else the defaults.

exit codes: 0 done; 2 a mistake in the command, the config, the data or the run folder
(message on stderr); 3 the loss, a gradient or the learning rate became NaN/inf (the last
good checkpoint is kept); 130 interrupted by Ctrl-C (the last completed epoch is
checkpointed: --resume); 1 an unexpected error (a bug: please report the traceback).
"""


def parser():
    """The argument parser (its --help is the user manual)."""
    p = argparse.ArgumentParser(
        prog="train.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"{catalogue()}\n\n{EPILOG}",
        description="Train a NumPy network (an MLP or a CNN) from a YAML experiment config, or a\n"
                    "sweep of them, showing on real batches why a bias gradient is a sum:\n"
                    "db = dY.sum(axis=0) for an Affine layer, dY.sum(axis=(0, 2, 3)) for a conv.")
    p.add_argument("config", nargs="?",
                   help="YAML experiment (default: configs/mnist_mlp.yaml next to train.py)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override one setting (repeatable), e.g. --set optimizer.lr=0.01")
    p.add_argument("--out", metavar="DIR",
                   help="run folder (default: a new runs/<date>-<time>-<name>); with --predict "
                        "--show, where the pictures go")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the dataset files are (or are downloaded to)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run (or sweep) in DIR")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="a sweep: run up to N runs at once, each in a worker process with its "
                        "share of the cores (sweep.jobs; default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a sweep: send the runs to the Dask scheduler at ADDRESS, e.g. "
                        "tcp://10.0.0.5:8786 (sweep.scheduler; needs the cluster extra)")
    p.add_argument("--eval", metavar="RUN_DIR",
                   help="evaluate a run's best (else last) checkpoint on the test set, then exit")
    p.add_argument("--plots", metavar="RUN_DIR",
                   help="draw a run's (or a sweep's) plots again from the files in its folder, "
                        "then exit")
    p.add_argument("--predict", nargs="+", metavar=("RUN_OR_CHECKPOINT", "IMAGE"),
                   help="classify your own digits (PNG, JPEG, .npy; - reads a .npy from stdin), "
                        "each made to look like an MNIST digit first, with a run's best (else "
                        "last) checkpoint or the checkpoint file named, then exit")
    p.add_argument("--show", action="store_true",
                   help="with --predict: for each image, a picture of it beside what the model "
                        "saw, written into --out DIR or the current folder")
    p.add_argument("--quiet", action="store_true",
                   help="print only the result and errors (log.txt has all)")
    p.add_argument("--verbose", action="store_true",
                   help="also print the resolved config (log.txt has it)")
    p.add_argument("--explain-bias", action="store_true",
                   help="print a worked N=3 example of the bias forward broadcast and backward "
                        "sum, then exit")
    return p


def fail(message):
    """A user-facing error: one wrapped paragraph on stderr (a line that is a command is never
    wrapped). A run's (or sweep's) log.txt has what stopped it too."""
    text = str(message)
    print("\n".join(part if part.startswith("    ") else
                    textwrap.fill(part, 100, break_long_words=False, break_on_hyphens=False)
                    for part in text.split("\n")), file=sys.stderr)


def main(argv=None, default_config=DEFAULT_CONFIG):
    """Runs the command line; returns the exit code.

    Started by mpiexec (or srun) as K processes, each runs it, training one run together
    (processes.py): rank 0 speaks for them all; another's messages are shown only when it fails
    alone, and then its failure ends the job."""
    try:
        comm = launched()
    except ConfigError as e:
        fail(e)
        return 2
    job = Job()
    if comm.rank == 0:
        return end(comm, command(argv, default_config, comm, job), job.together)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as said:
        code = command(argv, default_config, comm, job)
    return end(comm, code, job.together, said.getvalue())


def is_number(text):
    """Whether a word of the command line is a number (`-2` is a value, not an option)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def command(argv, default_config, comm, job):
    """The command line's work in this process (comm: the processes of the run); returns the
    exit code."""
    try:
        args, extra = parser().parse_known_args(argv)
        words = sys.argv[1:] if argv is None else list(argv)
        # `--set KEY VALUE`, or `--set KEY= VALUE`: the value left out of the setting
        bare = next((o.removesuffix("=") for o in args.overrides
                     if o.find("=") in (-1, len(o) - 1)), None)
        at = next((i for i, word in enumerate(words)
                   if word in (bare, f"{bare}=", f"--set={bare}", f"--set={bare}=")), None)
        after = words[at + 1:at + 2] if bare is not None and at is not None else []
        if after and (not after[0].startswith("-") or is_number(after[0])):
            # `--set KEY VALUE`: VALUE would be taken for the config, or be left over
            parser().error(f"--set {bare} {after[0]}: write --set {bare}={after[0]} (one word, "
                           "with '=')")
        if extra:
            parser().error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # --help (0) or a usage error (2): argparse has printed why
        return e.code
    except BrokenPipeError:  # --help | head: the reader has all it wanted
        stdout_closed()
        return 0
    if args.explain_bias:
        from .explain import explain_bias, explain_conv_bias, explain_processes
        try:
            explain_bias()
            explain_conv_bias()
            explain_processes()
        except BrokenPipeError:
            stdout_closed()
        return 0
    given = [flag for flag, value in (("CONFIG", args.config), ("--resume", args.resume),
                                      ("--eval", args.eval), ("--plots", args.plots),
                                      ("--predict", args.predict)) if value]
    if len(given) > 1:
        fail(f"give one of CONFIG, --resume DIR, --eval DIR, --plots DIR or --predict, not "
             f"{' and '.join(given)}.")
        return 2
    if (args.resume or args.eval or args.plots) and args.out:
        fail("--out names a new run's folder; --resume, --eval and --plots work in the folder "
             "they name.")
        return 2
    if args.predict and len(args.predict) < 2:
        fail(f"--predict {args.predict[0]}: and which images? e.g. --predict {args.predict[0]} "
             "digit.png (a .npy array, or - for one on stdin, also works)")
        return 2
    if args.show and not args.predict:
        fail("--show goes with --predict: it draws each image beside what the model saw.")
        return 2
    if args.predict and args.out and not args.show:
        fail("--out with --predict names the folder for --show's pictures; add --show.")
        return 2
    for given in (args.out, args.resume, args.eval, args.plots, args.data_dir, *args.overrides,
                  *(args.predict or [])):
        kinds = {unicodedata.category(c) for c in given or ""}
        if "Cc" in kinds:
            fail(f"{given!r}: a control character in a path or setting; type it without one.")
            return 2
        if "Cs" in kinds:  # bytes that are not UTF-8 (Python keeps them as lone surrogates)
            fail(f"{given!r}: a path or setting that is not UTF-8 text; the run's log and "
                 "config are UTF-8, so use a name in UTF-8.")
            return 2

    console = "quiet" if args.quiet else "verbose" if args.verbose else "normal"
    try:
        if comm.size > 1 and (args.eval or args.predict):
            raise ConfigError(f"--{'eval' if args.eval else 'predict'} runs in one process: give "
                              "it without mpiexec.")
        if args.eval:
            from .evaluation import evaluate_run
            return evaluate_run(args.eval, args.data_dir, Log(console=console), args.overrides)
        if args.plots:
            from .replot import redraw
            return redraw(Path(args.plots).expanduser(), args.plots, Log(console=console))
        if args.predict:
            from .predict import predict_images
            return predict_images(args.predict[0], args.predict[1:], args.show, args.out,
                                  Log(console=console))
        return run(args, default_config, console, job, comm)
    except ConfigError as e:
        fail(e)
        job.discard_if_empty()
        return 2
    except Interrupted as e:  # every process of a run stops at the same step; rank 0 says so
        job.together = True
        if comm.rank == 0:
            fail(interrupted(e, f"mpiexec -n {comm.size} " if comm.size > 1 else ""))
        return 130
    except KeyboardInterrupt:
        fail("Interrupted before training started; nothing to resume.")
        job.discard_if_empty()
        return 130
    except (DownloadError, IDXError) as e:
        fail(f"Cannot get the data.\n{e}")
        job.discard_if_empty()
        return 2
    except MemoryError:
        fail("Out of memory: this config needs more memory than the machine could give. Use a "
             "smaller data.batch_size, data.subset or model.")
        job.discard_if_empty()
        return 2
    except OSError as e:  # a folder or file that cannot be made, read or written
        where = f"{e.strerror or e}: {e.filename}" if e.filename else str(e)
        if e.errno == errno.ENOSPC and job.has_checkpoint():
            where += ("\nThe disk is full. The run's last complete checkpoint is intact; free "
                      f"some space, then continue with:\n    python train.py --resume {job.folder}")
        fail(where)
        job.discard_if_empty()
        return 2
    finally:
        job.close()


def interrupted(e, launcher=""):
    """What Ctrl-C leaves and how to continue: a run's checkpoint is in its own folder, which for
    a sweep is one of the sweep folder's runs, while --resume takes the sweep's folder (launcher:
    `mpiexec -n K ` for a run over K processes, which resumes as it ran)."""
    checkpoint = e.folder / "checkpoint.npz"
    resume = f"\n    {launcher}python train.py --resume {e.resume}"
    if e.complete and e.epoch is None:  # every run of a sweep done: only the comparison left
        return (f"Interrupted after every run of the sweep was complete; {e.unwritten} may not "
                f"have been written. Write them with:{resume}")
    waiting = (f"{len(e.waiting)} run{'s' if len(e.waiting) > 1 else ''} of the sweep had not "
               f"started ({', '.join(e.waiting)})")
    if e.run is None and e.waiting:  # stopped between runs
        done = (f"the {e.done} other{'s are' if e.done > 1 else ' is'} done" if e.done
                else "none had finished")
        return f"Interrupted: {waiting}; {done}. Continue the sweep with:{resume}"
    if e.run is None and e.complete:
        return (f"Interrupted after training was complete (all {e.epoch} epochs are saved in "
                f"{checkpoint}); {e.unwritten} may not have been written. Write them with:{resume}")
    if e.run is None and not checkpoint.exists():  # stopped before its first save
        return ("Interrupted before the run had saved anything: there is nothing to continue; "
                "start it again.")
    if e.run is None:
        return (f"Interrupted. Epoch {e.epoch} is the last completed one and is saved in "
                f"{checkpoint}. Continue with:{resume}")
    if e.complete:
        what = (f"sweep run {e.run} had finished training; {e.unwritten} may not have been "
                "written")
    elif e.epoch is None:
        what = f"sweep run {e.run} had not completed an epoch"
    else:
        what = (f"epoch {e.epoch} is the last completed one of sweep run {e.run}, saved in "
                f"{checkpoint}")
    if e.others:
        what += (f"; sweep run{'s' if len(e.others) > 1 else ''} {', '.join(e.others)} stopped too,"
                 " each at its last completed epoch (in its own folder)")
    if e.waiting:
        what += f"; {waiting}"
    return f"Interrupted: {what}. Continue the sweep (its finished runs are kept) with:{resume}"


class Job:
    """The folder this command works in: whether this command made it, and for a sweep its lock
    (a run's own lock is run_one's); together: the command ended as every process of the run did
    at the same step (diverged, or Ctrl-C while training), not alone."""

    def __init__(self):
        self.folder = self.handle = None
        self.created = self.together = False

    def take(self, folder, handle, created):
        self.folder, self.handle, self.created = folder, handle, created

    def has_checkpoint(self):
        """Whether the folder holds a checkpoint: its own, or, for a sweep, one of its runs'."""
        return self.folder is not None and ((self.folder / "checkpoint.npz").exists()
                                            or any(self.folder.glob("*/checkpoint.npz")))

    def discard_if_empty(self):
        """A run (or sweep) this command started that failed before its first checkpoint leaves
        no folder."""
        if self.created and self.folder is not None and not self.has_checkpoint():
            self.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            print(f"(removed {self.folder}: the run never started)", file=sys.stderr)
            self.created = False

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def run(args, default_config, console, job, comm):
    """Loads and checks the config, then runs it (one run, or a sweep) or continues it; returns
    the exit code. Only the mode is chosen here: a run is run_one's, a sweep run_sweep's."""
    resume = args.resume is not None
    if resume:
        folder = Path(args.resume).expanduser()
        if not (folder / "config.yaml").exists():
            raise ConfigError(f"--resume {args.resume}: no config.yaml there; is it a run folder "
                              f"(made by train.py)?")
        source = str(folder / "config.yaml")
    else:
        source = str(find_config(args.config, default_config.parent) if args.config
                     else default_config)
    user, origins = user_config(source, args.overrides)
    if args.data_dir:
        user.setdefault("data", {})["dir"] = args.data_dir
        origins.append((["data", "dir"], f"--data-dir {args.data_dir}"))
    for flag, key, value in (("--jobs", "jobs", args.jobs), ("--scheduler", "scheduler",
                                                             args.scheduler)):
        if value is not None:
            if not isinstance(user.get("sweep"), dict):
                raise ConfigError(f"{flag} {value}: says where the runs of a sweep run, and "
                                  f"{source} is one run (it has no sweep:).")
            user["sweep"][key] = value
            origins.append((["sweep", key], f"{flag} {value}"))
    config = expand_paths(resolve(user, source, origins))
    note = "".join(f" --set {o}" for o in args.overrides)
    # where the config came from, for log.txt and config.yaml (kept as it is by a plain resume)
    origin = f"{source}{note}" if note or not resume else None
    if config["sweep"] is not None and comm.size > 1:
        raise ConfigError(f"{source}: a sweep under mpiexec: {comm.size} processes train one run "
                          "together; run a sweep without mpiexec (its runs are jobs of their "
                          "own), or each of its configs under mpiexec.")
    if config["sweep"] is not None:
        # the runs' values come from sweep.grid, .with or .random: name their --set, if one did
        given = next((text for key, text in reversed(origins) if key == ["sweep"]
                      or key[:2] in (["sweep", "grid"], ["sweep", "with"], ["sweep", "random"])),
                     source)
        runs = combinations(config, user, given, folder if resume else None)
        check_before_work([(label, each) for label, _, each in runs], source,
                          at_once=1 if config["sweep"]["scheduler"] else config["sweep"]["jobs"])
        if resume:
            job.take(folder, lock(folder), created=False)
        else:
            folder = new_folder(args.out, config, source, job, sweep=True)
        table = run_sweep(config, user, folder, source, runs, origin, console, resume)
        failed = table[table["status"] == "failed"]
        if len(failed):
            others = " The others are done (comparison.csv)." if len(failed) < len(table) else ""
            fail(f"{len(failed)} of {len(table)} runs failed: "
                 + "; ".join(f"{row['run']}: {str(row['error']).rstrip('.')}"
                             for _, row in failed.iterrows())
                 + f".{others} Once the cause is fixed, run what failed again with:\n"
                   f"    python train.py --resume {folder}")
            return 2
        return 0

    check_before_work([(None, config)], source, processes=comm.local_size)
    try:
        split_batch_size(config["data"]["batch_size"], comm.size)
    except ValueError as e:
        raise ConfigError(f"{source}: data.batch_size: {e} (--set data.batch_size=...).") from None
    if resume:  # a changed config, another number of processes or a checkpoint of another model
        # is refused before any data is loaded; first, a folder a live run writes into (whose
        # checkpoint may not exist yet), naming its process
        if comm.rank == 0:
            lock(folder).close()
        checked_state(folder, config, comm.size, checked_model(config, source))
    else:  # made by rank 0, which owns it: the others write nothing, but know which it is
        folder = new_folder(args.out, config, source, job, sweep=False) if comm.rank == 0 else None
        folder = Path(comm.allgather(folder)[0])
    summary = run_one(config, folder, resume, origin, console, comm=comm)
    if summary["status"] != "diverged":
        return 0
    job.together = True  # every process saw the same non-finite sums
    if comm.rank != 0:
        return 3
    epoch = summary["last_good_epoch"]
    fail(f"Training stopped: a value is NaN or infinite at {summary['error']}. "
         + (f"The checkpoint of epoch {epoch} (the last one with finite weights) is kept in "
            f"{folder / 'checkpoint.npz'}. " if epoch is not None else "")
         + "Try a smaller optimizer.lr, a schedule warm-up, or a smaller affine init.")
    return 3


def new_folder(out, config, source, job, sweep):
    """The folder of a new run or sweep: --out, else a new runs/<date>-<time>-<name>. A sweep's
    is locked here, for the whole sweep, and removed if it fails before any checkpoint; a run's
    lock and removal are run_one's."""
    if out:
        folder = Path(out).expanduser()
        # Ours to remove on an early failure only once we hold its lock: a second train.py
        # refused there must not delete the folder the first one is training in.
        created = not folder.exists()
        handle = claim_folder(folder) if sweep else None
    else:
        folder = new_run_folder(config["logging"]["runs_dir"], config["name"] or Path(source).stem)
        created, handle = True, lock(folder) if sweep else None
    job.take(folder, handle, created and sweep)
    return folder


def find_config(typed, shipped):
    """The config file `typed` names: a path from the current folder, else, for a bare name or
    configs/NAME, the config of that name shipped in `shipped` (configs/ beside train.py), so
    `python /elsewhere/train.py configs/quick.yaml` finds it from any folder."""
    path = Path(typed).expanduser()
    places = [path]
    if not path.is_absolute() and path.parent in (Path("."), Path("configs")):
        places.append(shipped / path.name)
    for place in places:
        if place.exists():
            return place
    looked = " and ".join(str(place.absolute()) for place in places)
    names = sorted(p.name for p in shipped.glob("*.yaml"))
    hint = next((f" (did you mean {place}.yaml?)" for place in places
                 if Path(f"{place}.yaml").is_file()), None)
    if hint is None and len(places) > 1:
        from framework.checks import close_match  # only on the error path
        hint = close_match(path.name, names)
    raise ConfigError(f"{typed}: no such config file; looked for {looked}{hint or ''}. The "
                      f"shipped configs: {', '.join(names)}.")
