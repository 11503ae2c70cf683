"""The backward of a broadcast is a sum: `sum_to`, used by every layer whose forward broadcasts a
parameter."""
import numpy as np


def sum_to(dy, shape):
    """dy summed down to `shape`: the gradient of an array that forward broadcast to dy.shape.

    Forward `x @ W + b` copies the one row b (out,) to all N rows; a conv bias (C,), viewed as
    (1, C, 1, 1), is copied to every example and every position. Each copy passes its share of dy
    back to the one original, so the original's gradient is the sum of the copies' gradients:
    over the leading axes numpy added, and over every axis where `shape` has a 1. For Affine this
    is db = dY.sum(axis=0) = 1ᵀ·dY; for a conv bias, db = dY.sum(axis=(0, 2, 3)).
    """
    shape = tuple(shape)
    lead = dy.ndim - len(shape)
    if lead < 0 or any(s not in (1, d) for s, d in zip(shape, dy.shape[lead:])):
        raise ValueError(f"sum_to: a gradient of shape {dy.shape} cannot come from broadcasting "
                         f"shape {shape}")
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and dy.shape[lead + i] != 1)
    # Nothing summed (a batch of one, 1x1 outputs) is still a new array: the gradient is kept,
    # and dy is the caller's (an in-place Allreduce of the one would change the other).
    return dy.sum(axis=axes).reshape(shape) if axes else dy.reshape(shape).copy()


def reuse(array, shape, dtype):
    """`array` when it has this shape and dtype, else a new empty one: for work arrays kept across
    steps.

    A new large array every step makes glibc hand its pages back to the system and fault them in
    again on the next step; keeping one avoids that. Only for arrays nobody outside the owner reads.
    """
    if array is None or array.shape != tuple(shape) or array.dtype != dtype:
        return np.empty(shape, dtype)
    return array
