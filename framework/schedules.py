"""Learning-rate schedules: callables step -> lr, where step counts optimizer steps from 0."""
import math


class Constant:
    """lr(step) = lr."""

    def __init__(self, lr):
        self.lr = lr

    def __call__(self, step):
        return self.lr


class StepDecay:
    """lr(step) = lr * gamma ** (step // every): multiply by gamma every `every` steps."""

    def __init__(self, lr, every, gamma=0.1):
        self.lr, self.every, self.gamma = lr, every, gamma

    def __call__(self, step):
        return self.lr * self.gamma ** (step // self.every)


class Cosine:
    """Linear warm-up over `warmup` steps, then lr(s) = final + (lr - final) (1 + cos(pi s / S)) / 2.

    S is the number of steps after warm-up, so the last step of training uses `final`.
    """

    def __init__(self, lr, total_steps, warmup=0, final=0.0):
        self.lr, self.total_steps, self.warmup, self.final = lr, total_steps, warmup, final

    def __call__(self, step):
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        span = max(self.total_steps - self.warmup - 1, 1)
        progress = min((step - self.warmup) / span, 1.0)
        return self.final + (self.lr - self.final) * 0.5 * (1 + math.cos(math.pi * progress))
