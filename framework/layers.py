"""Layers: forward(x, train) -> y keeps what backward needs; backward(dy) -> dx right below.

`backward(dy, need_dx=False)` lets the first layer of a model skip its input gradient,
which training never uses (for an Affine layer that is one matrix product per step).
A layer's settings are its constructor's checked arguments (framework.checks): configs,
`--set`, `--help` and checkpoints read them from there. `@register_layer` on a class lists it
in LAYERS under its lower-case name, which configs and checkpoints use.
"""
import math

import numpy as np

from .broadcast import reuse, sum_to
from .checks import Either, Integer, OneOf, Real, checked
from .comm import LOCAL
from .parameter import Parameter
from .registry import Registry


class Layer:
    """Base class: a layer without parameters. Subclasses define forward and backward, and are
    registered with @register_layer (below) to be named in configs and checkpoints.

    Class attributes a subclass may set:
      bias         the name of the parameter forward broadcasts over the batch (and positions):
                   its gradient is sum_to(dy, ...), which the bias log checks on real batches
      from_input   {constructor argument: function of the per-example input shape}: what a
                   config leaves out because the data decides it (Affine's in_features)
      short_names  {constructor argument: its name in configs} (Affine's out_features is `out`)
      other_names  what other frameworks call it (Keras's Dense is Affine): a config that
                   writes one of these is told this layer's name
      draws        True when forward draws from the layer's rng while training (Dropout's
                   masks): each process of a data-parallel run gives it a generator of its own
      nonnegative  names of buffers that can never be negative (BatchNorm's running_var): a
                   checkpoint holding a negative one is refused
    A layer's `comm` is the processes its batch is split over (framework.comm; fit's AllReduce
    sets it): a layer that computes over the batch (BatchNorm's statistics) sums over them.
    A layer with parameters or buffers states their shapes in `state_shapes`, and its constructor
    makes them from it: a checkpoint's arrays are checked against it before any layer is made.
    """

    name = None
    bias = None
    from_input = {}
    short_names = {}
    other_names = ()
    draws = False
    comm = LOCAL
    nonnegative = ()
    arguments = {}  # the checked constructor arguments (set by @checked): how to make it again

    @classmethod
    def state_shapes(cls, arguments):
        """{name: shape} of the parameters, then the buffers, that a layer made with these
        (checked) constructor arguments holds, known before any array is made."""
        return {}

    def parameters(self):
        return []

    def buffers(self):
        """Non-trainable state saved with the model ({name: array}), e.g. running statistics."""
        return {}

    def output_shape(self, input_shape):
        """The per-example output shape for a per-example input shape."""
        return input_shape

    def check_training_batch(self, batch, example_shape):
        """Refuses (ValueError) a training batch of `batch` examples of example_shape that the
        layer cannot train on; fit asks before the first step. Most layers take any size."""

    def takes(self, x):
        """x, when it is a floating-point array; anything else is refused, naming the layer.
        Integer or bool input is unscaled pixels or labels: numpy would compute it in another
        dtype, or fail deep inside with a casting error. Every forward starts here."""
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{self.name or type(self).__name__}: expects floating-point inputs "
                             f"scaled as in training (MNIST: pixels / 255), got {got}")
        return x

    def needs(self, kept):
        """What forward kept, for backward; refuses a backward that no forward preceded."""
        if kept is None:
            raise RuntimeError(f"{self.name or type(self).__name__}: "
                               "backward called before forward")
        return kept


# The layers a config or a checkpoint can name: each class below is listed by @register_layer
# (a user's own layer too, in their own module), and checked there (framework/registry.py).
LAYERS = Registry("layer", Layer, supplied=("rng", "dtype", "name"))
register_layer = LAYERS.register


@register_layer
class ReLU(Layer):
    """y = max(x, 0);  dx = dy * [x > 0].  Any shape."""

    positive = None

    def forward(self, x, train=False):
        self.takes(x)
        self.positive = x > 0
        return np.maximum(x, 0)

    def backward(self, dy, need_dx=True):
        positive = self.needs(self.positive)
        return dy * positive if need_dx else None  # a new array: the incoming dy is never modified


@register_layer
class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x));  dx = dy * y * (1 - y).  Any shape."""

    y = None

    def forward(self, x, train=False):
        self.takes(x)
        # With e = exp(-|x|), which never overflows: y = 1/(1+e) for x >= 0 and e/(1+e) below.
        e = np.exp(-np.abs(x))
        self.y = np.where(x >= 0, 1, e) / (1 + e)
        return self.y

    def backward(self, dy, need_dx=True):
        y = self.needs(self.y)
        return dy * y * (1 - y) if need_dx else None


@register_layer
class Tanh(Layer):
    """y = tanh(x);  dx = dy * (1 - y²).  Any shape."""

    y = None

    def forward(self, x, train=False):
        self.takes(x)
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy, need_dx=True):
        y = self.needs(self.y)
        return dy * (1 - y * y) if need_dx else None


@register_layer
class LeakyReLU(Layer):
    """y = x for x > 0, negative_slope * x otherwise;  dx = dy * (1 or negative_slope).
    Any shape."""

    slope = None

    @checked
    def __init__(self, negative_slope: Real(0, 1) = 0.01, name=None):
        self.negative_slope, self.name = negative_slope, name

    def forward(self, x, train=False):
        self.takes(x)
        # One array of slopes (1 or negative_slope) serves both passes:
        # y = x * slope, dx = dy * slope.
        self.slope = np.where(x > 0, x.dtype.type(1), x.dtype.type(self.negative_slope))
        return x * self.slope

    def backward(self, dy, need_dx=True):
        slope = self.needs(self.slope)
        return dy * slope if need_dx else None


@register_layer
class Softmax(Layer):
    """y_nk = exp(x_nk) / sum_j exp(x_nj) over the last axis;  dx = y * (dy - sum_k dy_k y_k).

    For probabilities at the end of a model. For training use SoftmaxCrossEntropy on the
    logits instead: it fuses both and its backward is simply (y - t) / N.
    """

    y = None

    def forward(self, x, train=False):
        self.takes(x)
        e = np.exp(x - x.max(axis=-1, keepdims=True))  # shifting by the max cannot overflow
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, dy, need_dx=True):
        y = self.needs(self.y)
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True)) if need_dx else None


@register_layer
class Dropout(Layer):
    """Inverted dropout: in training y = x * m / (1 - p) with m_i ~ Bernoulli(1 - p); identity in
    eval.

    The 1/(1-p) scaling keeps E[y] = x, so nothing changes at evaluation time.
    Masks come from `rng` (a numpy Generator; pass the experiment's one for reproducibility).
    p: the probability of zeroing each unit while training.
    """

    draws = True

    @checked
    def __init__(self, p: Real(0, 1, high_open=True) = 0.5, rng=None, name=None):
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng()
        self.name = name
        self.scaled_mask = self.forwarded = None

    def forward(self, x, train=False):
        self.takes(x)
        self.forwarded = True
        if not train or self.p == 0:
            self.scaled_mask = None
            return x
        # Drawn in float32 whatever x's dtype, so a float64 run sees the same masks.
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        self.scaled_mask = keep * x.dtype.type(1 / (1 - self.p))
        return x * self.scaled_mask

    def backward(self, dy, need_dx=True):
        self.needs(self.forwarded)
        if not need_dx:
            return None
        return dy if self.scaled_mask is None else dy * self.scaled_mask


@register_layer
class Affine(Layer):
    """Fully connected layer: y = x @ W + b.

    Shapes: x (N, in) (more dims are flattened to (N, in)), W (in, out), b (out,), y (N, out).
    Backward, with dY = dL/dy of shape (N, out):
        dx = dY @ W.T         (N, in)
        dW = x.T @ dY         (in, out)
        db = dY.sum(axis=0)   (out,)
    Why a sum: forward broadcasts (copies) the one bias row b to all N rows of x @ W, and
    the backward of a copy is a sum, so the N rows of dY add up into db (sum_to). It is 1ᵀ·dY,
    the same shape rule as dW = xᵀ·dY. The loss already divides by N, so this sum is the batch
    *average* of the per-example bias gradients.

    out_features: output units (in configs `out`); init: "he" (std sqrt(2/in), for ReLU),
    "xavier" (std sqrt(1/in), for sigmoid and tanh) or a number, the weights' std.
    """

    bias = "b"
    from_input = {"in_features": math.prod}
    short_names = {"out_features": "out"}
    other_names = ("dense", "linear")  # Keras's Dense, PyTorch's Linear
    x = None

    @checked
    def __init__(self, in_features: Integer(1), out_features: Integer(1),
                 init: Either(OneOf("he", "xavier"), Real(0, low_open=True)) = "he",
                 rng=None, dtype=np.float32, name=None):
        std = {"he": math.sqrt(2 / in_features),
               "xavier": math.sqrt(1 / in_features)}.get(init, init)
        rng = rng if rng is not None else np.random.default_rng()
        dtype = np.dtype(dtype).type
        self.in_features, self.out_features = in_features, out_features
        shapes = self.state_shapes(self.arguments)
        self.W = Parameter(rng.standard_normal(shapes["W"], dtype=dtype) * dtype(std), "W")
        self.b = Parameter(np.zeros(shapes["b"], dtype=dtype), "b")
        self.name = name

    @classmethod
    def state_shapes(cls, arguments):
        return {"W": (arguments["in_features"], arguments["out_features"]),
                "b": (arguments["out_features"],)}

    def parameters(self):
        return [self.W, self.b]

    def output_shape(self, input_shape):
        if math.prod(input_shape) != self.in_features:
            raise ValueError(f"{self.name or 'Affine'}: expects {self.in_features} inputs per "
                             f"example, got examples of shape {tuple(input_shape)}")
        return (self.out_features,)

    def forward(self, x, train=False):
        self.takes(x)
        if x.ndim < 2 or math.prod(x.shape[1:]) != self.in_features:
            raise ValueError(f"{self.name or 'Affine'}: expects a batch of {self.in_features} "
                             f"inputs each, shape (N, {self.in_features}); got an array of shape "
                             f"{x.shape}")
        self.x_shape = x.shape
        self.x = x.reshape(len(x), self.in_features)  # not -1: numpy cannot infer it when N = 0
        y = self.x @ self.W.data
        y += self.b.data  # broadcast: the same row b is added to each of the N rows
        return y

    def backward(self, dy, need_dx=True):
        x = self.needs(self.x)
        dx = (dy @ self.W.data.T).reshape(self.x_shape) if need_dx else None
        # Into the array W.grad already is, when it fits (see Parameter): no new 800 KB per step.
        self.W.grad = np.matmul(x.T, dy, out=reuse(self.W.grad, self.W.data.shape, dy.dtype))
        self.b.grad = sum_to(dy, self.b.data.shape)  # db = dY.sum(axis=0): the N copies of b add up
        return dx
