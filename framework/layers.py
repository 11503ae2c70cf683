"""Layers: forward(x, train) -> y keeps what backward needs; backward(dy) -> dx right below.

`backward(dy, need_dx=False)` lets the first layer of a model skip its input gradient,
which training never uses (for an Affine layer that is one matrix product per step).
"""
import numpy as np

from .parameter import Parameter


class Layer:
    """Base class: a layer without parameters. Subclasses define forward and backward."""

    name = None

    def parameters(self):
        return []

    def output_shape(self, input_shape):
        return input_shape


class ReLU(Layer):
    """y = max(x, 0);  dx = dy * [x > 0].  Any shape."""

    zeros = np.zeros(0)

    def forward(self, x, train=True):
        self.positive = x > 0
        if self.zeros.shape != x.shape or self.zeros.dtype != x.dtype:
            self.zeros = np.zeros_like(x)
        # Against an array of zeros, not the scalar 0: numpy 2.4's maximum has no SIMD loop
        # for an array and a scalar; this one is 5x faster (batch 128, 256 units: 10 -> 2 us).
        return np.maximum(x, self.zeros)

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return dy * self.positive  # a new array: the incoming dy is never modified


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x));  dx = dy * y * (1 - y).  Any shape."""

    def forward(self, x, train=True):
        # With e = exp(-|x|), which never overflows: y = 1/(1+e) for x >= 0 and e/(1+e) below.
        e = np.exp(-np.abs(x))
        self.y = np.where(x >= 0, 1, e) / (1 + e)
        return self.y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return dy * self.y * (1 - self.y)


class Softmax(Layer):
    """y_nk = exp(x_nk) / sum_j exp(x_nj) over the last axis;  dx = y * (dy - sum_k dy_k y_k).

    For probabilities at the end of a model. For training use SoftmaxCrossEntropy on the
    logits instead: it fuses both and its backward is simply (y - onehot) / N.
    """

    def forward(self, x, train=True):
        e = np.exp(x - x.max(axis=-1, keepdims=True))  # shifting by the max cannot overflow
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return self.y * (dy - (dy * self.y).sum(axis=-1, keepdims=True))


class Dropout(Layer):
    """Inverted dropout: in training y = x * m / (1 - p) with m_i ~ Bernoulli(1 - p); identity in eval.

    The 1/(1-p) scaling keeps E[y] = x, so nothing changes at evaluation time.
    Masks come from `rng` (a numpy Generator; pass the experiment's one for reproducibility).
    """

    def __init__(self, p=0.5, rng=None, name=None):
        if not 0 <= p < 1:
            raise ValueError(f"Dropout p must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng()
        self.name = name
        self.scaled_mask = None

    def forward(self, x, train=True):
        if not train or self.p == 0:
            self.scaled_mask = None
            return x
        # Drawn in float32 whatever x's dtype, so a float64 run sees the same masks.
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        self.scaled_mask = keep * x.dtype.type(1 / (1 - self.p))
        return x * self.scaled_mask

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return dy if self.scaled_mask is None else dy * self.scaled_mask


class Affine(Layer):
    """Fully connected layer: y = x @ W + b.

    Shapes: x (N, in) (more dims are flattened to (N, in)), W (in, out), b (out,), y (N, out).
    Backward, with dY = dL/dy of shape (N, out):
        dx = dY @ W.T         (N, in)
        dW = x.T @ dY         (in, out)
        db = dY.sum(axis=0)   (out,)
    Why a sum: forward broadcasts (copies) the one bias row b to all N rows of x @ W, and
    the backward of a copy is a sum, so the N rows of dY add up into db. It is 1ᵀ·dY, the
    same shape rule as dW = xᵀ·dY. The loss already divides by N, so this sum is the batch
    *average* of the per-example bias gradients.

    init: "he" (std sqrt(2/in), for ReLU), "xavier" (std sqrt(1/in)) or a float std.
    """

    def __init__(self, in_features, out_features, init="he", rng=None, dtype=np.float32, name=None):
        if init == "he":
            std = np.sqrt(2.0 / in_features)
        elif init == "xavier":
            std = np.sqrt(1.0 / in_features)
        elif isinstance(init, (int, float)) and not isinstance(init, bool):
            std = float(init)
        else:
            raise ValueError(f'init must be "he", "xavier" or a float std, got {init!r}')
        rng = rng if rng is not None else np.random.default_rng()
        dtype = np.dtype(dtype).type
        self.in_features, self.out_features = in_features, out_features
        self.W = Parameter(rng.standard_normal((in_features, out_features), dtype=dtype) * dtype(std), "W")
        self.b = Parameter(np.zeros(out_features, dtype=dtype), "b")
        self.name = name
        self.last_dy = None  # the latest upstream gradient, kept (not copied) for the bias log
        self.dW = np.empty((0, 0), dtype)

    def parameters(self):
        return [self.W, self.b]

    def output_shape(self, input_shape):
        return (self.out_features,)

    def forward(self, x, train=True):
        self.x_shape = x.shape
        self.x = x.reshape(len(x), -1)
        y = self.x @ self.W.data
        y += self.b.data  # broadcast: the same row b is added to each of the N rows
        return y

    def backward(self, dy, need_dx=True):
        self.last_dy = dy
        # dW is written into one array kept across steps (new only when shape or dtype change):
        # a new one every step (800 KB for 784 x 256) made glibc hand heap pages back and fault
        # them in again, about 45,000 page faults and 13% of an MNIST epoch at batch 128.
        if self.dW.shape != self.W.data.shape or self.dW.dtype != dy.dtype:
            self.dW = np.empty(self.W.data.shape, dy.dtype)
        dx = (dy @ self.W.data.T).reshape(self.x_shape) if need_dx else None
        self.W.grad = np.matmul(self.x.T, dy, out=self.dW)
        self.b.grad = dy.sum(axis=0)  # undoes the broadcast: the N copies' gradients add up
        return dx
