"""Each small speed-up in the training step, timed both ways in one run.

The comments in framework/ say why each of these choices was made; this script measures them
on your machine and numpy (the figures in benchmarks/README.md came from it):

  relu        np.maximum(x, 0) against np.maximum(x, zeros), on an MLP's  (ReLU.forward)
              (N, 256) and a CNN's (N, 32, 28, 28) activations
  row max     reduce(np.maximum, z.T) against z.max(axis=1)           (SoftmaxCrossEntropy)
  gather      np.take(..., out=, mode="clip") against mode="raise"    (fit's batch)
  dW          matmul into the kept grad array against a new array    (Affine.backward)
  adam        the in-place update against one written with temporaries (Adam.update)

    python benchmarks/bench_micro.py            # batch 128 and 512
    python benchmarks/bench_micro.py --reps 51
"""
import argparse
import functools
import time

import numpy as np

import framework as F


def median_us(fn, reps, inner):
    """Median over `reps` of the mean time of `inner` calls, in microseconds."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return float(np.median(times)) * 1e6


def cases(batch, rng):
    """(name, the project's way, the plain way) for one batch size."""
    x = rng.standard_normal((batch, 256), dtype=np.float32)
    zeros = np.zeros_like(x)
    images = rng.standard_normal((batch, 32, 28, 28), dtype=np.float32)
    image_zeros = np.zeros_like(images)
    z = rng.standard_normal((batch, 10), dtype=np.float32)
    data = rng.standard_normal((60_000, 784), dtype=np.float32)
    index = rng.permutation(60_000)[:batch]
    out = np.empty((batch, 784), np.float32)
    h = rng.standard_normal((batch, 784), dtype=np.float32)
    dy = rng.standard_normal((batch, 256), dtype=np.float32)
    kept = np.empty((784, 256), np.float32)
    return [
        ("relu mlp", lambda: np.maximum(x, 0), lambda: np.maximum(x, zeros)),
        ("relu conv", lambda: np.maximum(images, 0), lambda: np.maximum(images, image_zeros)),
        ("row max", lambda: functools.reduce(np.maximum, z.T), lambda: z.max(axis=1)),
        ("gather", lambda: np.take(data, index, axis=0, out=out, mode="clip"),
         lambda: np.take(data, index, axis=0, out=out)),
        ("dW", lambda: np.matmul(h.T, dy, out=kept), lambda: h.T @ dy),
    ]


def adam_cases(rng):
    """Adam's step on the reference MLP's 235k parameters: in place against temporaries."""
    shapes = [(784, 256), (256,), (256, 128), (128,), (128, 10), (10,)]
    params = [F.Parameter(rng.standard_normal(s, dtype=np.float32)) for s in shapes]
    for p in params:
        p.grad = rng.standard_normal(p.data.shape, dtype=np.float32)
    optimizer = F.Adam(params, lr=1e-3)
    m = [np.zeros_like(p.data) for p in params]
    v = [np.zeros_like(p.data) for p in params]
    state = {"t": 0}

    def with_temporaries():
        state["t"] += 1
        t, b1, b2 = state["t"], 0.9, 0.999
        for p, mi, vi in zip(params, m, v):
            mi[...] = b1 * mi + (1 - b1) * p.grad
            vi[...] = b2 * vi + (1 - b2) * p.grad * p.grad
            p.data -= 1e-3 * (mi / (1 - b1 ** t)) / (np.sqrt(vi / (1 - b2 ** t)) + 1e-8)

    return [("adam step", optimizer.step, with_temporaries)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="128,512")
    ap.add_argument("--reps", type=int, default=31)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}; medians of {args.reps}; microseconds per call")
    print(f"{'case':<12}{'batch':>6}{'ours':>10}{'plain':>10}{'plain/ours':>12}")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for name, ours, plain in cases(batch, rng):
            a, b = median_us(ours, args.reps, 50), median_us(plain, args.reps, 50)
            print(f"{name:<12}{batch:>6}{a:>10.1f}{b:>10.1f}{b / a:>12.2f}")
    for name, ours, plain in adam_cases(rng):
        a, b = median_us(ours, args.reps, 5), median_us(plain, args.reps, 5)
        print(f"{name:<12}{'-':>6}{a:>10.1f}{b:>10.1f}{b / a:>12.2f}")


if __name__ == "__main__":
    main()
