"""A trainable array together with its gradient."""
import numpy as np


class Parameter:
    """A trainable array: `data` of any shape and `grad`, always the same shape and dtype.

    Backward sets `grad` (dL/d data, summed over the batch); optimizers read it and check
    `grad.shape == data.shape`, which is how an unsummed bias gradient (dY of shape (N, out)
    instead of db of shape (out,)) is caught at the first step.

    Like PyTorch's `.grad`, a weight's gradient is written into the array `grad` already is
    when shape and dtype fit, so a training step allocates no new 800 KB array: the next
    backward overwrites it. To keep a gradient, copy it (`p.grad.copy()`). Checks that run
    their own backward (gradcheck, the bias log) set every grad aside first and put it back
    after, so they never change the gradients the optimizer is about to use.
    """

    def __init__(self, data, name=None):
        self.data = np.asarray(data)
        self.grad = np.zeros_like(self.data)
        self.name = name

    def __repr__(self):
        return f"Parameter({self.name!r}, shape={self.data.shape}, dtype={self.data.dtype})"
