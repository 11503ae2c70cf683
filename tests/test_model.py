"""Sequential and gradcheck on whole models, and the bias gradient as a batch sum."""
import numpy as np
import pytest

import framework as F
from framework import (
    SGD,
    Affine,
    Dropout,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    gradcheck,
)


def mlp(rng, dims=(6, 5, 4, 3), dtype=np.float64):
    return Sequential(Affine(dims[0], dims[1], rng=rng, dtype=dtype), ReLU(), Dropout(0.3, rng=rng),
                      Affine(dims[1], dims[2], rng=rng, dtype=dtype), Sigmoid(),
                      Affine(dims[2], dims[3], rng=rng, dtype=dtype))


@pytest.mark.parametrize("n", [1, 2, 5])
def test_gradcheck_of_a_whole_model_every_parameter_and_the_input(n):
    rng = np.random.default_rng(n)
    model = mlp(rng)
    for layer in model.layers:
        if isinstance(layer, Affine):
            layer.b.data[:] = rng.standard_normal(layer.b.data.shape)
    x, t = rng.standard_normal((n, 6)), rng.integers(0, 3, n)
    errors = gradcheck(model, SoftmaxCrossEntropy(), x, t)
    assert set(errors) == {"affine1.W", "affine1.b", "affine2.W", "affine2.b", "affine3.W",
                           "affine3.b", "input"}
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_restores_float32_parameters_and_their_grads():
    rng = np.random.default_rng(0)
    model = mlp(rng, dtype=np.float32)
    before = [(p.data, p.grad) for p in model.parameters()]
    gradcheck(model, SoftmaxCrossEntropy(), rng.standard_normal((3, 6)), np.array([0, 1, 2]))
    assert all(p.data is d and p.grad is g for p, (d, g) in zip(model.parameters(), before))


def batch_and_per_example_bias_grads(model, x, t):
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(x, train=False), t)
    model.backward(loss_fn.backward())
    batch = [p.grad.copy() for p in model.parameters()]
    per_example = []
    for i in range(len(x)):  # one example at a time: N separate losses, no broadcast
        loss_fn.forward(model.forward(x[i:i + 1], train=False), t[i:i + 1])
        model.backward(loss_fn.backward())
        per_example.append([p.grad.copy() for p in model.parameters()])
    return batch, per_example


def test_batch_gradient_is_the_mean_of_per_example_gradients():
    rng = np.random.default_rng(1)
    model = mlp(rng)
    x, t = rng.standard_normal((5, 6)), rng.integers(0, 3, 5)
    batch, per_example = batch_and_per_example_bias_grads(model, x, t)
    for j, grad in enumerate(batch):
        np.testing.assert_allclose(grad, np.mean([g[j] for g in per_example], axis=0),
                                   rtol=1e-10, atol=1e-14)


def test_output_bias_gradient_is_mean_probability_minus_label_fraction():
    rng = np.random.default_rng(2)
    model = mlp(rng)
    x, t = rng.standard_normal((7, 6)), np.array([0, 0, 1, 2, 2, 2, 0])
    loss_fn = SoftmaxCrossEntropy()
    z = model.forward(x, train=False)
    loss_fn.forward(z, t)
    model.backward(loss_fn.backward())
    db = model.layers[-1].b.grad
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(db, p.mean(axis=0) - np.bincount(t, minlength=3) / 7, atol=1e-15)
    np.testing.assert_allclose(loss_fn.output_bias(), db, atol=1e-15)  # what the bias log uses
    assert abs(db.sum()) < 1e-15


class MeanBiasAffine(Affine):
    """A classic mistake: averaging dY over the batch although the loss already divided by N."""

    def backward(self, dy, need_dx=True):
        dx = super().backward(dy, need_dx)
        self.b.grad = dy.mean(axis=0)
        return dx


class UnsummedBiasAffine(Affine):
    """The other classic mistake: the '+ node passes its gradient through', so db = dY."""

    def backward(self, dy, need_dx=True):
        dx = super().backward(dy, need_dx)
        self.b.grad = dy
        return dx


def test_gradcheck_catches_a_bias_gradient_averaged_over_the_batch():
    rng = np.random.default_rng(3)
    model = Sequential(MeanBiasAffine(6, 4, rng=rng, dtype=np.float64), ReLU(),
                       Affine(4, 3, rng=rng, dtype=np.float64))
    errors = gradcheck(model, SoftmaxCrossEntropy(), rng.standard_normal((5, 6)),
                       rng.integers(0, 3, 5))
    assert errors["meanbiasaffine1.b"] > 0.5
    assert errors["affine1.b"] < 1e-6


def test_optimizer_refuses_an_unsummed_bias_gradient():
    rng = np.random.default_rng(4)
    model = Sequential(UnsummedBiasAffine(6, 4, rng=rng), ReLU(), Affine(4, 3, rng=rng))
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(rng.standard_normal((5, 6)).astype(np.float32)),
                    rng.integers(0, 3, 5))
    model.backward(loss_fn.backward())
    with pytest.raises(ValueError, match=r"unsummedbiasaffine1\.b: grad shape \(5, 4\) != "
                                         r"data shape \(4,\).*sum\(axis=0\)"):
        SGD(model.parameters(), lr=0.1).step()


def test_layers_and_parameters_get_readable_names():
    rng = np.random.default_rng(5)
    model = Sequential([Affine(4, 3, rng=rng, name="hidden"), ReLU(), Affine(3, 2, rng=rng),
                        Softmax()])
    assert ([name for name, _ in model.named_parameters()]
            == ["hidden.W", "hidden.b", "affine2.W", "affine2.b"])
    assert [layer.name for layer in model.layers] == ["hidden", "relu1", "affine2", "softmax1"]


def test_duplicate_layer_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        Sequential(Affine(2, 2, name="a"), Affine(2, 2, name="a"))


def test_summary_lists_shapes_and_parameter_counts():
    model = Sequential(Affine(784, 256, rng=np.random.default_rng(0)), ReLU(),
                       Affine(256, 10, rng=np.random.default_rng(0)))
    text = model.summary()
    assert "(N, 256)" in text and "200,960" in text and "2,570" in text
    assert text.splitlines()[-1] == "total parameters: 203,530"


@pytest.mark.parametrize("layers, message", [
    (lambda: [F.Conv2D(1, 4, 3), F.Flatten(), Affine(100, 10)],
     r"affine1: expects 100 inputs per example, got examples of shape \(2704,\)"),
    (lambda: [F.Conv2D(1, 4, 3), F.BatchNorm(5)],
     r"batchnorm1: expects examples of shape \(5,\) or \(5, H, W\), got \(4, 26, 26\)"),
    (lambda: [F.Flatten(), F.MaxPool2D(2)],
     r"maxpool2d1: expects images \(C, H, W\), got examples of shape \(784,\)"),
])
def test_a_layer_that_does_not_fit_the_input_shape_is_refused_when_the_model_is_made(layers,
                                                                                       message):
    with pytest.raises(ValueError, match=message):
        Sequential(*layers(), input_shape=(1, 28, 28))


def test_summary_of_an_image_model_without_input_shape_asks_for_it():
    model = Sequential(F.Conv2D(1, 4, 3), F.Flatten(), Affine(2704, 10))
    with pytest.raises(ValueError, match="give input_shape"):
        model.summary()
    assert "(N, 4, 26, 26)" in model.summary(input_shape=(1, 28, 28))


def test_eval_mode_turns_dropout_off():
    rng = np.random.default_rng(6)
    model = Sequential(Affine(5, 50, rng=rng), Dropout(0.5, rng=rng))
    x = rng.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x, train=False), model.forward(x, train=False))
    assert (model.forward(x, train=True) == 0).mean() > 0.3


def test_backward_without_input_gradient_still_fills_every_grad():
    rng = np.random.default_rng(7)
    model = mlp(rng, dtype=np.float32)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(rng.standard_normal((4, 6)).astype(np.float32)),
                    np.array([0, 1, 2, 0]))
    assert model.backward(loss_fn.backward(), need_dx=False) is None
    assert all(p.grad.shape == p.data.shape and p.grad.any() for p in model.parameters())


def test_state_dict_round_trip_and_mismatch():
    a, b = mlp(np.random.default_rng(8)), mlp(np.random.default_rng(9))
    b.load_state_dict(a.state_dict())
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(KeyError, match="missing"):
        b.load_state_dict({"affine1.W": a.layers[0].W.data})


def test_calling_the_model_is_forward_in_eval_mode():
    model = mlp(np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 6))
    np.testing.assert_array_equal(model(x), model.forward(x))
    assert not np.array_equal(model(x, train=True), model(x))  # dropout, only when asked
