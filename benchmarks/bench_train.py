"""Benchmark the framework's training step against the GEMM floor and PyTorch eager.

The reference MLP 784-256-128-10 (ReLU, softmax-cross-entropy), float32, on synthetic data of
MNIST's shape (60,000 x 784, no download). For each batch size it times, interleaved in the
same run so that load from other processes hits all of them alike:

  floor         the 8 matrix products of a step alone (3 forward, 3 dW, 2 dx; the first
                layer's dx is not needed), same shapes, into preallocated outputs
  framework     framework.fit itself, the loop train.py runs (bias log and progress bar
                off): a shuffled batch gathered, forward, loss, backward, the finiteness
                check, optimizer.step(), loss and accuracy counted; with SGD and with Adam
  torch         PyTorch eager running the same loop (torch.randperm, the batch gathered,
                nn.Sequential of Linear/ReLU, F.cross_entropy, torch.optim.SGD/Adam, loss
                and accuracy read out with .item()), same thread count; when importable

Each figure is the median over --reps repetitions of a block of steps (~--block seconds),
after a warm-up. Columns: samples/s; s/epoch (60,000 samples); "x floor" = step time / floor
step time (1.0 is the floor); "x torch" = framework throughput / PyTorch's (above 1: faster);
"over floor" = step time - floor step time in ms, the per-step cost that is not matrix
products (optimizer, elementwise work, Python calls): at batch 32 that is the fixed cost;
"spread" = interquartile range of the repetitions / median (large: the machine was busy).

    python benchmarks/bench_train.py                     # full table
    python benchmarks/bench_train.py --reps 3 --batch-sizes 128
    python benchmarks/bench_train.py --profile           # where a step's time goes, per layer
    python benchmarks/bench_train.py --json bench.json   # also write the figures
    python benchmarks/bench_train.py --idle-callbacks    # also fit with every run callback idle

OpenBLAS kernels: the benchmark runs with the environment it is given; the header names the
core OpenBLAS picked. To compare kernels, --coretype NAME runs the whole benchmark again in a
child process whose environment has OPENBLAS_CORETYPE=NAME (yours is left as it is):
    python benchmarks/bench_train.py --coretype Haswell   # AVX2 kernels
    python benchmarks/bench_train.py --coretype SkylakeX  # AVX-512 kernels, where the CPU has them
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import framework as fw

EPOCH = 60_000
SIZES = (784, 256, 128, 10)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="32,128,512",
                    help="comma-separated batch sizes (default 32,128,512)")
    ap.add_argument("--optimizers", default="sgd,adam", help="comma-separated: sgd, adam")
    ap.add_argument("--reps", type=int, default=9, help="timed repetitions per figure (median)")
    ap.add_argument("--block", type=float, default=0.4, help="seconds per repetition (approx.)")
    ap.add_argument("--warmup", type=float, default=0.3, help="seconds of warm-up per candidate")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch's threads (default: as many as OpenBLAS uses; set OpenBLAS's "
                         "own with OPENBLAS_NUM_THREADS in the environment)")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    ap.add_argument("--coretype", metavar="NAME",
                    help="run in a child process with OPENBLAS_CORETYPE=NAME "
                         "(e.g. Haswell, SkylakeX)")
    ap.add_argument("--idle-callbacks", action="store_true",
                    help="also time fit with train.py's callbacks set to do nothing on these steps")
    ap.add_argument("--profile", action="store_true",
                    help="only profile a step per layer (forward, backward, optimizer)")
    ap.add_argument("--profile-steps", type=int, default=300)
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)

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


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the candidates -------------------------------------------------------------------------

def reference_mlp(rng, dtype=np.float32):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:])):
        layers.append(fw.Affine(n_in, n_out, rng=rng, dtype=dtype))
        if i < len(SIZES) - 2:
            layers.append(fw.ReLU())
    return fw.Sequential(*layers)


def make_optimizer(name, params):
    return fw.Adam(params, lr=1e-3) if name == "adam" else fw.SGD(params, lr=0.05)


def epochs_of(steps, n, batch):
    """Sizes of the training sets that make `steps` steps: whole epochs of at most n examples."""
    per_epoch = n // batch
    return [min(per_epoch, steps - done) * batch for done in range(0, steps, per_epoch)]


class Timed:
    """A candidate: run(steps) does that many training steps; timed here."""

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
        return max(5, int(block / per_step))

    def seconds_per_step(self, steps):
        time.sleep(0.005)
        t0 = time.perf_counter()
        self.run(steps)
        return (time.perf_counter() - t0) / steps


class Framework(Timed):
    """framework.fit on the first examples of (x, t): the real loop, not a copy of it."""

    def __init__(self, opt, x, t, batch, seed):
        self.rng = np.random.default_rng(seed)
        self.model = reference_mlp(self.rng)
        self.loss_fn = fw.SoftmaxCrossEntropy()
        self.optimizer = make_optimizer(opt, self.model.parameters())
        self.x, self.t, self.batch = x, t, batch

    def callbacks(self):
        return [fw.CheckFinite()]

    def run(self, steps):
        for n in epochs_of(steps, len(self.x), self.batch):
            fw.fit(self.model, self.loss_fn, self.optimizer, (self.x[:n], self.t[:n]), epochs=1,
                   batch_size=self.batch, rng=self.rng, callbacks=self.callbacks())

    def check_dtypes(self):
        """Names of arrays that are not float32 after training (no silent upcasts)."""
        bad = [p.name for p in self.model.parameters()
               if p.data.dtype != np.float32 or p.grad.dtype != np.float32]
        bad += [f"{slot}.{i}" for slot, arrays in self.optimizer.state.items()
                for i, a in enumerate(arrays) if a.dtype != np.float32]
        return bad


class IdleCallbacks(Framework):
    """fit with train.py's callbacks, none of which has work on these steps: a constant lr,
    the non-finite check, the bias log (not on these steps), a hidden progress bar, early
    stopping."""

    def callbacks(self):
        return [fw.LRSchedule(fw.Constant(self.optimizer.lr)), fw.CheckFinite(),
                fw.BiasLog(every_epoch=False), fw.ProgressBar(bar=False, lines=False),
                fw.EarlyStopping(patience=1000)]


class Floor(Timed):
    """The step's 8 matrix products alone, into buffers allocated once."""

    def __init__(self, batch, rng):
        f32 = np.float32
        self.W = [rng.standard_normal((a, b), dtype=f32) for a, b in zip(SIZES, SIZES[1:])]
        self.h = [rng.standard_normal((batch, n), dtype=f32) for n in SIZES]  # x, h1, h2, logits
        self.dh = [rng.standard_normal((batch, n), dtype=f32) for n in SIZES]
        self.dW = [np.empty_like(W) for W in self.W]

    def run(self, steps):
        W, h, dh, dW, L = self.W, self.h, self.dh, self.dW, len(self.W)
        for _ in range(steps):
            for i in range(L):  # forward: h[i+1] = h[i] @ W[i]
                np.matmul(h[i], W[i], out=h[i + 1])
            # backward: dW[i] = h[i].T @ dh[i+1]; dh[i] = dh[i+1] @ W[i].T
            for i in reversed(range(L)):
                np.matmul(h[i].T, dh[i + 1], out=dW[i])
                if i > 0:
                    np.matmul(dh[i + 1], W[i].T, out=dh[i])


class Torch(Timed):
    def __init__(self, opt, x, t, batch, seed, threads):
        import torch
        import torch.nn.functional as F
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        self.torch, self.F = torch, F
        layers = []
        for i, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:])):
            layers.append(torch.nn.Linear(n_in, n_out))
            if i < len(SIZES) - 2:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        params = self.model.parameters()
        self.optimizer = (torch.optim.Adam(params, lr=1e-3) if opt == "adam"
                          else torch.optim.SGD(params, lr=0.05))
        self.x, self.t = torch.from_numpy(x), torch.from_numpy(t.astype(np.int64))
        self.batch = batch

    def run(self, steps):
        """The loop fit() runs, as a PyTorch user writes it."""
        torch, model, optimizer = self.torch, self.model, self.optimizer
        F, batch = self.F, self.batch
        for n in epochs_of(steps, len(self.x), batch):
            order = torch.randperm(n)
            total_loss, correct = 0.0, 0
            for first in range(0, n, batch):
                idx = order[first:first + batch]
                x, t = self.x[idx], self.t[idx]
                optimizer.zero_grad(set_to_none=True)
                logits = model(x)
                loss = F.cross_entropy(logits, t)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(x)
                correct += int((logits.argmax(dim=1) == t).sum())


class TorchProcess:
    """PyTorch in a child process: torch's OpenMP threads and OpenBLAS's worker (which spins
    ~0.1 s after each product) must not fight over the cores; in one process they made torch
    up to 30x slower. The parent waits idle while the child times its steps."""

    SETTLE = 0.15  # seconds for the parent's OpenBLAS worker to stop spinning

    def __init__(self, threads, seed):
        import subprocess
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--torch-worker", "--threads", str(threads),
             "--seed", str(seed)],
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

    def candidate(self, opt, batch):
        process = self

        class Remote:
            def calibrate(self, warmup, block):
                time.sleep(process.SETTLE)
                return int(process.ask("calibrate", opt, batch, warmup, block))

            def seconds_per_step(self, steps):
                time.sleep(process.SETTLE)
                return float(process.ask("time", opt, batch, steps))

        return Remote()


def torch_worker(args):
    """The child's loop: `version`, `calibrate opt batch warmup block`, `time opt batch steps`."""
    import torch
    x, t = synthetic_mnist(np.random.default_rng(args.seed))
    benches = {}

    def bench(opt, batch):
        if (opt, batch) not in benches:
            benches[opt, batch] = Torch(opt, x, t, batch, args.seed, args.threads)
        return benches[opt, batch]

    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "version":
            reply = f"{torch.__version__} threads={torch.get_num_threads()}"
        elif cmd == "calibrate":
            reply = bench(rest[0], int(rest[1])).calibrate(float(rest[2]), float(rest[3]))
        else:
            reply = bench(rest[0], int(rest[1])).seconds_per_step(int(rest[2]))
        print(reply, flush=True)


# --- timing ---------------------------------------------------------------------------------

def synthetic_mnist(rng, n=EPOCH):
    """Pixels in [0, 1] as float32 (MNIST's shape and range), labels 0..9."""
    x = rng.integers(0, 256, size=(n, SIZES[0]), dtype=np.uint8).astype(np.float32)
    x /= 255
    return x, rng.integers(0, 10, size=n).astype(np.intp)


def measure(candidates, reps, warmup, block):
    """Median seconds per step for each candidate, interleaved rep by rep."""
    steps = {name: c.calibrate(warmup, block) for name, c in candidates.items()}
    times = {name: [] for name in candidates}
    for _ in range(reps):
        for name, c in candidates.items():
            times[name].append(c.seconds_per_step(steps[name]))
    return {name: float(np.median(t)) for name, t in times.items()}, times


def have_torch(args):
    if args.no_torch:
        return False
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def run_table(args, x, t, torch_process):
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    optimizers = [o.strip().lower() for o in args.optimizers.split(",")]
    rows = []
    for batch in batch_sizes:
        candidates = {"floor": Floor(batch, np.random.default_rng(args.seed))}
        for opt in optimizers:
            candidates[f"framework {opt}"] = Framework(opt, x, t, batch, args.seed)
            if args.idle_callbacks:
                candidates[f"fw+idle {opt}"] = IdleCallbacks(opt, x, t, batch, args.seed)
            if torch_process is not None:
                candidates[f"torch {opt}"] = torch_process.candidate(opt, batch)
        median, times = measure(candidates, args.reps, args.warmup, args.block)
        for name, c in candidates.items():
            if isinstance(c, Framework) and c.check_dtypes():
                print(f"WARNING {name}: not float32 after training: {c.check_dtypes()}")
        floor = median["floor"]
        for name, s in median.items():
            kind, _, opt = name.partition(" ")
            row = {"batch": batch, "candidate": kind, "optimizer": opt or "-", "s_per_step": s,
                   "samples_per_s": batch / s, "s_per_epoch": EPOCH * s / batch,
                   "x_floor": s / floor, "over_floor_ms": (s - floor) * 1e3,
                   "spread": float(np.subtract(*np.percentile(times[name], [75, 25])) / s),
                   "s_per_step_reps": times[name]}
            if kind == "framework" and f"torch {opt}" in median:
                row["x_torch"] = median[f"torch {opt}"] / s
            rows.append(row)
        print_rows([r for r in rows if r["batch"] == batch], header=batch == batch_sizes[0])
    return rows


def print_rows(rows, header):
    if header:
        print(f"{'batch':>5}  {'candidate':<12}{'optim':<6}{'samples/s':>11}{'s/epoch':>9}"
              f"{'x floor':>9}{'x torch':>9}{'over floor':>12}{'spread':>8}")
    for r in rows:
        x_torch = f"{r['x_torch']:.2f}" if "x_torch" in r else ""
        over = (f"{r['over_floor_ms']:.3f} ms"
                if "over_floor_ms" in r and r["candidate"] != "floor" else "")
        spread = f"{r['spread']:.0%}" if "spread" in r else ""
        print(f"{r['batch']:>5}  {r['candidate']:<12}{r['optimizer']:<6}"
              f"{r['samples_per_s']:>11,.0f}{r['s_per_epoch']:>9.3f}{r['x_floor']:>9.2f}"
              f"{x_torch:>9}{over:>12}{spread:>8}")


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


def profile(args, x, t):
    """Per layer: seconds per step in forward and backward, the loss, and the optimizer."""
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for opt in [o.strip().lower() for o in args.optimizers.split(",")]:
            bench = Framework(opt, x, t, batch, args.seed)
            bench.run(50)  # warm-up, untimed
            acc = {}
            for layer in bench.model.layers:
                wrap_timer(layer, "forward", (layer.name, "forward"), acc)
                wrap_timer(layer, "backward", (layer.name, "backward"), acc)
            wrap_timer(bench.loss_fn, "forward", ("loss", "forward"), acc)
            wrap_timer(bench.loss_fn, "backward", ("loss", "backward"), acc)
            wrap_timer(bench.optimizer, "step", (f"{opt} step", ""), acc)
            floor = Floor(batch, np.random.default_rng(args.seed))
            floor.run(20)
            steps = args.profile_steps
            t0 = time.perf_counter()
            bench.run(steps)
            total = (time.perf_counter() - t0) / steps
            t0 = time.perf_counter()
            floor.run(steps)
            floor_s = (time.perf_counter() - t0) / steps
            print(f"\nprofile: batch {batch}, {opt}, {steps} steps: {total * 1e3:.3f} ms/step "
                  f"(GEMM floor {floor_s * 1e3:.3f} ms)")
            print(f"  {'':<16}{'forward':>10}{'backward':>10}{'total':>10}{'share':>8}")
            rows = {}
            for (name, part), s in acc.items():
                rows.setdefault(name, {})[part] = s / steps
            for name, parts in rows.items():
                fwd, bwd, other = parts.get("forward"), parts.get("backward"), parts.get("")
                tot = sum(v for v in (fwd, bwd, other) if v)
                cell = lambda v: f"{v * 1e3:.3f}" if v is not None else ""
                print(f"  {name:<16}{cell(fwd):>10}{cell(bwd):>10}{tot * 1e3:>10.3f}"
                      f"{tot / total:>8.1%}")
            rest = total - sum(acc.values()) / steps
            print(f"  {'step overhead':<16}{'':>10}{'':>10}{rest * 1e3:>10.3f}{rest / total:>8.1%}"
                  "   (fit's own work: batch gather, checks, accuracy; timers)")
            print("  (ms per step; Affine rows include their matrix products: "
                  "the floor above is all 8 of them)")


# --- main -----------------------------------------------------------------------------------

def main(args):
    core, threads = openblas_info()
    threads = args.threads or threads or os.cpu_count()
    print(f"numpy {np.__version__}, OpenBLAS core {core}, {threads} threads "
          f"(OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}); "
          f"{os.cpu_count()} CPUs; load average {load()}")
    x, t = synthetic_mnist(np.random.default_rng(args.seed))
    if args.profile:
        profile(args, x, t)
        return
    torch_process = torch_version = None
    if have_torch(args):
        torch_process = TorchProcess(threads, args.seed)
        torch_version = torch_process.version
        print(f"torch {torch_version} (in a child process, timed alternately with the rest)")
    print(f"reference MLP {'-'.join(map(str, SIZES))}, float32, medians of {args.reps} reps; "
          "x floor = step / GEMM floor; x torch = throughput / PyTorch eager's\n")
    try:
        rows = run_table(args, x, t, torch_process)
    finally:
        if torch_process is not None:
            torch_process.close()
    print(f"\nload average at the end {load()}")
    if args.json:
        import json
        meta = {"numpy": np.__version__, "openblas_core": core, "threads": threads,
                "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                "torch": torch_version,
                "cpus": os.cpu_count(), "reps": args.reps, "load_end": os.getloadavg()}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.coretype:
        from child_env import rerun_with_coretype  # beside this script
        sys.exit(rerun_with_coretype(__file__, ARGS.coretype))
    torch_worker(ARGS) if ARGS.torch_worker else main(ARGS)
