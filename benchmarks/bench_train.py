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
import os

import numpy as np
from timing import (
    Timed,
    batch_sizes,
    benchmark_parser,
    coretype_env,
    load_average,
    measure,
    not_float32,
    openblas_info,
    print_parts,
    profile_step,
    run,
    serve_torch,
    spread,
    start_torch,
    synthetic_mnist,
    write_json,
)

import framework as fw

EPOCH = 60_000
SIZES = (784, 256, 128, 10)


def parse_args(argv=None):
    ap = benchmark_parser(__doc__, batch_sizes="32,128,512", reps=9, block=0.4, warmup=0.3,
                          profile_steps=300)
    ap.add_argument("--optimizers", default="sgd,adam", help="comma-separated: sgd, adam")
    ap.add_argument("--idle-callbacks", action="store_true",
                    help="also time fit with train.py's callbacks set to do nothing on these steps")
    return ap.parse_args(argv)


def optimizers(args):
    return [o.strip().lower() for o in args.optimizers.split(",")]


def mnist(seed):
    return synthetic_mnist(np.random.default_rng(seed), EPOCH, SIZES[:1])


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


class Step(Timed):
    """This MLP's step is short, so a block has more of them, and the timer waits a moment
    before each block for threads of the previous candidate to go quiet."""

    min_steps = 5
    pause = 0.005


class Framework(Step):
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


class IdleCallbacks(Framework):
    """fit with train.py's callbacks, none of which has work on these steps: a constant lr,
    the non-finite check, the bias log (not on these steps), a hidden progress bar, early
    stopping."""

    def callbacks(self):
        return [fw.LRSchedule(fw.Constant(self.optimizer.lr)), fw.CheckFinite(),
                fw.BiasLog(every_epoch=False), fw.ProgressBar(bar=False, lines=False),
                fw.EarlyStopping(patience=1000)]


class Floor(Step):
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


class Torch(Step):
    def __init__(self, opt, x, t, batch, seed):
        import torch
        import torch.nn.functional as F
        torch.manual_seed(seed)
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


def torch_worker(args):
    """The child's side of TorchProcess: a candidate's key is its optimizer and batch size."""
    x, t = mnist(args.seed)
    serve_torch(lambda opt, batch: Torch(opt, x, t, int(batch), args.seed), args.threads)


# --- the table ------------------------------------------------------------------------------

def candidates_for(args, x, t, batch, torch_process):
    candidates = {"floor": Floor(batch, np.random.default_rng(args.seed))}
    for opt in optimizers(args):
        candidates[f"framework {opt}"] = Framework(opt, x, t, batch, args.seed)
        if args.idle_callbacks:
            candidates[f"fw+idle {opt}"] = IdleCallbacks(opt, x, t, batch, args.seed)
        if torch_process is not None:
            candidates[f"torch {opt}"] = torch_process.candidate(opt, batch)
    return candidates


def table_row(batch, name, median, times):
    s, floor = median[name], median["floor"]
    kind, _, opt = name.partition(" ")
    row = {"batch": batch, "candidate": kind, "optimizer": opt or "-", "s_per_step": s,
           "samples_per_s": batch / s, "s_per_epoch": EPOCH * s / batch,
           "x_floor": s / floor, "over_floor_ms": (s - floor) * 1e3,
           "spread": spread(times[name], s), "s_per_step_reps": times[name]}
    if kind == "framework" and f"torch {opt}" in median:
        row["x_torch"] = median[f"torch {opt}"] / s
    return row


def run_table(args, x, t, torch_process):
    rows = []
    for batch in batch_sizes(args):
        candidates = candidates_for(args, x, t, batch, torch_process)
        median, times = measure(candidates, args.reps, args.warmup, args.block)
        for name, c in candidates.items():
            bad = isinstance(c, Framework) and not_float32(c.model, c.optimizer)
            if bad:
                print(f"WARNING {name}: not float32 after training: {bad}")
        new = [table_row(batch, name, median, times) for name in median]
        print_rows(new, header=not rows)
        rows += new
    return rows


def print_rows(rows, header):
    if header:
        print(f"{'batch':>5}  {'candidate':<12}{'optim':<6}{'samples/s':>11}{'s/epoch':>9}"
              f"{'x floor':>9}{'x torch':>9}{'over floor':>12}{'spread':>8}")
    for r in rows:
        x_torch = f"{r['x_torch']:.2f}" if "x_torch" in r else ""
        over = (f"{r['over_floor_ms']:.3f} ms"
                if "over_floor_ms" in r and r["candidate"] != "floor" else "")
        iqr = f"{r['spread']:.0%}" if "spread" in r else ""
        print(f"{r['batch']:>5}  {r['candidate']:<12}{r['optimizer']:<6}"
              f"{r['samples_per_s']:>11,.0f}{r['s_per_epoch']:>9.3f}{r['x_floor']:>9.2f}"
              f"{x_torch:>9}{over:>12}{iqr:>8}")


# --- profile --------------------------------------------------------------------------------

def profile(args, x, t):
    """Per layer: seconds per step in forward and backward, the loss, and the optimizer."""
    for batch in batch_sizes(args):
        for opt in optimizers(args):
            bench = Framework(opt, x, t, batch, args.seed)
            bench.run(50)  # warm-up, untimed
            floor = Floor(batch, np.random.default_rng(args.seed))
            floor.run(20)
            steps = args.profile_steps
            acc, total, floor_s = profile_step(bench, floor, steps, f"{opt} step")
            print(f"\nprofile: batch {batch}, {opt}, {steps} steps: {total * 1e3:.3f} ms/step "
                  f"(GEMM floor {floor_s * 1e3:.3f} ms)")
            print_parts(acc, steps, total, width=16, digits=3, rest_label="step overhead",
                        rest_note="fit's own work: batch gather, checks, accuracy; timers")
            print("  (ms per step; Affine rows include their matrix products: "
                  "the floor above is all 8 of them)")


# --- main -----------------------------------------------------------------------------------

def main(args):
    core, threads = openblas_info()
    threads = args.threads or threads or os.cpu_count()
    print(f"numpy {np.__version__}, OpenBLAS core {core}, {threads} threads "
          f"(OPENBLAS_CORETYPE={coretype_env()}); "
          f"{os.cpu_count()} CPUs; load average {load_average()}")
    x, t = mnist(args.seed)
    if args.profile:
        profile(args, x, t)
        return
    torch_process = start_torch(__file__, args, threads)
    torch_version = torch_process.version if torch_process is not None else None
    print(f"reference MLP {'-'.join(map(str, SIZES))}, float32, medians of {args.reps} reps; "
          "x floor = step / GEMM floor; x torch = throughput / PyTorch eager's\n")
    try:
        rows = run_table(args, x, t, torch_process)
    finally:
        if torch_process is not None:
            torch_process.close()
    print(f"\nload average at the end {load_average()}")
    if args.json:
        write_json(args, rows, threads, torch_version, openblas_core=core,
                   load_end=os.getloadavg())


if __name__ == "__main__":
    run(__file__, parse_args(), main, torch_worker)
