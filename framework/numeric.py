"""Gradient checking: backprop against float64 central differences.

(The module is not called gradcheck so that `framework.gradcheck`, the function, shadows
nothing.)"""
from contextlib import contextmanager

import numpy as np


@contextmanager
def grads_set_aside(model):
    """Inside the `with`, every parameter has no gradient yet (a backward there makes new arrays);
    after it, the gradients are back, the very arrays they were, unchanged.

    A check made between backward and the optimizer's step must leave the step's gradients as
    they were: a backward writes into `grad` in place when it fits (see Parameter), so each grad
    is set aside, not merely remembered.
    """
    saved = [(p, p.grad) for p in model.parameters()]
    for p, _ in saved:
        p.grad = None
    try:
        yield
    finally:
        for p, grad in saved:
            p.grad = grad


@contextmanager
def float64_copy(model):
    """Inside the `with`, the model's parameters are float64 copies with their gradients set aside
    (grads_set_aside); after it, the original arrays, data and grad, are back as they were."""
    saved = [(p, p.data) for p in model.parameters()]
    with grads_set_aside(model):
        for p, data in saved:
            p.data = data.astype(np.float64)
        try:
            yield
        finally:
            for p, data in saved:
                p.data = data


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


def layer_gradcheck(layer, x, train=True, before_forward=None, eps=1e-6):
    """{"x": error, "<param name>": error, ...}: one layer's backward against float64 central
    differences for every entry of its input and parameters, with L = sum(y * R), R random.

    The check a new layer's tests run. The layer's parameters become float64 (use a layer made
    for the check). before_forward(), when given, runs before every forward: a Dropout check
    fixes its mask with it.
    """
    x = np.array(x, dtype=np.float64)
    for p in layer.parameters():
        p.data, p.grad = p.data.astype(np.float64), None

    def forward():
        if before_forward is not None:
            before_forward()
        return layer.forward(x, train=train)

    R = np.random.default_rng(99).standard_normal(forward().shape)
    loss = lambda: float(np.sum(forward() * R))
    loss()
    dx = layer.backward(R.copy())
    errors = {"x": relative_error(dx.ravel(), numeric_grad(loss, x, np.arange(x.size), eps))}
    for p in layer.parameters():
        if p.grad.shape != p.data.shape or p.grad.dtype != np.float64:
            raise ValueError(f"{p.name}: grad {p.grad.dtype} {p.grad.shape} for data "
                             f"{p.data.shape}")
        numeric = numeric_grad(loss, p.data, np.arange(p.data.size), eps)
        errors[p.name] = relative_error(p.grad.ravel(), numeric)
    return errors


def gradcheck(model, loss_fn, x, t, eps=1e-6, max_entries=None, rng=None):
    """Max relative error between backprop and central differences, per parameter and "input".

    Runs in float64 (the model is restored afterwards, gradients included) and in eval mode
    (no dropout noise). Each checked entry costs two forward passes over x: max_entries checks
    that many randomly chosen entries per array instead of all of them (all 200k weights of an
    MNIST MLP take minutes; max_entries=20 takes well under a second).
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
            errors[name] = relative_error(p.grad.reshape(-1)[index],
                                          numeric_grad(loss, p.data, index, eps))
        index = entries(x)
        errors["input"] = relative_error(dx.reshape(-1)[index], numeric_grad(loss, x, index, eps))
    return errors
