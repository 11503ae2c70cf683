"""What a layer returns is the caller's: it never shares memory with the work arrays the layer
reuses, so a later call cannot change a y or dx the caller kept (a saliency map, an adversarial
example), and a returned dx never shares memory with anything the layer keeps at all."""
import numpy as np
import pytest

import framework as F
from framework.parameter import Parameter

N, C, H, W = 2, 3, 9, 8


def conv(in_channels, kernel, stride, padding):
    return lambda: F.Conv2D(in_channels, 4, kernel, stride=stride, padding=padding,
                            rng=np.random.default_rng(0))


# (layer kind, make, one example's shape, train): every registered kind, every geometry class of
# the layers that have one (stride below, at and above the kernel; padded or not; one channel,
# where Conv2D's work arrays happen to be in the output's layout).
CASES = [
    ("affine", lambda: F.Affine(5, 6, rng=np.random.default_rng(0)), (5,), True),
    ("relu", F.ReLU, (C, H, W), True),
    ("leakyrelu", F.LeakyReLU, (C, H, W), True),
    ("sigmoid", F.Sigmoid, (5,), True),
    ("tanh", F.Tanh, (5,), True),
    ("softmax", F.Softmax, (5,), True),
    ("dropout", lambda: F.Dropout(0.5, rng=np.random.default_rng(0)), (5,), True),
    ("dropout", lambda: F.Dropout(0.5, rng=np.random.default_rng(0)), (5,), False),
    ("batchnorm", lambda: F.BatchNorm(C), (C, H, W), True),
    ("batchnorm", lambda: F.BatchNorm(C), (C, H, W), False),
    ("batchnorm", lambda: F.BatchNorm(5), (5,), True),
    ("flatten", F.Flatten, (C, H, W), True),
    *[("conv2d", conv(c, kernel, stride, padding), (c, H, W), True)
      for c in (1, C) for kernel, stride, padding in
      [(3, 1, 0), (3, 1, 1), (2, 2, 0), (1, 2, 0), (2, 3, 1), ((3, 1), (1, 2), (0, 1))]],
    *[("maxpool2d", lambda kernel=kernel, stride=stride: F.MaxPool2D(kernel, stride), (C, H, W),
       True)
      for kernel, stride in [(2, None), (3, 2), (1, 1), (1, 2), (2, 3), ((3, 1), (1, 3))]],
]


IDS = [f"{kind}-{i}{'' if train else '-eval'}" for i, (kind, _, _, train) in enumerate(CASES)]


def kept_arrays(layer):
    """Every array the layer holds: its attributes (lists of arrays too) and its parameters."""
    found = []
    for value in vars(layer).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, np.ndarray):
                found.append(item)
            elif isinstance(item, Parameter):
                found += [item.data, item.grad]
    return found


def one_call(layer, shape, train, seed):
    """forward and backward on fresh random data: (x, y, dy, dx), none of them copied."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, *shape)).astype(np.float32)
    y = layer.forward(x, train=train)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return x, y, dy, layer.backward(dy)


def test_every_registered_layer_has_a_case():
    ours = {kind for kind, cls in F.LAYERS.items() if cls.__module__.startswith("framework.")}
    assert ours <= {kind for kind, *_ in CASES}


@pytest.mark.parametrize("kind, make, shape, train", CASES, ids=IDS)
def test_a_later_call_never_changes_a_returned_y_or_dx(kind, make, shape, train):
    layer = make()
    _, y, _, dx = one_call(layer, shape, train, seed=1)
    kept_y, kept_dx = y.copy(), dx.copy()
    one_call(layer, shape, train, seed=2)
    np.testing.assert_array_equal(y, kept_y)
    np.testing.assert_array_equal(dx, kept_dx)


@pytest.mark.parametrize("kind, make, shape, train", CASES, ids=IDS)
def test_a_returned_dx_shares_no_memory_with_what_the_layer_keeps(kind, make, shape, train):
    layer = make()
    one_call(layer, shape, train, seed=1)  # work arrays made
    _, _, _, dx = one_call(layer, shape, train, seed=2)  # and reused
    for kept in kept_arrays(layer):
        assert not np.shares_memory(dx, kept)


@pytest.mark.parametrize("kind, make, shape, train", CASES, ids=IDS)
def test_a_returned_y_shares_no_memory_with_a_reused_work_array(kind, make, shape, train):
    """A layer may keep its own output for backward (Sigmoid's y), but not hand out an array it
    writes again on the next call: those are the arrays it holds after both of two calls."""
    layer = make()
    _, y, _, _ = one_call(layer, shape, train, seed=1)
    first = kept_arrays(layer)
    one_call(layer, shape, train, seed=2)
    reused = [a for a in kept_arrays(layer) if any(a is b for b in first)]
    for array in reused:
        assert not np.shares_memory(y, array)
