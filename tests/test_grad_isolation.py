"""Checks that run their own backward never change the gradients the optimizer is about to use."""
import numpy as np
import pytest

import framework as F


def backpropagated(dtype, seed):
    """A small model with dropout after one training backward: (model, loss_fn, x, t)."""
    rng = np.random.default_rng(seed)
    model = F.Sequential(F.Affine(5, 6, rng=rng, dtype=dtype), F.ReLU(), F.Dropout(0.5, rng=rng),
                         F.Affine(6, 3, rng=rng, dtype=dtype))
    loss_fn = F.SoftmaxCrossEntropy()
    x, t = rng.standard_normal((7, 5)).astype(dtype), rng.integers(0, 3, 7)
    loss_fn.forward(model.forward(x, train=True), t)
    model.backward(loss_fn.backward())
    return model, loss_fn, x, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradcheck_between_backward_and_step_leaves_every_gradient_as_it_was(dtype):
    model, loss_fn, x, t = backpropagated(dtype, seed=0)
    arrays = [p.grad for p in model.parameters()]
    before = [g.copy() for g in arrays]
    F.gradcheck(model, loss_fn, x, t)
    for p, array, copy in zip(model.parameters(), arrays, before):
        assert p.grad is array, p.name  # the same arrays, back in place
        np.testing.assert_array_equal(p.grad, copy, err_msg=p.name)  # and unchanged


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_bias_log_leaves_the_steps_dropout_gradients_alone(dtype):
    model, loss_fn, x, t = backpropagated(dtype, seed=1)
    before = [p.grad.copy() for p in model.parameters()]
    records = F.bias_report(model, loss_fn, x, t, step=1, epoch=1)
    assert [r["layer"] for r in records] == ["affine1.b", "affine2.b"]
    for p, copy in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.grad, copy, err_msg=p.name)


def test_the_bias_log_sees_the_training_batchs_dy():
    model, loss_fn, x, t = backpropagated(np.float32, seed=2)
    first = F.bias_report(model, loss_fn, x, t, step=1, epoch=1)[0]
    # the dY the log recomputed (with this step's dropout mask) sums to the step's own db
    assert first["sum_check"] == 0.0
    db = model.layers[0].b.grad
    assert first["sum_norm"] == pytest.approx(float(np.linalg.norm(db)), rel=1e-6)
    assert first["sum_norm"] > 0


def test_a_weight_gradient_is_written_in_place_as_documented():
    rng = np.random.default_rng(3)
    layer = F.Affine(3, 2, rng=rng)
    layer.forward(np.ones((4, 3), np.float32))
    layer.backward(np.ones((4, 2), np.float32))
    first = layer.W.grad
    kept = first.copy()
    layer.forward(np.full((4, 3), 2, np.float32))
    layer.backward(np.ones((4, 2), np.float32))
    assert layer.W.grad is first  # reused, as Parameter's docstring says: copy to keep one
    assert not np.array_equal(first, kept)
