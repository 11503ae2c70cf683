"""Why does Adam cost more inside fit than timed alone? Probes for the gap benchmarks/README.md
reports on AVX-512 Xeons (about 4 ms a step over the GEMM floor in fit, 0.4 ms alone).

bench_train.py's setting: the reference MLP 784-256-128-10 on synthetic MNIST-shaped data, Adam
(lr 1e-3), float32. It trains with framework.fit for --epochs epochs, and for each epoch prints:

  in fit      milliseconds per optimizer.step() inside fit, and the page faults (minor, from
              getrusage) and context switches (/proc/self/status) per step during fit
  alone       the same optimizer.step() on a copy of the model and of Adam's state, with the
              gradients fit left, timed in a loop of its own
  fresh       the same, on a fresh Adam state and random normal gradients (bench_micro's case)
  subnormal   how many entries of Adam's state M and V (and of the weights and gradients) are
              subnormal (nonzero and below 1.18e-38 in size), the numbers many CPUs handle
              slowly: M decays by beta1 = 0.9 a step where the gradient is 0 (a dead ReLU unit's
              weights), reaching that range after about 800 steps

If "alone" on fit's state is as slow as "in fit" while "fresh" is fast, the values are the
cause (subnormals); if "in fit" alone is slow, it is the surroundings (page faults, caches,
threads). A last line times a multiply of an array of subnormals against one of normal numbers.

    python benchmarks/adam_probe.py                  # 4 epochs at batch 128
    python benchmarks/adam_probe.py --batch 32 --epochs 2
"""
import argparse
import copy
import resource
import time

import numpy as np
from timing import load_average, synthetic_mnist

import framework as F

SIZES = (784, 256, 128, 10)
TINY = np.finfo(np.float32).tiny


def reference_mlp(rng):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:])):
        layers.append(F.Affine(n_in, n_out, rng=rng))
        if i < len(SIZES) - 2:
            layers.append(F.ReLU())
    return F.Sequential(*layers)


def switches():
    """(voluntary, involuntary) context switches of this process so far."""
    with open("/proc/self/status", encoding="ascii") as f:
        fields = dict(line.split(":", 1) for line in f if "ctxt_switches" in line)
    return int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"])


class StepTimer(F.Callback):
    """Times optimizer.step() inside fit: the time from after_backward's end to on_step_end
    (the callbacks between are ours and do nothing), with page faults and switches per step."""

    def on_epoch_start(self, state):
        self.seconds, self.steps = 0.0, 0
        self.faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self.switches0 = switches()

    def after_backward(self, state):
        self.started = time.perf_counter()

    def on_step_end(self, state):
        self.seconds += time.perf_counter() - self.started
        self.steps += 1

    def per_step(self):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults0
        voluntary, involuntary = np.subtract(switches(), self.switches0)
        return (self.seconds / self.steps * 1e3, faults / self.steps,
                (voluntary + involuntary) / self.steps)


def time_steps(optimizer, reps=200):
    """Milliseconds per optimizer.step(), the median of 5 loops of reps steps."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            optimizer.step()
        times.append((time.perf_counter() - t0) / reps)
    return float(np.median(times)) * 1e3


def subnormal_share(arrays):
    """The share of entries that are subnormal, over all the arrays."""
    total = sum(a.size for a in arrays)
    return sum(int(((a != 0) & (np.abs(a) < TINY)).sum()) for a in arrays) / total


def alone(model, optimizer, fresh):
    """optimizer.step() timed on a copy (of the model, and of Adam's state unless fresh)."""
    twin = copy.deepcopy(model)
    params = twin.parameters()
    if fresh:
        rng = np.random.default_rng(1)
        for p in params:
            p.grad = rng.standard_normal(p.data.shape, dtype=np.float32)
        return time_steps(F.Adam(params, lr=1e-3))
    twin_optimizer = F.Adam(params, lr=1e-3)
    twin_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    for p, q in zip(params, model.parameters()):
        p.grad = q.grad.copy()
    return time_steps(twin_optimizer)


def multiply_us(value, n=200_704, reps=300):
    a, out = np.full(n, value, np.float32), np.empty(n, np.float32)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            np.multiply(a, np.float32(0.9), out=out)
        times.append((time.perf_counter() - t0) / reps)
    return float(np.median(times)) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x, t = synthetic_mnist(np.random.default_rng(0), 60_000, SIZES[:1])
    model = reference_mlp(rng)
    optimizer = F.Adam(model.parameters(), lr=1e-3)
    timer = StepTimer()
    print(f"load average {load_average()}; batch {args.batch}; ms per Adam step")
    print(f"{'epoch':>5}{'in fit':>9}{'faults':>8}{'switches':>10}{'alone':>8}{'fresh':>8}"
          f"{'subnormal M':>13}{'V':>9}{'W':>9}{'grad':>9}")
    for epoch in range(1, args.epochs + 1):
        F.fit(model, F.SoftmaxCrossEntropy(), optimizer, (x, t), epochs=1,
              batch_size=args.batch, rng=rng, callbacks=[timer])
        in_fit, faults, switched = timer.per_step()
        state = optimizer.state
        shares = [subnormal_share(state[slot]) for slot in ("M", "V")]
        shares += [subnormal_share([p.data for p in model.parameters()]),
                   subnormal_share([p.grad for p in model.parameters()])]
        print(f"{epoch:>5}{in_fit:>9.3f}{faults:>8.1f}{switched:>10.2f}"
              f"{alone(model, optimizer, False):>8.3f}{alone(model, optimizer, True):>8.3f}"
              + "".join(f"{share:>{13 if i == 0 else 9}.2%}" for i, share in enumerate(shares)))
    print(f"\nnp.multiply of 200,704 float32 by 0.9: normal numbers {multiply_us(1e-3):.0f} us, "
          f"subnormal {multiply_us(1e-39):.0f} us; load average {load_average()}")


if __name__ == "__main__":
    main()
