"""A user's own layer, optimizer and loss, in a module of theirs outside framework/: registered
by their decorators, then named in configs, and the layer rebuilt by load_model, like the
framework's own (test_registry.py, test_loss_contract.py)."""
import math

import numpy as np

import framework as F
from framework.checks import Integer, Real, checked


@F.register_layer
class Offset(F.Layer):
    """y = x + b, with b (features,) learned and starting at `start`;  dx = dy,
    db = dy.sum(axis=0). Shapes: x and y (N, features)."""

    bias = "b"
    from_input = {"features": math.prod}
    forwarded = None

    @checked
    def __init__(self, features: Integer(1), start: Real() = 0.0, dtype=np.float32, name=None):
        self.features, self.start = features, start
        self.b = F.Parameter(np.full(self.state_shapes(self.arguments)["b"], start, dtype), "b")
        self.name = name

    @classmethod
    def state_shapes(cls, arguments):
        return {"b": (arguments["features"],)}

    def parameters(self):
        return [self.b]

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, train=False):
        self.forwarded = True
        return x.reshape(len(x), -1) + self.b.data

    def backward(self, dy, need_dx=True):
        self.needs(self.forwarded)
        self.b.grad = F.sum_to(dy, self.b.data.shape)
        return dy if need_dx else None


@F.register_optimizer
class SignSGD(F.Optimizer):
    """w <- w - lr * sign(g)."""

    @checked
    def __init__(self, params, lr: Real(0, low_open=True) = 1e-3):
        super().__init__(params, lr)

    def update(self, i, p, g):
        p.data -= np.multiply(np.sign(g, out=self.scratch(i)), self.lr, out=self.scratch(i))


@F.register_loss
class MeanAbsoluteError(F.Loss):
    """L = mean over all N*K entries of |y - t|, t one-hot rows of integer labels;
    dy = sign(y - t) / (N K). States no identity for the output bias."""

    def forward(self, y, t):
        self.r = y.copy()
        self.r[np.arange(len(y)), t] -= 1
        self.classes = t
        self.predicted = y.argmax(axis=1)
        return float(np.abs(self.r).mean())

    def backward(self):
        return np.sign(self.r) / self.r.size

    def correct(self):
        return int((self.predicted == self.classes).sum())
