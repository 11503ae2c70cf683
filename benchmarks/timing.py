"""What the training benchmarks share: timing candidates, PyTorch in a child process, the
OpenBLAS environment, the common options and the per-layer profile.

The scripts import it as a sibling module (`from timing import ...`): run as
`python benchmarks/bench_x.py`, Python puts the script's folder first on sys.path.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# --- options --------------------------------------------------------------------------------

def benchmark_parser(doc, *, batch_sizes, reps, block, warmup, profile_steps):
    """The options every benchmark takes, with its own defaults; the script adds the rest."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default=batch_sizes,
                    help="comma-separated batch sizes (default %(default)s)")
    ap.add_argument("--reps", type=int, default=reps,
                    help="timed repetitions per figure (median)")
    ap.add_argument("--block", type=float, default=block,
                    help="seconds per repetition (approx.)")
    ap.add_argument("--warmup", type=float, default=warmup,
                    help="seconds of warm-up per candidate")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch's threads (default: as many as OpenBLAS uses; set OpenBLAS's "
                         "own with OPENBLAS_NUM_THREADS in the environment)")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    ap.add_argument("--coretype", metavar="NAME",
                    help="run in a child process with OPENBLAS_CORETYPE=NAME "
                         "(e.g. Haswell, SkylakeX)")
    ap.add_argument("--profile", action="store_true",
                    help="only profile a step per layer (forward, backward, loss, optimizer)")
    ap.add_argument("--profile-steps", type=int, default=profile_steps)
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    return ap


def batch_sizes(args):
    return [int(b) for b in args.batch_sizes.split(",")]


# --- environment ----------------------------------------------------------------------------

def openblas_info():
    """(core name, threads) of the OpenBLAS numpy uses, or (None, None) when unknown."""
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            if pool.get("internal_api") == "openblas":
                return pool.get("architecture"), pool.get("num_threads")
    except Exception:
        pass
    try:  # numpy wheels bundle scipy-openblas with prefixed symbols
        import ctypes
        import glob
        libs = glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "*openblas*"))
        lib = ctypes.CDLL(libs[0])
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                core = getattr(lib, f"{prefix}get_corename{suffix}", None)
                threads = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if core is not None and threads is not None:
                    core.restype = ctypes.c_char_p
                    return core().decode(), int(threads())
    except Exception:
        pass
    return None, None


def coretype_env():
    return os.environ.get("OPENBLAS_CORETYPE", "(unset)")


def load_average(n=3):
    """The first n of os.getloadavg(), as text."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()[:n])


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rerun_with_coretype(script, name):
    """Runs `script` with this process's arguments minus --coretype, under OPENBLAS_CORETYPE=name;
    returns the child's exit code. OpenBLAS reads the variable once, when numpy loads it, so
    other kernels take a new process; the user's own environment is left as it is."""
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--coretype":
            skip = True
        elif not arg.startswith("--coretype="):
            argv.append(arg)
    env = {**os.environ, "OPENBLAS_CORETYPE": name}
    return subprocess.run([sys.executable, script, *argv], env=env).returncode


# --- data -----------------------------------------------------------------------------------

def synthetic_mnist(rng, n, shape):
    """n examples of the given shape: pixels in [0, 1] as float32 (MNIST's range), labels 0..9."""
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8).astype(np.float32)
    x /= 255
    return x, rng.integers(0, 10, size=n).astype(np.intp)


def not_float32(model, optimizer):
    """Names of parameters, gradients, buffers or optimizer state that are not float32 (no
    silent upcasts)."""
    bad = [p.name for p in model.parameters()
           if p.data.dtype != np.float32 or p.grad.dtype != np.float32]
    bad += [f"{layer.name}.{k}" for layer in model.layers
            for k, a in layer.buffers().items() if a.dtype != np.float32]
    return bad + [f"{slot}.{i}" for slot, arrays in optimizer.state.items()
                  for i, a in enumerate(arrays) if a.dtype != np.float32]


# --- timing ---------------------------------------------------------------------------------

class Timed:
    """A candidate: run(steps) does that many training steps; timed here.

    min_steps: the fewest steps in a timed block; pause: seconds of sleep before each block,
    for other threads to go quiet (a short step is the one they would disturb most)."""

    min_steps = 3
    pause = 0.0

    def calibrate(self, warmup, block):
        """Warms up for ~warmup seconds; returns the number of steps that take ~block seconds."""
        steps, spent = 1, 0.0
        while spent < warmup:
            t0 = time.perf_counter()
            self.run(steps)
            dt = time.perf_counter() - t0
            spent += dt
            per_step = dt / steps
            steps = min(steps * 2, max(1, int(0.1 / per_step)))
        return max(self.min_steps, int(block / per_step))

    def seconds_per_step(self, steps):
        if self.pause:
            time.sleep(self.pause)
        t0 = time.perf_counter()
        self.run(steps)
        return (time.perf_counter() - t0) / steps


def measure(candidates, reps, warmup, block):
    """Median seconds per step for each candidate, interleaved rep by rep."""
    steps = {name: c.calibrate(warmup, block) for name, c in candidates.items()}
    times = {name: [] for name in candidates}
    for _ in range(reps):
        for name, c in candidates.items():
            times[name].append(c.seconds_per_step(steps[name]))
    return {name: float(np.median(t)) for name, t in times.items()}, times


def spread(times, median):
    """Interquartile range of the repetitions / median: large when the machine was busy."""
    return float(np.subtract(*np.percentile(times, [75, 25])) / median)


def write_json(args, rows, threads, torch_version, **extra):
    """Writes the rows to args.json with what the figures depend on (versions, threads, OpenBLAS
    kernels, CPUs, repetitions) and the script's own `extra` facts."""
    meta = {"numpy": np.__version__, "threads": threads,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"), "torch": torch_version,
            "cpus": os.cpu_count(), "reps": args.reps, **extra}
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"figures written to {args.json}")


def run(script, args, main, torch_worker):
    """A benchmark's entry point: itself again under --coretype's OpenBLAS kernels, the torch
    child's loop, or main."""
    if args.coretype:
        sys.exit(rerun_with_coretype(script, args.coretype))
    torch_worker(args) if args.torch_worker else main(args)


# --- PyTorch in a child process -------------------------------------------------------------

def torch_importable():
    import importlib.util
    try:
        return importlib.util.find_spec("torch") is not None
    except ImportError:
        return False


class TorchProcess:
    """PyTorch in a child process running `script --torch-worker`: torch's OpenMP threads and
    OpenBLAS's workers (which spin for a while after each product) must not fight over the
    cores; in one process they made torch many times slower. The parent waits idle, after a
    pause for its workers to go to sleep, while the child times its steps.

    A candidate is named by a key of words (e.g. optimizer and batch size) that the child's
    make_bench turns into a Timed."""

    SETTLE = 0.15  # seconds for the parent's OpenBLAS workers to stop spinning

    def __init__(self, script, threads, seed, extra=()):
        self.proc = subprocess.Popen(
            [sys.executable, script, "--torch-worker", "--threads", str(threads),
             "--seed", str(seed), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.version = self.ask("version")

    def ask(self, *words):
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("the torch worker died")
        return reply.strip()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()

    def candidate(self, *key):
        process = self

        class Remote:
            def calibrate(self, warmup, block):
                time.sleep(process.SETTLE)
                return int(process.ask("calibrate", *key, warmup, block))

            def seconds_per_step(self, steps):
                time.sleep(process.SETTLE)
                return float(process.ask("time", *key, steps))

        return Remote()


def start_torch(script, args, threads, extra=()):
    """The torch child for `script` (given `extra` arguments besides its threads and seed), or
    None with --no-torch or when torch is not importable."""
    if args.no_torch or not torch_importable():
        return None
    process = TorchProcess(script, threads, args.seed, extra)
    print(f"torch {process.version} (in a child process, timed alternately with the rest)")
    return process


def serve_torch(make_bench, threads):
    """The torch child's loop (serve). Torch's thread count is set first, so that `version`
    reports the one the timings use."""
    import torch
    torch.set_num_threads(threads)
    serve(make_bench, f"{torch.__version__} threads={torch.get_num_threads()}")


def serve(make_bench, version):
    """A child's loop, a reply a line: `version`, `rss` (peak MB), `calibrate KEY... warmup
    block`, `time KEY... steps`; make_bench(*key) builds the candidate of a key, once."""
    benches = {}

    def bench(key):
        if tuple(key) not in benches:
            benches[tuple(key)] = make_bench(*key)
        return benches[tuple(key)]

    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "version":
            reply = version
        elif cmd == "rss":
            reply = f"{peak_rss_mb():.0f}"
        elif cmd == "calibrate":
            *key, warmup, block = rest
            reply = bench(key).calibrate(float(warmup), float(block))
        else:
            *key, steps = rest
            reply = bench(key).seconds_per_step(int(steps))
        print(reply, flush=True)


# --- profile --------------------------------------------------------------------------------

def wrap_timer(obj, method, key, acc):
    """Replaces obj.method (on this instance only) by a timed call adding to acc[key]."""
    inner = getattr(obj, method)

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = inner(*a, **k)
        acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
        return out

    setattr(obj, method, timed)


def time_parts(model, loss_fn, optimizer, step_name):
    """Puts timers on each layer's forward and backward, the loss's, and the optimizer's step;
    returns the dict of seconds they add to, keyed (name, "forward" / "backward" / "")."""
    acc = {}
    for layer in model.layers:
        wrap_timer(layer, "forward", (layer.name, "forward"), acc)
        wrap_timer(layer, "backward", (layer.name, "backward"), acc)
    wrap_timer(loss_fn, "forward", ("loss", "forward"), acc)
    wrap_timer(loss_fn, "backward", ("loss", "backward"), acc)
    wrap_timer(optimizer, "step", (step_name, ""), acc)
    return acc


def profile_step(bench, floor, steps, step_name):
    """Times `steps` steps of bench (a warmed-up Framework candidate) with a timer on each part,
    and as many of its floor; returns time_parts' seconds and both candidates' seconds per step."""
    acc = time_parts(bench.model, bench.loss_fn, bench.optimizer, step_name)
    return acc, bench.seconds_per_step(steps), floor.seconds_per_step(steps)


def print_parts(acc, steps, total, *, width, digits, rest_label, rest_note):
    """The profile's table from time_parts' seconds over `steps` steps of `total` seconds each:
    ms per step in forward and backward, their sum and its share; then what no timer saw."""
    def cell(v):
        return f"{v * 1e3:.{digits}f}" if v is not None else ""

    print(f"  {'':<{width}}{'forward':>10}{'backward':>10}{'total':>10}{'share':>8}")
    rows = {}
    for (name, part), s in acc.items():
        rows.setdefault(name, {})[part] = s / steps
    for name, parts in rows.items():
        row_total = sum(parts.values())
        print(f"  {name:<{width}}{cell(parts.get('forward')):>10}{cell(parts.get('backward')):>10}"
              f"{cell(row_total):>10}{row_total / total:>8.1%}")
    rest = total - sum(acc.values()) / steps
    print(f"  {rest_label:<{width}}{'':>20}{cell(rest):>10}{rest / total:>8.1%}   ({rest_note})")
