"""sum_to, the backward of a broadcast: the one place the bias rule is coded."""
import numpy as np
import pytest

from framework import Affine, sum_to
from framework.broadcast import reuse


def test_sum_to_a_row_is_the_sum_of_the_rows_as_in_affine():
    dy = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_array_equal(sum_to(dy, (3,)), dy.sum(axis=0))
    layer = Affine(4, 3, dtype=np.float64, rng=np.random.default_rng(1))
    layer.forward(np.random.default_rng(2).standard_normal((5, 4)))
    layer.backward(dy)
    np.testing.assert_array_equal(layer.b.grad, sum_to(dy, (3,)))


def test_sum_to_a_channel_view_sums_batch_and_positions():
    dy = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(sum_to(dy, (1, 3, 1, 1)).ravel(), dy.sum(axis=(0, 2, 3)), rtol=1e-14)


def test_sum_to_keeps_axes_that_were_not_broadcast():
    dy = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(sum_to(dy, (3, 1)), dy.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(sum_to(dy, (2, 3, 4)), dy)


def test_sum_to_returns_a_new_array_even_when_nothing_is_summed():
    dy = np.ones((1, 3, 1, 1))  # a conv bias's gradient at a batch of one with 1x1 outputs
    db = sum_to(dy, (1, 3, 1, 1))
    assert not np.shares_memory(db, dy)


def test_sum_to_refuses_a_shape_that_cannot_have_been_broadcast():
    with pytest.raises(ValueError, match=r"\(5, 3\) cannot come from broadcasting shape \(4,\)"):
        sum_to(np.zeros((5, 3)), (4,))


def test_reuse_keeps_a_fitting_array_and_replaces_one_that_does_not():
    a = np.empty((2, 3), np.float32)
    assert reuse(a, (2, 3), np.float32) is a
    assert reuse(a, (3, 2), np.float32).shape == (3, 2)
    assert reuse(a, (2, 3), np.float64).dtype == np.float64
    assert reuse(None, (1,), np.float32).shape == (1,)
