"""SoftmaxCrossEntropy: value, gradient, stability, label formats."""
import numpy as np
import pytest

from framework import SoftmaxCrossEntropy
from framework.numeric import numeric_grad, relative_error


@pytest.mark.parametrize("n", [1, 2, 5])
def test_gradient_matches_central_differences(n):
    rng = np.random.default_rng(n)
    z, t = rng.standard_normal((n, 4)), rng.integers(0, 4, n)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(z, t)
    dz = loss_fn.backward()
    numeric = numeric_grad(lambda: loss_fn.forward(z, t), z, np.arange(z.size), 1e-6)
    assert relative_error(dz.ravel(), numeric) < 1e-6


def test_value_is_the_mean_negative_log_probability():
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    t = np.array([0, 2])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    expected = -(np.log(p[0, 0]) + np.log(p[1, 2])) / 2
    assert SoftmaxCrossEntropy().forward(z, t) == pytest.approx(expected, rel=1e-12)


def test_backward_is_softmax_minus_onehot_over_n():
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(z, np.array([0, 2]))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss_fn.backward(), (p - np.eye(3)[[0, 2]]) / 2, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_on_logits_of_plus_minus_1e4(dtype):
    z = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]], dtype)
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(z, np.array([0, 1]))
    dz = loss_fn.backward()
    assert loss == pytest.approx(2e4 / 2, rel=1e-6)  # example 0 costs 0, example 1 costs 2e4
    assert np.isfinite(dz).all()
    np.testing.assert_allclose(dz, [[0, 0, 0], [0.5, -0.5, 0]], atol=1e-7)


def test_onehot_and_integer_labels_agree():
    rng = np.random.default_rng(3)
    z, t = rng.standard_normal((6, 5)).astype(np.float32), rng.integers(0, 5, 6)
    a, b = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    assert a.forward(z, t) == b.forward(z, np.eye(5, dtype=np.float32)[t])
    np.testing.assert_array_equal(a.backward(), b.backward())


def test_float32_in_float32_out():
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(np.zeros((3, 4), np.float32), np.array([0, 1, 2]))
    assert loss_fn.backward().dtype == np.float32
