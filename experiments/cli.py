"""The command line behind train.py: main(argv) -> exit code, callable in-process by tests."""
import argparse
import sys
import textwrap
from pathlib import Path

from datasets import DownloadError, IDXError

from .config import ConfigError, catalogue, dump, resolve, user_config
from .folder import Log, claim_folder, new_run_folder, save_config
from .run import Diverged, Interrupted, blas_line, train
from .sweep import combinations, run_sweep

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mnist_mlp.yaml"

EPILOG = """\
examples:
  python train.py                                    the default: configs/mnist_mlp.yaml
  python train.py configs/quick.yaml                 seconds: 5000 examples, 1 epoch
  python train.py --set optimizer.lr=0.01 --set training.epochs=3
  python train.py --set optimizer.name=momentum --set optimizer.momentum=0.95
  python train.py --set model.0.affine.out=256       list items by position (from 0)
  python train.py --set data.subset=2000 --set schedule.name=none
  python train.py configs/compare_optimizers.yaml    a sweep: one sub-folder per run + comparison.csv
  python train.py --resume runs/20250101-120000-mnist_mlp
  python train.py --explain-bias                     why db = dY.sum(axis=0), worked out

--set values are YAML: 0.01, 1e-3, true, null, [sgd, adam], {out: 64}. Every value is
checked like the file: unknown keys, wrong types and out-of-range values are refused
before any work starts. The run folder (default runs/<date>-<time>-<name>) gets
config.yaml (resolved), log.txt, metrics.csv, bias_grads.csv, checkpoint.npz (every
epoch), summary.json, and with matplotlib curves.png and bias_grads.png.

data: files are looked for in --data-dir (else data.dir, $MNIST_DIR, ~/.cache/npdl/mnist)
and downloaded from data.mirrors, else $MNIST_MIRRORS (comma-separated URLs or folders),
else the built-in mirrors.

exit codes: 0 done; 2 a mistake in the command, the config, the data or the run folder
(message on stderr); 3 the loss or a gradient became NaN/inf (the last good checkpoint is
kept); 130 interrupted by Ctrl-C (the last completed epoch is checkpointed: --resume);
1 an unexpected error (a bug: please report the traceback).
"""


def parser():
    """The argument parser (its --help is the user manual)."""
    p = argparse.ArgumentParser(
        prog="train.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"{catalogue()}\n\n{EPILOG}",
        description="Train a NumPy MLP from a YAML experiment config (or run a sweep of them), "
                    "logging on real batches why a batched Affine layer's bias gradient is "
                    "db = dY.sum(axis=0).")
    p.add_argument("config", nargs="?", help="YAML experiment (default: configs/mnist_mlp.yaml next to train.py)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override one setting (repeatable), e.g. --set optimizer.lr=0.01")
    p.add_argument("--out", metavar="DIR", help="run folder (default: a new runs/<date>-<time>-<name>)")
    p.add_argument("--data-dir", metavar="DIR", help="where the dataset files are (or are downloaded to)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run (or sweep) in DIR")
    p.add_argument("--quiet", action="store_true", help="print only the result and errors (log.txt has all)")
    p.add_argument("--explain-bias", action="store_true",
                   help="print a worked N=3 example of the bias forward broadcast and backward sum, then exit")
    return p


def fail(message):
    """A user-facing error: one wrapped paragraph on stderr."""
    print("\n".join(textwrap.fill(part, 100, break_long_words=False, break_on_hyphens=False) for part in str(message).split("\n")), file=sys.stderr)


def main(argv=None, default_config=DEFAULT_CONFIG):
    """Runs the command line; returns the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2): argparse has printed why
        return e.code
    if args.explain_bias:
        from .explain import explain_bias
        explain_bias()
        return 0
    if args.resume and args.config:
        fail("give either a CONFIG or --resume DIR (a run folder keeps its own config.yaml), not both.")
        return 2
    if args.resume and args.out:
        fail("--resume DIR continues the run in DIR itself; --out cannot be combined with it.")
        return 2

    log = Log(quiet=args.quiet)
    try:
        return run(args, default_config, log)
    except ConfigError as e:
        fail(e)
        return 2
    except Interrupted as e:
        fail(f"Interrupted. Epoch {e.epoch} is the last completed one and is saved in "
             f"{e.folder / 'checkpoint.npz'}. Continue with: python train.py --resume {e.folder}")
        return 130
    except KeyboardInterrupt:
        fail("Interrupted before training started; nothing to resume.")
        return 130
    except Diverged as e:
        fail(f"Training stopped: the loss or a gradient is not finite at {e}. The checkpoint of epoch "
             f"{e.epoch} (the last good one) is kept in {e.folder / 'checkpoint.npz'}. Try a smaller "
             f"optimizer.lr, a schedule warm-up, or a smaller affine init.")
        return 3
    except (DownloadError, IDXError) as e:
        fail(f"Cannot get the data.\n{e}")
        return 2
    except OSError as e:  # a folder or file the user named that cannot be made or read
        fail(f"{e.strerror or e}: {e.filename}" if e.filename else e)
        return 2


def run(args, default_config, log):
    """Loads and checks the config, prepares the folder, trains (or sweeps); returns 0."""
    if args.resume:
        folder = Path(args.resume)
        if not (folder / "config.yaml").exists():
            raise ConfigError(f"--resume {args.resume}: no config.yaml there; is it a run folder "
                              f"(made by train.py)?")
        source = str(folder / "config.yaml")
    else:
        source = str(args.config or default_config)
    user, origins = user_config(source, args.overrides)
    config = resolve(user, source, origins)
    if args.data_dir:
        config["data"]["dir"] = user.setdefault("data", {})["dir"] = args.data_dir
    sweep = config["sweep"] is not None
    if sweep:
        combinations(config, user, source)  # every combination checked before any folder or run
    if not args.resume:
        name = config["name"] or Path(source).stem
        folder = claim_folder(args.out) if args.out else new_run_folder(config["logging"]["runs_dir"], name)
        note = "".join(f" --set {o}" for o in args.overrides)
        if sweep:  # as given: each run's folder holds its own resolved config
            save_config(user, folder, f"sweep config {source}{note}, as given")
        else:
            save_config(config, folder, f"resolved config of {source}{note}")
    log.open(folder / "log.txt")
    try:
        log(blas_line())
        log(f"{'resuming' if args.resume else 'run'}: {folder}   config: {source}"
            + "".join(f" --set {o}" for o in args.overrides))
        log(f"--- resolved config\n{dump(config).rstrip()}\n---")
        if sweep:
            result = run_sweep(config, user, folder, log, source, resume=args.resume is not None)
        else:
            result = train(config, folder, log, resume=args.resume is not None)
        return report(result, folder, log)
    finally:
        log.close()


def report(result, folder, log):
    """The closing line (printed even with --quiet); returns the exit code 0."""
    if isinstance(result, dict):
        r = result
        best = (f" (best val {r['best_val_accuracy']:.4f} at epoch {r['best_val_epoch']})"
                if r["best_val_accuracy"] is not None else "")
        test = f"test accuracy {r['test_accuracy']:.4f}" if r["test_accuracy"] is not None else "no test set"
        epochs = f"{r['epochs']} epoch" + ("s" if r["epochs"] != 1 else "")
        log(f"{r['status']}: {test}{best} after {epochs}, {r['train_seconds']:.1f} s "
            f"training; {r['parameters']:,} parameters; run folder {folder}", always=True)
    else:
        top = result.iloc[0]
        log(f"sweep done: {len(result)} runs, best {top['run']}; table in {folder / 'comparison.csv'}", always=True)
    return 0
