"""Optimizers: take the parameter list once, then step() after each backward.

Update rules are PyTorch's documented ones (at a constant learning rate). Weight decay,
where given, is L2 added to the gradient (g + wd * w) of weights only (ndim >= 2), never
of biases. The incoming gradients are never modified. Each optimizer's settings are its
constructor's checked arguments (framework.checks), with PyTorch's defaults.

The updates run in place, through one scratch array per parameter (`self.scratch(i)`), so a
step allocates nothing: each numpy operation is one pass over the parameter, where
`p.data -= lr * g` would also make a temporary as large as p, and fault its pages in, every step.
All scalars are Python floats, which keep float32 arrays float32.
"""
import math

import numpy as np

from .broadcast import reuse
from .checks import Integer, Invalid, Real, checked, settings
from .registry import Registry

LR = Real(0, low_open=True)  # learning rate
DECAY = Real(0)  # weight decay
RATE = Real(0, 1, high_open=True)  # a decay rate of a running average: momentum, alpha, betas
EPS = Real(0, low_open=True)  # added to a denominator


class Optimizer:
    """Base class: checks each gradient's shape, applies weight decay, calls update(i, p, g)."""

    slots = ()  # names of per-parameter state arrays, e.g. ("M", "V")
    squares = ()  # the slots that add up squared gradients: never negative

    def __init__(self, params, lr, weight_decay=0.0):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        first = {}
        for i, p in enumerate(self.params):
            if id(p) in first:
                raise ValueError(f"{p.name or 'a parameter'} is listed twice (positions "
                                 f"{first[id(p)]} and {i}): it would be stepped twice per step")
            first[id(p)] = i
        self.lr, self.weight_decay, self.t = lr, weight_decay, 0
        self.hyper = tuple(settings(type(self)))
        self.state = {slot: [np.zeros_like(p.data) for p in self.params] for slot in self.slots}
        self._scratch = [None] * len(self.params)

    def scratch(self, i):
        """A work array like parameter i's data, allocated once (again if data changes shape or
        dtype)."""
        data = self.params[i].data
        self._scratch[i] = reuse(self._scratch[i], data.shape, data.dtype)
        return self._scratch[i]

    def step(self):
        self.t += 1
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None or g.shape != p.data.shape:
                raise ValueError(
                    f"{p.name or f'parameter {i}'}: grad shape {None if g is None else g.shape} "
                    f"!= data shape {p.data.shape}. A batched gradient must be reduced over the "
                    "batch (for a bias: db = dY.sum(axis=0)).")
            if self.weight_decay and p.data.ndim >= 2:
                g = self.decay(p, g)
            self.update(i, p, g)

    def decay(self, p, g):
        """Weight decay as L2: the gradient of wd/2 |w|² joins g (a new array: g is the user's)."""
        return g + self.weight_decay * p.data

    def update(self, i, p, g):
        raise NotImplementedError

    def state_dict(self):
        state = {name: getattr(self, name) for name in self.hyper + ("t",)}
        for slot, arrays in self.state.items():
            state.update({f"{slot}.{i}": a for i, a in enumerate(arrays)})
        return state

    def load_state_dict(self, state):
        """Restores settings, step count and per-parameter state; refuses a state of another
        optimizer or of other parameters (checked before anything changes)."""
        expected = set(self.hyper) | {"t"} | {f"{slot}.{i}" for slot in self.slots
                                              for i in range(len(self.params))}
        if set(state) != expected:
            raise ValueError(f"optimizer state does not fit {type(self).__name__}: missing "
                             f"{sorted(expected - set(state))}, "
                             f"unexpected {sorted(set(state) - expected)}")
        for slot, arrays in self.state.items():
            for i, a in enumerate(arrays):
                if np.shape(state[f"{slot}.{i}"]) != a.shape:
                    raise ValueError(f"optimizer {slot}.{i}: shape "
                                     f"{np.shape(state[f'{slot}.{i}'])} in the state, {a.shape} "
                                     f"for parameter {self.params[i].name}")
                if slot in self.squares and np.any(np.asarray(state[f"{slot}.{i}"]) < 0):
                    raise ValueError(f"optimizer {slot}.{i}: a sum of squared gradients holds a "
                                     "negative value")
        # Each setting passes the constructor's own check (a file may hold beta1 = 5 or t = 2.7).
        checks = {name: check for name, (_, check) in settings(type(self)).items()}
        checks["lr"] = Real(0)  # a schedule may have brought it down to 0 (cosine's last step)
        checks["t"] = Integer(0)
        values = {}
        for name, check in checks.items():
            value = state[name]
            value = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
            try:
                values[name] = check(value)
            except Invalid as e:
                raise ValueError(f"optimizer {name}: {e.problem}") from None
        for name, value in values.items():
            setattr(self, name, value)
        for slot, arrays in self.state.items():
            for i, a in enumerate(arrays):
                a[...] = state[f"{slot}.{i}"]



# The optimizers a config can name, each listed by @register_optimizer (framework/registry.py).
OPTIMIZERS = Registry("optimizer", Optimizer, supplied=("params",))
register_optimizer = OPTIMIZERS.register


@register_optimizer
class SGD(Optimizer):
    """w <- w - lr * g."""

    @checked
    def __init__(self, params, lr: LR = 1e-3, weight_decay: DECAY = 0.0):
        super().__init__(params, lr, weight_decay)

    def update(self, i, p, g):
        p.data -= np.multiply(g, float(self.lr), out=self.scratch(i))


@register_optimizer
class Momentum(Optimizer):
    """v <- mu * v - lr * g;  w <- w + v.  (= torch.optim.SGD(momentum=mu), whose b = -v / lr.)"""

    slots = ("v",)

    @checked
    def __init__(self, params, lr: LR = 0.01, momentum: RATE = 0.9, weight_decay: DECAY = 0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum

    def update(self, i, p, g):
        v = self.state["v"][i]
        v *= self.momentum
        v -= np.multiply(g, float(self.lr), out=self.scratch(i))
        p.data += v


@register_optimizer
class Nesterov(Momentum):
    """v <- mu * v - lr * g;  w <- w + mu * v - lr * g.
    (= torch.optim.SGD(momentum=mu, nesterov=True).)

    Momentum's state and settings; only the step differs: it looks ahead along v.
    """

    def update(self, i, p, g):
        v, lr_g = self.state["v"][i], np.multiply(g, float(self.lr), out=self.scratch(i))
        v *= self.momentum
        v -= lr_g
        p.data -= lr_g
        p.data += np.multiply(v, self.momentum, out=lr_g)  # the scratch again, now mu * v


@register_optimizer
class AdaGrad(Optimizer):
    """h <- h + g²;  w <- w - lr * g / (sqrt(h) + eps)."""

    slots = ("h",)
    squares = ("h",)

    @checked
    def __init__(self, params, lr: LR = 0.01, eps: EPS = 1e-10, weight_decay: DECAY = 0.0):
        super().__init__(params, lr, weight_decay)
        self.eps = eps

    def update(self, i, p, g):
        h, s = self.state["h"][i], self.scratch(i)
        h += np.multiply(g, g, out=s)
        denom = np.sqrt(h, out=s)
        denom += self.eps
        p.data -= lr_times_ratio(float(self.lr), g, denom)


@register_optimizer
class RMSprop(Optimizer):
    """v <- alpha * v + (1 - alpha) * g²;  w <- w - lr * g / (sqrt(v) + eps)."""

    slots = ("v",)
    squares = ("v",)

    @checked
    def __init__(self, params, lr: LR = 0.01, alpha: RATE = 0.99, eps: EPS = 1e-8,
                 weight_decay: DECAY = 0.0):
        super().__init__(params, lr, weight_decay)
        self.alpha, self.eps = alpha, eps

    def update(self, i, p, g):
        v, s = self.state["v"][i], self.scratch(i)
        v *= self.alpha
        g2 = np.multiply(g, g, out=s)
        g2 *= 1 - self.alpha
        v += g2
        denom = np.sqrt(v, out=s)
        denom += self.eps
        p.data -= lr_times_ratio(float(self.lr), g, denom)


@register_optimizer
class Adam(Optimizer):
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g²;
    w <- w - lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps).

    Bias correction undoes the zero start of m and v; eps is added to sqrt(v̂), as in PyTorch.
    The state holds M = m/(1-b1) and V = v/(1-b2), which obey M <- b1 M + g and V <- b2 V + g²:
    a pass over the parameter fewer each than updating m and v.
    """

    slots = ("M", "V")
    squares = ("V",)

    @checked
    def __init__(self, params, lr: LR = 1e-3, beta1: RATE = 0.9, beta2: RATE = 0.999,
                 eps: EPS = 1e-8, weight_decay: DECAY = 0.0):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def update(self, i, p, g):
        M, V, s = self.state["M"][i], self.state["V"][i], self.scratch(i)
        M *= self.beta1
        M += g
        V *= self.beta2
        V += np.multiply(g, g, out=s)
        # m̂ = M (1-b1)/(1-b1^t) and sqrt(v̂) = c sqrt(V) with c = sqrt((1-b2)/(1-b2^t)), so
        # lr m̂ / (sqrt(v̂) + eps) = lr (1-b1)/(1-b1^t)/c * M / (sqrt(V) + eps/c): the scalars
        # are folded, and the arrays see one sqrt, one add, one divide, one multiply.
        # (math.sqrt gives a Python float, which keeps float32 arrays float32; np.sqrt would not.)
        c = math.sqrt((1 - self.beta2) / (1 - self.beta2 ** self.t))
        step_size = float(self.lr) * (1 - self.beta1) / (1 - self.beta1 ** self.t) / c
        denom = np.sqrt(V, out=s)
        denom += self.eps / c
        p.data -= lr_times_ratio(step_size, M, denom)


@register_optimizer
class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): w <- w - lr * wd * w, then Adam's
    update from the plain gradient g.

    Like every optimizer here it decays weights (ndim >= 2) and never biases, which equals
    torch.optim.AdamW with the biases in a parameter group of their own with weight_decay=0.
    """

    @checked
    def __init__(self, params, lr: LR = 1e-3, beta1: RATE = 0.9, beta2: RATE = 0.999,
                 eps: EPS = 1e-8, weight_decay: DECAY = 1e-2):
        super().__init__(params, lr, beta1, beta2, eps, weight_decay)

    def decay(self, p, g):
        p.data *= 1 - float(self.lr) * self.weight_decay  # before the step, as PyTorch does
        return g


def lr_times_ratio(lr, numerator, denom):
    """lr * numerator / denom, computed in denom's array (which it overwrites)."""
    ratio = np.divide(numerator, denom, out=denom)
    ratio *= lr
    return ratio
