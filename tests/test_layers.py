"""Every layer's backward against float64 central differences, and layer contracts."""
import numpy as np
import pytest

from framework import Affine, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from framework.numeric import layer_gradcheck

SHAPES = [(1, 7, 4), (2, 7, 4), (5, 7, 4)]  # (N, in, out): N != in != out so axis mistakes fail


def check_layer(layer, x, seed=0):
    """Relative errors of dx and of every parameter's grad (a Dropout keeps one mask throughout)."""
    def same_mask():
        layer.rng = np.random.default_rng(seed)

    fixed = same_mask if isinstance(layer, Dropout) else None
    return layer_gradcheck(layer, x, before_forward=fixed)


def make(kind, n_in, n_out, rng):
    return {"affine": lambda: Affine(n_in, n_out, rng=rng, dtype=np.float64),
            "relu": ReLU, "sigmoid": Sigmoid, "softmax": Softmax, "tanh": Tanh,
            "leakyrelu": lambda: LeakyReLU(0.1),
            "dropout": lambda: Dropout(0.4)}[kind]()


@pytest.mark.parametrize("n, n_in, n_out", SHAPES)
@pytest.mark.parametrize("kind", ["affine", "relu", "sigmoid", "softmax", "dropout", "tanh",
                                  "leakyrelu"])
def test_backward_matches_central_differences(kind, n, n_in, n_out):
    rng = np.random.default_rng(n)
    layer = make(kind, n_in, n_out, rng)
    if kind == "affine":
        layer.b.data = rng.standard_normal(n_out)  # a zero bias would hide nothing, but be general
    errors = check_layer(layer, rng.standard_normal((n, n_in)))
    assert max(errors.values()) < 1e-6, errors


def test_affine_flattens_higher_dimensional_input_and_restores_its_shape():
    rng = np.random.default_rng(1)
    layer = Affine(24, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 3, 4))
    assert layer.forward(x).shape == (2, 3)
    errors = check_layer(layer, x)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("kind", ["affine", "relu", "sigmoid", "softmax", "dropout", "tanh",
                                  "leakyrelu"])
def test_backward_leaves_the_incoming_gradient_untouched(kind):
    rng = np.random.default_rng(2)
    layer = make(kind, 6, 6, rng)
    y = layer.forward(rng.standard_normal((3, 6)).astype(np.float32))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    before = dy.copy()
    layer.backward(dy)
    np.testing.assert_array_equal(dy, before)


def test_affine_bias_gradient_is_the_sum_of_the_rows_of_dy():
    rng = np.random.default_rng(3)
    layer = Affine(5, 3, rng=rng, dtype=np.float64)
    layer.forward(rng.standard_normal((4, 5)))
    dy = rng.standard_normal((4, 3))
    layer.backward(dy)
    np.testing.assert_allclose(layer.b.grad, dy.sum(axis=0), rtol=1e-15, atol=0)
    np.testing.assert_allclose(layer.b.grad, np.ones(4) @ dy, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(layer.W.grad, layer.x.T @ dy, rtol=1e-15)


def test_affine_need_dx_false_fills_parameter_grads_and_returns_none():
    rng = np.random.default_rng(4)
    layer = Affine(5, 3, rng=rng)
    layer.forward(rng.standard_normal((4, 5)).astype(np.float32))
    assert layer.backward(np.ones((4, 3), np.float32), need_dx=False) is None
    np.testing.assert_array_equal(layer.b.grad, np.full(3, 4, np.float32))


@pytest.mark.parametrize("init, std", [("he", np.sqrt(2 / 400)), ("xavier", np.sqrt(1 / 400)),
                                       (0.05, 0.05)])
def test_affine_init_scales_and_zero_bias(init, std):
    layer = Affine(400, 300, init=init, rng=np.random.default_rng(5))
    assert layer.W.data.dtype == np.float32 and layer.b.data.dtype == np.float32
    assert abs(layer.W.data.std() / std - 1) < 0.02
    assert not layer.b.data.any()


def test_affine_rejects_unknown_init():
    with pytest.raises(ValueError, match="init"):
        Affine(3, 2, init="glorot")


def test_affine_same_seed_same_weights():
    a = Affine(10, 4, rng=np.random.default_rng(6))
    b = Affine(10, 4, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a.W.data, b.W.data)


def test_dropout_scales_kept_units_and_is_identity_in_eval():
    layer = Dropout(0.25, rng=np.random.default_rng(7))
    x = np.ones((200, 50), np.float32)
    y = layer.forward(x, train=True)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    assert layer.forward(x, train=False) is x


def test_sigmoid_is_finite_and_exact_at_extremes():
    y = Sigmoid().forward(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, [0, 1.9287498e-22, 0.5, 1, 1], rtol=1e-6)


def test_softmax_layer_stable_on_huge_logits():
    y = Softmax().forward(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32))
    np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)


def test_leaky_relu_scales_only_the_negative_side():
    y = LeakyReLU(0.1).forward(np.array([-2.0, -0.5, 0.0, 3.0], np.float32))
    np.testing.assert_array_equal(y, np.array([-0.2, -0.05, 0.0, 3.0], np.float32))
    assert y.dtype == np.float32


def test_tanh_matches_numpy_and_stays_float32():
    x = np.linspace(-30, 30, 7, dtype=np.float32)
    y = Tanh().forward(x)
    np.testing.assert_array_equal(y, np.tanh(x))
    assert y.dtype == np.float32
