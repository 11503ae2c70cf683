"""Gradient checking: backprop against float64 central differences."""
from contextlib import contextmanager

import numpy as np


@contextmanager
def float64_copy(model):
    """The model's parameters (data and grad) in float64 inside the `with`, restored after it.

    Restoring grads matters: a check made between backward and the optimizer's step must
    leave the step's gradients as they were.
    """
    saved = [(p, p.data, p.grad) for p in model.parameters()]
    for p, data, _ in saved:
        p.data = data.astype(np.float64)
    try:
        yield
    finally:
        for p, data, grad in saved:
            p.data, p.grad = data, grad


def numeric_grad(f, a, index, eps):
    """(f(a + eps e_i) - f(a - eps e_i)) / (2 eps) for each flat index i; `a` is restored."""
    flat = a.reshape(-1)
    out = np.empty(len(index))
    for j, i in enumerate(index):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        out[j] = (plus - minus) / (2 * eps)
    return out


def relative_error(analytic, numeric):
    """max |a - n| relative to the largest magnitude in either (0 when both are all zero)."""
    scale = max(np.abs(analytic).max(initial=0), np.abs(numeric).max(initial=0))
    return float(np.abs(analytic - numeric).max(initial=0) / scale) if scale > 0 else 0.0


def gradcheck(model, loss_fn, x, t, eps=1e-6, max_entries=None, rng=None):
    """Max relative error between backprop and central differences, per parameter and "input".

    Runs in float64 (the model is restored afterwards) and in eval mode (no dropout noise).
    max_entries checks that many randomly chosen entries per array instead of all of them.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    x = np.array(x, dtype=np.float64)
    loss = lambda: loss_fn.forward(model.forward(x, train=False), t)

    def entries(a):
        if max_entries is None or a.size <= max_entries:
            return np.arange(a.size)
        return rng.choice(a.size, max_entries, replace=False)

    with float64_copy(model):
        loss()
        dx = model.backward(loss_fn.backward())
        errors = {}
        for name, p in model.named_parameters():
            if p.grad.shape != p.data.shape:
                raise ValueError(f"{name}: grad shape {p.grad.shape} != data shape {p.data.shape}")
            index = entries(p.data)
            errors[name] = relative_error(p.grad.reshape(-1)[index], numeric_grad(loss, p.data, index, eps))
        index = entries(x)
        errors["input"] = relative_error(dx.reshape(-1)[index], numeric_grad(loss, x, index, eps))
    return errors
