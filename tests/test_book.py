"""The bridge for readers of the book: its names and conventions on top of the framework."""
import numpy as np
import pytest

from framework.book import MultiLayerNet, SoftmaxWithLoss, TwoLayerNet, numerical_gradient


def test_numerical_gradient_of_a_function_of_an_array():
    x = np.array([3.0, 4.0])
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(v ** 2), x), [6.0, 8.0],
                               rtol=1e-7)
    np.testing.assert_array_equal(x, [3.0, 4.0])  # restored


def test_two_layer_net_gradient_matches_its_numerical_gradient():
    rng = np.random.default_rng(0)
    net = TwoLayerNet(input_size=7, hidden_size=5, output_size=3, weight_init_std=0.5, rng=rng)
    x, t = rng.standard_normal((4, 7)), np.eye(3)[rng.integers(0, 3, 4)]
    backprop, numeric = net.gradient(x, t), net.numerical_gradient(x, t)
    assert sorted(backprop) == ["W1", "W2", "b1", "b2"]
    for key in backprop:
        np.testing.assert_allclose(backprop[key], numeric[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_the_books_update_on_params_trains_the_network():
    rng = np.random.default_rng(1)
    net = MultiLayerNet(6, [8, 8], 3, rng=rng)
    x, t = rng.standard_normal((30, 6)), rng.integers(0, 3, 30)
    before = net.loss(x, t)
    for _ in range(50):
        grads = net.gradient(x, t)
        for key in net.params:
            net.params[key] -= 0.1 * grads[key]
    assert net.params["W1"] is net.model.layers[0].W.data  # the layer's own array, updated in place
    assert net.loss(x, t) < 0.6 * before


def test_weight_decay_lambda_is_in_the_loss_and_the_gradient():
    rng = np.random.default_rng(2)
    net = MultiLayerNet(4, [5], 2, weight_decay_lambda=0.1, rng=rng)
    x, t = rng.standard_normal((3, 4)), rng.integers(0, 2, 3)
    backprop, numeric = net.gradient(x, t), net.numerical_gradient(x, t)
    for key in backprop:
        np.testing.assert_allclose(backprop[key], numeric[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_softmax_with_loss_takes_the_books_dout():
    layer = SoftmaxWithLoss()
    layer.forward(np.array([[1.0, 2.0, 0.5]]), np.array([1]))
    np.testing.assert_allclose(layer.backward(2.0), 2.0 * layer.backward())


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation must be 'relu' or 'sigmoid', got 'tanh'"):
        MultiLayerNet(2, [2], 2, activation="tanh")
