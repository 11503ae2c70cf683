"""Learning-rate schedules: callables step -> lr, where step counts optimizer steps from 0."""
import math


class Constant:
    """lr(step) = lr."""

    def __init__(self, lr):
        self.lr = lr

    def __call__(self, step):
        return self.lr


class StepDecay:
    """lr(step) = lr * gamma ** (step // every): multiply by gamma every `every` steps.

    A gamma > 1 grows the lr without bound: past the float range it is inf (float powers would
    raise OverflowError; LRSchedule stops a run on a non-finite lr).
    """

    def __init__(self, lr, every, gamma=0.1):
        self.lr, self.every, self.gamma = lr, every, gamma

    def __call__(self, step):
        try:
            return self.lr * self.gamma ** (step // self.every)
        except OverflowError:
            return math.inf


class Cosine:
    """lr(s) = final + (lr - final) (1 + cos(pi s / (S - 1))) / 2 for S = total_steps steps.

    Starts at lr and reaches `final` on the last step, then stays there.
    """

    def __init__(self, lr, total_steps, final=0.0):
        self.lr, self.total_steps, self.final = lr, total_steps, final

    def __call__(self, step):
        progress = min(step / max(self.total_steps - 1, 1), 1.0)
        return self.final + (self.lr - self.final) * 0.5 * (1 + math.cos(math.pi * progress))


class Warmup:
    """Any schedule after a linear warm-up: lr(s) = schedule(0) (s + 1) / steps for s < steps,
    then schedule(s - steps), so the wrapped schedule starts where the warm-up ends."""

    def __init__(self, schedule, steps):
        self.schedule, self.steps = schedule, steps

    def __call__(self, step):
        if step < self.steps:
            return self.schedule(0) * (step + 1) / self.steps
        return self.schedule(step - self.steps)
