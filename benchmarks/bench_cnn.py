"""Benchmark a training step of the MNIST CNN against its GEMM floor and PyTorch eager.

The CNN of configs/mnist_cnn.yaml, built from framework classes:
    conv 3x3 32 pad 1 - batchnorm - relu - maxpool 2 - conv 3x3 64 pad 1 - batchnorm - relu -
    maxpool 2 - flatten - affine 128 - relu - dropout 0.25 - affine 10, softmax-cross-entropy, Adam
float32, on synthetic data of MNIST's shape (N, 1, 28, 28) (no download). A step is forward,
loss, backward and Adam's update, on the next batch of a fixed synthetic set. For each batch
size it times, interleaved in the same run so that load from other processes hits all alike:

  floor      the step's matrix products alone, same shapes and transpositions, into
             preallocated outputs: conv1 forward and dW (no dx: the first layer's input
             gradient is not needed), conv2 forward, dW and dX, and both Affine layers'
             forward, dW and dx
  framework  the step above
  torch      the same model and step in PyTorch eager (nn.Sequential, F.cross_entropy,
             torch.optim.Adam), same thread count, in a child process; when importable

Each figure is the median over --reps repetitions of a block of steps (~--block seconds), after
a warm-up. "x floor" = step time / floor step time; "x torch" = step time / PyTorch's (below 1:
faster than PyTorch). The peak resident memory of this process (and of the torch child) is
printed at the end.

    python benchmarks/bench_cnn.py                    # the table, batch 32 and 128
    python benchmarks/bench_cnn.py --profile          # where a step's time goes, per layer
    python benchmarks/bench_cnn.py --json cnn.json    # also write the figures
    python benchmarks/bench_cnn.py --coretype Haswell # again, in a child process with
                                                      # OPENBLAS_CORETYPE=Haswell

OpenBLAS kernels: the benchmark runs with the environment it is given; --coretype NAME runs it
in a child process whose environment sets OPENBLAS_CORETYPE=NAME (yours is left as it is).
"""
import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import framework as F

EXAMPLES = 2048  # the synthetic set a step takes its batch from, in order


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="32,128", help="comma-separated (default 32,128)")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per figure (median)")
    ap.add_argument("--block", type=float, default=0.5, help="seconds per repetition (approx.)")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up per candidate")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch's threads (default: as many as OpenBLAS uses; set OpenBLAS's "
                         "own with OPENBLAS_NUM_THREADS in the environment)")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    ap.add_argument("--coretype", metavar="NAME",
                    help="run in a child process with OPENBLAS_CORETYPE=NAME "
                         "(e.g. Haswell, SkylakeX)")
    ap.add_argument("--profile", action="store_true",
                    help="only profile a step per layer (forward, backward, loss, Adam)")
    ap.add_argument("--profile-steps", type=int, default=40)
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def openblas_threads():
    """The number of threads numpy's OpenBLAS uses (threadpoolctl when present), else None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return next((pool["num_threads"] for pool in threadpool_info()
                 if pool.get("internal_api") == "openblas"), None)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def synthetic_mnist(rng, n=EXAMPLES):
    """Pixels in [0, 1] as float32, shape (n, 1, 28, 28), and labels 0..9."""
    x = rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8).astype(np.float32)
    x /= 255
    return x, rng.integers(0, 10, size=n)


# --- the candidates -------------------------------------------------------------------------

def cnn(rng):
    return F.Sequential(
        F.Conv2D(1, 32, 3, padding=1, rng=rng), F.BatchNorm(32), F.ReLU(), F.MaxPool2D(2),
        F.Conv2D(32, 64, 3, padding=1, rng=rng), F.BatchNorm(64), F.ReLU(), F.MaxPool2D(2),
        F.Flatten(), F.Affine(64 * 7 * 7, 128, rng=rng), F.ReLU(), F.Dropout(0.25, rng=rng),
        F.Affine(128, 10, rng=rng))


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
        return max(3, int(block / per_step))

    def seconds_per_step(self, steps):
        t0 = time.perf_counter()
        self.run(steps)
        return (time.perf_counter() - t0) / steps


class Framework(Timed):
    def __init__(self, x, t, batch, seed):
        self.model = cnn(np.random.default_rng(seed))
        self.loss_fn = F.SoftmaxCrossEntropy()
        self.optimizer = F.Adam(self.model.parameters(), lr=1e-3)
        self.x, self.t, self.batch, self.first = x, t, batch, 0

    def run(self, steps):
        model, loss_fn, optimizer, batch = self.model, self.loss_fn, self.optimizer, self.batch
        for _ in range(steps):
            if self.first + batch > len(self.x):
                self.first = 0
            x, t = self.x[self.first:self.first + batch], self.t[self.first:self.first + batch]
            self.first += batch
            loss_fn.forward(model.forward(x, train=True), t)
            model.backward(loss_fn.backward(), need_dx=False)
            optimizer.step()

    def not_float32(self):
        """Names of parameters, gradients, buffers or Adam moments that are not float32."""
        bad = [p.name for p in self.model.parameters()
               if p.data.dtype != np.float32 or p.grad.dtype != np.float32]
        bad += [f"{layer.name}.{k}" for layer in self.model.layers
                for k, a in layer.buffers().items() if a.dtype != np.float32]
        return bad + [f"{slot}.{i}" for slot, arrays in self.optimizer.state.items()
                      for i, a in enumerate(arrays) if a.dtype != np.float32]


def floor_products(batch):
    """(A, B, out) for each matrix product of a step, as Framework's layers compute them."""
    f32, rng = np.float32, np.random.default_rng(0)
    r = lambda *shape: rng.standard_normal(shape, dtype=f32)
    products = []
    convs = [(batch * 28 * 28, 9, 32, False), (batch * 14 * 14, 288, 64, True)]
    for rows, k, out, need_dx in convs:
        X, Wm, dYT = r(rows, k), r(out, k), r(out, rows)
        products += [(Wm, X.T, r(out, rows)), (dYT, X, r(out, k))]  # Y.T = Wm X.T; dW = dY.T X
        if need_dx:
            products.append((dYT.T, Wm, r(rows, k)))  # dX = dY Wm
    for n_in, n_out in [(3136, 128), (128, 10)]:
        x, W, dy = r(batch, n_in), r(n_in, n_out), r(batch, n_out)
        products += [(x, W, r(batch, n_out)), (x.T, dy, r(n_in, n_out)), (dy, W.T, r(batch, n_in))]
    return products


class Floor(Timed):
    """The step's matrix products alone, into arrays allocated once."""

    def __init__(self, batch):
        self.products = floor_products(batch)

    def run(self, steps):
        for _ in range(steps):
            for A, B, out in self.products:
                np.matmul(A, B, out=out)


class Torch(Timed):
    def __init__(self, x, t, batch, seed, threads):
        import torch
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        nn = torch.nn
        self.torch = torch
        self.model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(128, 10))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.x, self.t = torch.from_numpy(x), torch.from_numpy(t.astype(np.int64))
        self.batch, self.first = batch, 0

    def run(self, steps):
        """The step as a PyTorch user writes it."""
        model, optimizer, batch = self.model, self.optimizer, self.batch
        cross_entropy = self.torch.nn.functional.cross_entropy
        for _ in range(steps):
            if self.first + batch > len(self.x):
                self.first = 0
            x, t = self.x[self.first:self.first + batch], self.t[self.first:self.first + batch]
            self.first += batch
            optimizer.zero_grad(set_to_none=True)
            cross_entropy(model(x), t).backward()
            optimizer.step()


class TorchProcess:
    """PyTorch in a child process: torch's OpenMP threads and OpenBLAS's workers (which spin for
    a while after each product) must not fight over the cores. The parent waits idle, after a
    pause for its workers to go to sleep, while the child times its steps."""

    SETTLE = 0.15

    def __init__(self, threads, seed):
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

    def candidate(self, batch):
        process = self

        class Remote:
            def calibrate(self, warmup, block):
                time.sleep(process.SETTLE)
                return int(process.ask("calibrate", batch, warmup, block))

            def seconds_per_step(self, steps):
                time.sleep(process.SETTLE)
                return float(process.ask("time", batch, steps))

        return Remote()


def torch_worker(args):
    """The child's loop: `version`, `calibrate batch warmup block`, `time batch steps`, `rss`."""
    import torch
    x, t = synthetic_mnist(np.random.default_rng(args.seed))
    benches = {}
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "version":
            reply = f"{torch.__version__} threads={torch.get_num_threads()}"
        elif cmd == "rss":
            reply = f"{peak_rss_mb():.0f}"
        else:
            batch = int(rest[0])
            if batch not in benches:
                benches[batch] = Torch(x, t, batch, args.seed, args.threads)
            if cmd == "calibrate":
                reply = benches[batch].calibrate(float(rest[1]), float(rest[2]))
            else:
                reply = benches[batch].seconds_per_step(int(rest[1]))
        print(reply, flush=True)


# --- timing ---------------------------------------------------------------------------------

def measure(candidates, reps, warmup, block):
    """Median seconds per step for each candidate, interleaved rep by rep."""
    steps = {name: c.calibrate(warmup, block) for name, c in candidates.items()}
    times = {name: [] for name in candidates}
    for _ in range(reps):
        for name, c in candidates.items():
            times[name].append(c.seconds_per_step(steps[name]))
    return {name: float(np.median(t)) for name, t in times.items()}, times


def run_table(args, x, t, torch_process):
    rows = []
    print(f"{'batch':>5}  {'candidate':<10}{'ms/step':>9}{'samples/s':>11}{'x floor':>9}"
          f"{'x torch':>9}{'spread':>8}")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        candidates = {"floor": Floor(batch), "framework": Framework(x, t, batch, args.seed)}
        if torch_process is not None:
            candidates["torch"] = torch_process.candidate(batch)
        median, times = measure(candidates, args.reps, args.warmup, args.block)
        bad = candidates["framework"].not_float32()
        if bad:
            print(f"WARNING framework: not float32 after training: {bad}")
        for name, s in median.items():
            row = {"batch": batch, "candidate": name, "s_per_step": s, "samples_per_s": batch / s,
                   "x_floor": s / median["floor"],
                   "spread": float(np.subtract(*np.percentile(times[name], [75, 25])) / s),
                   "s_per_step_reps": times[name]}
            if "torch" in median:
                row["x_torch"] = s / median["torch"]
            rows.append(row)
            x_torch = f"{row['x_torch']:.2f}" if "x_torch" in row else ""
            print(f"{batch:>5}  {name:<10}{s * 1e3:>9.2f}{batch / s:>11,.0f}{row['x_floor']:>9.2f}"
                  f"{x_torch:>9}{row['spread']:>8.0%}")
    return rows


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
    """Per layer: milliseconds per step in forward and backward, the loss and Adam's step."""
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        bench, floor = Framework(x, t, batch, args.seed), Floor(batch)
        bench.run(5)
        floor.run(5)
        acc = {}
        for layer in bench.model.layers:
            wrap_timer(layer, "forward", (layer.name, "forward"), acc)
            wrap_timer(layer, "backward", (layer.name, "backward"), acc)
        wrap_timer(bench.loss_fn, "forward", ("loss", "forward"), acc)
        wrap_timer(bench.loss_fn, "backward", ("loss", "backward"), acc)
        wrap_timer(bench.optimizer, "step", ("adam step", ""), acc)
        steps = args.profile_steps
        total = bench.seconds_per_step(steps)
        floor_s = floor.seconds_per_step(steps)
        print(f"\nprofile: batch {batch}, {steps} steps: {total * 1e3:.2f} ms/step "
              f"(GEMM floor {floor_s * 1e3:.2f} ms)")
        print(f"  {'':<12}{'forward':>10}{'backward':>10}{'total':>10}{'share':>8}")
        parts = {}
        for (name, part), s in acc.items():
            parts.setdefault(name, {})[part] = s / steps
        cell = lambda v: f"{v * 1e3:.2f}" if v is not None else ""
        for name, p in parts.items():
            row_total = sum(p.values())
            print(f"  {name:<12}{cell(p.get('forward')):>10}{cell(p.get('backward')):>10}"
                  f"{row_total * 1e3:>10.2f}{row_total / total:>8.1%}")
        rest = total - sum(acc.values()) / steps
        print(f"  {'the rest':<12}{'':>20}{rest * 1e3:>10.2f}{rest / total:>8.1%}   (timers, loop)")
        print("  (ms per step; Conv2D and Affine rows include their matrix products)")


# --- main -----------------------------------------------------------------------------------

def main(args):
    threads = args.threads or openblas_threads() or os.cpu_count()
    print(f"numpy {np.__version__}, {threads} threads for OpenBLAS and torch "
          f"(OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}); "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    x, t = synthetic_mnist(np.random.default_rng(args.seed))
    if args.profile:
        profile(args, x, t)
        print(f"\npeak RSS {peak_rss_mb():.0f} MB")
        return
    torch_process = torch_version = torch_rss = None
    if not args.no_torch:
        try:
            import importlib.util
            found = importlib.util.find_spec("torch") is not None
        except ImportError:
            found = False
        if found:
            torch_process = TorchProcess(threads, args.seed)
            torch_version = torch_process.version
            print(f"torch {torch_version} (in a child process, timed alternately with the rest)")
        else:
            print("torch not importable: no PyTorch column")
    print(f"MNIST CNN, float32, medians of {args.reps} reps; "
          "x floor = step / GEMM floor; x torch = step / PyTorch eager's step\n")
    try:
        rows = run_table(args, x, t, torch_process)
        if torch_process is not None:
            torch_rss = float(torch_process.ask("rss"))
    finally:
        if torch_process is not None:
            torch_process.close()
    rss = peak_rss_mb()
    print(f"\npeak RSS: this process {rss:.0f} MB"
          + (f", torch child {torch_rss:.0f} MB" if torch_rss is not None else "")
          + f"; load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        import json
        meta = {"numpy": np.__version__, "threads": threads, "torch": torch_version,
                "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                "cpus": os.cpu_count(), "reps": args.reps,
                "peak_rss_mb": rss, "torch_peak_rss_mb": torch_rss}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.coretype:
        from child_env import rerun_with_coretype  # beside this script
        sys.exit(rerun_with_coretype(__file__, ARGS.coretype))
    torch_worker(ARGS) if ARGS.torch_worker else main(ARGS)
