"""float32 end to end: no silent upcasts in forward, backward, the loss or the optimizers.

A float64 scalar (np.float64, np.sqrt of a Python float, ...) upcasts a float32 array; Python
floats do not. So a float32 model must keep float32 everywhere after training steps, and a
float64 model must stay float64.
"""
import numpy as np
import pytest

from framework import (
    SGD,
    AdaGrad,
    Adam,
    Affine,
    Dropout,
    LRSchedule,
    Momentum,
    Nesterov,
    ReLU,
    RMSprop,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    StepDecay,
    fit,
)

OPTIMIZERS = [SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam]


def data(dtype, n=64, dim=12, classes=4):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, dim)).astype(dtype), rng.integers(0, classes, n)


def model_of(dtype, rng):
    return Sequential(Affine(12, 16, rng=rng, dtype=dtype), ReLU(), Dropout(0.2, rng=rng),
                      Affine(16, 8, rng=rng, dtype=dtype), Sigmoid(),
                      Affine(8, 4, rng=rng, dtype=dtype))


def arrays_of(model, optimizer):
    """(name, array) of everything training touches: parameters, gradients, optimizer states."""
    out = [(p.name, p.data) for p in model.parameters()]
    out += [(p.name + ".grad", p.grad) for p in model.parameters()]
    out += [(f"{slot}.{i}", a) for slot, arrays in optimizer.state.items()
            for i, a in enumerate(arrays)]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.__name__)
def test_training_steps_keep_the_dtype(opt, weight_decay, dtype):
    rng = np.random.default_rng(1)
    x, t = data(dtype)
    model, loss_fn = model_of(dtype, rng), SoftmaxCrossEntropy()
    optimizer = opt(model.parameters(), lr=0.01, weight_decay=weight_decay)
    for first in range(0, len(x), 16):
        logits = model.forward(x[first:first + 16], train=True)
        assert logits.dtype == dtype
        loss = loss_fn.forward(logits, t[first:first + 16])
        assert isinstance(loss, float)
        dz = loss_fn.backward()
        assert dz.dtype == dtype
        dx = model.backward(dz, need_dx=True)
        assert dx.dtype == dtype
        optimizer.step()
    wrong = [(name, a.dtype) for name, a in arrays_of(model, optimizer) if a.dtype != dtype]
    assert not wrong, f"upcast or downcast after {opt.__name__} steps: {wrong}"


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.__name__)
def test_fit_keeps_float32_with_a_numpy_float64_learning_rate(opt):
    """A schedule may hand back np.float64 rates; they must not turn float32 parameters into
    float64."""
    rng = np.random.default_rng(2)
    x, t = data(np.float32)
    model = model_of(np.float32, rng)
    optimizer = opt(model.parameters(), lr=np.float64(0.01))
    schedule = lambda step: np.float64(StepDecay(0.01, every=3)(step))
    fit(model, SoftmaxCrossEntropy(), optimizer, (x, t), epochs=2, batch_size=16, rng=rng,
        val=(x, t), callbacks=[LRSchedule(schedule)])
    wrong = [(name, a.dtype) for name, a in arrays_of(model, optimizer) if a.dtype != np.float32]
    assert not wrong


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_keep_the_dtype_forward_and_backward(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 7)).astype(dtype)
    for layer in (ReLU(), Sigmoid(), Softmax(), Dropout(0.5, rng=rng),
                  Affine(7, 7, rng=rng, dtype=dtype)):
        y = layer.forward(x, train=True)
        assert y.dtype == dtype, type(layer).__name__
        assert layer.backward(np.ones_like(y)).dtype == dtype, type(layer).__name__
        for p in layer.parameters():
            assert p.grad.dtype == dtype


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.__name__)
def test_a_parameter_swapped_to_float64_is_updated_in_float64(opt):
    """float64_copy (gradcheck, bias log) swaps p.data for a float64 copy: in-place updates must
    follow."""
    from framework import Parameter
    p = Parameter(np.ones((3, 2), dtype=np.float32))
    optimizer = opt([p], lr=0.1)
    p.grad = np.full((3, 2), 0.5, dtype=np.float32)
    optimizer.step()
    p.data, p.grad = p.data.astype(np.float64), np.full((3, 2), 0.5)
    optimizer.step()
    assert p.data.dtype == np.float64 and np.all(p.data < 1)
