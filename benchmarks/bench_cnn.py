"""Benchmark a training step of the MNIST CNN against its GEMM floor and PyTorch eager.

The network of configs/mnist_cnn.yaml, read from it and built as train.py builds it, with
softmax-cross-entropy and Adam (lr 1e-3), float32, on synthetic data of MNIST's shape
(N, 1, 28, 28) (no download). A step is forward, loss, backward and Adam's update, on the next
batch of a fixed synthetic set. For each batch size it times, interleaved in the same run so
that load from other processes hits all alike:

  floor      the step's matrix products alone, same shapes and transpositions, into
             preallocated outputs: each Conv2D's and Affine's forward, dW and dX (no dX for
             the first layer: the input's gradient is not needed)
  framework  the step above
  torch      the same layers and step in PyTorch eager (nn.Sequential of the layers' twins,
             F.cross_entropy, torch.optim.Adam), same thread count, in a child process; when
             importable, and when every layer has a twin here (TWINS): a network with another
             layer (--set, a layer of your own) is timed on our side alone, saying so

Each figure is the median over --reps repetitions of a block of steps (~--block seconds), after
a warm-up. "x floor" = step time / floor step time; "x torch" = step time / PyTorch's (below 1:
faster than PyTorch). The peak resident memory of this process (and of the torch child) is
printed at the end.

    python benchmarks/bench_cnn.py                    # the table, batch 32 and 128
    python benchmarks/bench_cnn.py --profile          # where a step's time goes, per layer
    python benchmarks/bench_cnn.py --json cnn.json    # also write the figures
    python benchmarks/bench_cnn.py --coretype Haswell # again, in a child process with
                                                      # OPENBLAS_CORETYPE=Haswell
    python benchmarks/bench_cnn.py --set model.2=sigmoid
                # the network changed as train.py's --set changes it (here a layer with no
                # PyTorch twin here: the table has no torch column)
    python benchmarks/bench_cnn.py --ranks 2 --batch-sizes 128
                # data parallelism: 2 processes x 1 thread (mpiexec, framework.parallel)
                # against 1 process x 1 and x 2 threads and PyTorch x 2, for the CNN and
                # configs/mnist_mlp.yaml's MLP (--models cnn,mlp), in one run (ranks.py)

OpenBLAS kernels: the benchmark runs with the environment it is given; --coretype NAME runs it
in a child process whose environment sets OPENBLAS_CORETYPE=NAME (yours is left as it is).
"""
import argparse
import os
from pathlib import Path

import numpy as np
from ranks import model_of, ranks_table, ranks_worker
from timing import (
    Timed,
    batch_sizes,
    benchmark_parser,
    coretype_env,
    load_average,
    measure,
    not_float32,
    openblas_info,
    peak_rss_mb,
    print_parts,
    profile_step,
    run,
    serve_torch,
    spread,
    start_torch,
    synthetic_mnist,
    write_json,
)

import framework as F
from experiments.build import build_model
from experiments.config import load

EXAMPLES = 2048  # the synthetic set a step takes its batch from, in order
CNN = Path(__file__).resolve().parent.parent / "configs" / "mnist_cnn.yaml"


def parse_args(argv=None):
    ap = benchmark_parser(__doc__, batch_sizes="32,128", reps=7, block=0.5, warmup=0.5,
                          profile_steps=40)
    ap.add_argument("--ranks", type=int, metavar="K",
                    help="time K processes (mpiexec, 1 BLAS thread each) against 1 process with "
                         "1 thread and with all, and PyTorch (needs the mpi extra)")
    ap.add_argument("--models", default="cnn,mlp",
                    help="with --ranks: cnn (configs/mnist_cnn.yaml), mlp (mnist_mlp.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY.PATH=VALUE",
                    help="change configs/mnist_cnn.yaml's network as train.py's --set does "
                         "(not with --ranks)")
    ap.add_argument("--ranks-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ranks and args.overrides:
        ap.error("--set changes the CNN of the table and --profile, not --ranks' models")
    return args


def mnist(seed):
    return synthetic_mnist(np.random.default_rng(seed), EXAMPLES, (1, 28, 28))


# --- the candidates -------------------------------------------------------------------------

def cnn(rng, overrides=()):
    """The model of configs/mnist_cnn.yaml (with train.py's --set overrides), as train.py
    builds it."""
    return build_model(load(CNN, overrides), (1, 28, 28), rng)


def with_input_shapes(model):
    """(layer, the shape of one example going into it) for each layer of the model."""
    return zip(model.layers, [model.input_shape, *model.output_shapes(model.input_shape)])


class Framework(Timed):
    def __init__(self, x, t, batch, seed, overrides=()):
        self.model = cnn(np.random.default_rng(seed), overrides)
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


def floor_products(batch, model):
    """(A, B, out) for each matrix product of a step, as the model's layers compute them."""
    f32, rng = np.float32, np.random.default_rng(0)
    r = lambda *shape: rng.standard_normal(shape, dtype=f32)
    products = []
    for i, (layer, shape) in enumerate(with_input_shapes(model)):
        if isinstance(layer, F.Conv2D):
            out, oh, ow = layer.output_shape(shape)
            rows, k = batch * oh * ow, layer.W.data[0].size
            X, Wm, dYT = r(rows, k), r(out, k), r(out, rows)
            products += [(Wm, X.T, r(out, rows)), (dYT, X, r(out, k))]  # Y.T = Wm X.T; dW = dY.T X
            if i > 0:
                products.append((dYT.T, Wm, r(rows, k)))  # dX = dY Wm
        elif isinstance(layer, F.Affine):
            n_in, n_out = layer.W.data.shape
            x, W, dy = r(batch, n_in), r(n_in, n_out), r(batch, n_out)
            products += [(x, W, r(batch, n_out)), (x.T, dy, r(n_in, n_out))]
            if i > 0:
                products.append((dy, W.T, r(batch, n_in)))
    return products


class Floor(Timed):
    """The step's matrix products alone, into arrays allocated once."""

    def __init__(self, batch, overrides=()):
        self.products = floor_products(batch, cnn(np.random.default_rng(0), overrides))

    def run(self, steps):
        for _ in range(steps):
            for A, B, out in self.products:
                np.matmul(A, B, out=out)


class Torch(Timed):
    def __init__(self, x, t, batch, seed, model="cnn", overrides=()):
        import torch
        torch.manual_seed(seed)
        self.torch = torch
        ours = (cnn(np.random.default_rng(seed), overrides) if model == "cnn"
                else model_of(model, np.random.default_rng(seed)))
        self.model = torch_twin(ours, torch.nn)
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


def affine_twin(layer, shape, nn):
    """nn.Linear, after nn.Flatten for images (our Affine flattens them itself)."""
    return [nn.Flatten()] * (len(shape) > 1) + [nn.Linear(layer.in_features, layer.out_features)]


def batchnorm_twin(layer, shape, nn):
    norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return [norm(layer.num_features, eps=layer.eps, momentum=layer.momentum)]


# Our layer -> its PyTorch twin: (layer, the shape of an example reaching it, torch.nn) ->
# modules with the same settings. A layer not here (a new one, or one of your own) has no
# torch column: the table then times our side alone.
TWINS = {
    F.Conv2D: lambda layer, shape, nn: [nn.Conv2d(layer.in_channels, layer.out_channels,
                                                  layer.kernel_size, layer.stride,
                                                  layer.padding)],
    F.BatchNorm: batchnorm_twin,
    F.MaxPool2D: lambda layer, shape, nn: [nn.MaxPool2d(layer.kernel_size, layer.stride)],
    F.Affine: affine_twin,
    F.Dropout: lambda layer, shape, nn: [nn.Dropout(layer.p)],
    F.ReLU: lambda layer, shape, nn: [nn.ReLU()],
    F.Flatten: lambda layer, shape, nn: [nn.Flatten()],
}


def without_twin(model):
    """The names of the model's layers with no PyTorch twin here, each once."""
    return list(dict.fromkeys(type(layer).__name__ for layer in model.layers
                              if type(layer) not in TWINS))


def torch_twin(model, nn):
    """An nn.Sequential of PyTorch's layers matching the model's, with their settings."""
    return nn.Sequential(*[module for layer, shape in with_input_shapes(model)
                           for module in TWINS[type(layer)](layer, shape, nn)])


def torch_worker(args):
    """The child's side of TorchProcess: a candidate's key is its batch size (the CNN), or
    its model and batch size (--ranks)."""
    x, t = mnist(args.seed)
    serve_torch(lambda *key: Torch(x, t, int(key[-1]), args.seed, *key[:-1],
                                   overrides=args.overrides), args.threads)


# --- the table ------------------------------------------------------------------------------

def run_table(args, x, t, torch_process):
    rows = []
    print(f"{'batch':>5}  {'candidate':<10}{'ms/step':>9}{'samples/s':>11}{'x floor':>9}"
          f"{'x torch':>9}{'spread':>8}")
    for batch in batch_sizes(args):
        candidates = {"floor": Floor(batch, args.overrides),
                      "framework": Framework(x, t, batch, args.seed, args.overrides)}
        if torch_process is not None:
            candidates["torch"] = torch_process.candidate(batch)
        median, times = measure(candidates, args.reps, args.warmup, args.block)
        bad = not_float32(candidates["framework"].model, candidates["framework"].optimizer)
        if bad:
            print(f"WARNING framework: not float32 after training: {bad}")
        for name, s in median.items():
            row = {"batch": batch, "candidate": name, "s_per_step": s, "samples_per_s": batch / s,
                   "x_floor": s / median["floor"], "spread": spread(times[name], s),
                   "s_per_step_reps": times[name]}
            if "torch" in median:
                row["x_torch"] = s / median["torch"]
            rows.append(row)
            x_torch = f"{row['x_torch']:.2f}" if "x_torch" in row else ""
            print(f"{batch:>5}  {name:<10}{s * 1e3:>9.2f}{batch / s:>11,.0f}{row['x_floor']:>9.2f}"
                  f"{x_torch:>9}{row['spread']:>8.0%}")
    return rows


# --- profile --------------------------------------------------------------------------------

def profile(args, x, t):
    """Per layer: milliseconds per step in forward and backward, the loss and Adam's step."""
    for batch in batch_sizes(args):
        bench = Framework(x, t, batch, args.seed, args.overrides)
        floor = Floor(batch, args.overrides)
        bench.run(5)
        floor.run(5)
        steps = args.profile_steps
        acc, total, floor_s = profile_step(bench, floor, steps, "adam step")
        print(f"\nprofile: batch {batch}, {steps} steps: {total * 1e3:.2f} ms/step "
              f"(GEMM floor {floor_s * 1e3:.2f} ms)")
        print_parts(acc, steps, total, width=12, digits=2, rest_label="the rest",
                    rest_note="timers, loop")
        print("  (ms per step; Conv2D and Affine rows include their matrix products)")


# --- main -----------------------------------------------------------------------------------

def main(args):
    threads = args.threads or openblas_info()[1] or os.cpu_count()
    print(f"numpy {np.__version__}, {threads} threads for OpenBLAS and torch "
          f"(OPENBLAS_CORETYPE={coretype_env()}); "
          f"{os.cpu_count()} CPUs; load average {load_average(1)}")
    x, t = mnist(args.seed)
    if args.ranks:
        args.script = __file__
        torch_process = start_torch(__file__, args, threads)
        try:
            rows = ranks_table(args, x, t, torch_process, threads)
        finally:
            if torch_process is not None:
                torch_process.close()
        print(f"load average at the end {load_average(1)}")
        if args.json:
            write_json(args, rows, threads, torch_process and torch_process.version,
                       ranks=args.ranks)
        return
    if args.profile:
        profile(args, x, t)
        print(f"\npeak RSS {peak_rss_mb():.0f} MB")
        return
    missing = without_twin(cnn(np.random.default_rng(0), args.overrides))
    if missing:
        print(f"no PyTorch twin here for {', '.join(missing)}: timing our side alone (floor and "
              "framework), no torch column")
        torch_process = None
    else:
        sets = [word for item in args.overrides for word in ("--set", item)]
        torch_process = start_torch(__file__, args, threads, sets)
        if torch_process is None and not args.no_torch:
            print("torch not importable: no PyTorch column")
    torch_version = torch_process.version if torch_process is not None else None
    torch_rss = None
    changed = f" with --set {' --set '.join(args.overrides)}" if args.overrides else ""
    print(f"MNIST CNN{changed}, float32, medians of {args.reps} reps; "
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
          + f"; load average at the end {load_average(1)}")
    if args.json:
        write_json(args, rows, threads, torch_version, peak_rss_mb=rss,
                   torch_peak_rss_mb=torch_rss)


def worker(args):
    """A child's loop: PyTorch's (--torch-worker), or the K processes' (--ranks-worker)."""
    if args.ranks_worker:
        ranks_worker(args, *mnist(args.seed))
    else:
        torch_worker(args)


if __name__ == "__main__":
    args = parse_args()
    run(__file__, args, main, worker) if not args.ranks_worker else worker(args)
