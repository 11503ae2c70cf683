"""A bridge for readers of "Deep Learning from Scratch": the book's names on top of this framework.

Not a second framework: each name below is a few lines over the classes the rest of the project
uses, so code written against the book's `common/` runs here and gives the same arithmetic.

    book                                   here
    common.gradient.numerical_gradient     numerical_gradient (framework.numeric.numeric_grad)
    common.layers.SoftmaxWithLoss          SoftmaxWithLoss (framework.SoftmaxCrossEntropy)
    ch05 TwoLayerNet, common MultiLayerNet TwoLayerNet, MultiLayerNet (a Sequential inside)
    net.params / net.gradient(x, t)        the same: dicts of arrays named W1, b1, W2, ...
"""
import numpy as np

from .layers import Affine, ReLU, Sigmoid
from .losses import SoftmaxCrossEntropy
from .numeric import numeric_grad
from .sequential import Sequential


def numerical_gradient(f, x, h=1e-4):
    """The book's central-difference gradient of f at x (f takes x; x is changed and restored):
    (f(x + h e_i) - f(x - h e_i)) / 2h for every entry, with the book's h."""
    return numeric_grad(lambda: f(x), x, np.arange(x.size), h).reshape(x.shape)


class SoftmaxWithLoss(SoftmaxCrossEntropy):
    """The book's name: forward(x, t) -> loss; backward(dout=1) -> (softmax(x) - t) / N * dout."""

    def backward(self, dout=1):
        return super().backward() * dout


class MultiLayerNet:
    """The book's MultiLayerNet: Affine layers with ReLU or Sigmoid between them, softmax-with-loss.

    weight_init_std: "relu"/"he" (std sqrt(2/n)), "sigmoid"/"xavier" (std sqrt(1/n)) or a number.
    weight_decay_lambda adds 0.5 λ Σ|W|² to the loss and λ W to each weight's gradient, as the
    book does. params and gradient(x, t) are dicts W1, b1, W2, ...; params holds the layers' own
    arrays, so the book's `params[key] -= lr * grads[key]` trains the network.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, rng=None, dtype=np.float64):
        init = {"relu": "he", "he": "he", "sigmoid": "xavier", "xavier": "xavier"}.get(
            weight_init_std, weight_init_std)
        activations = {"relu": ReLU, "sigmoid": Sigmoid}
        if activation not in activations:
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r}")
        sizes = [input_size, *hidden_size_list, output_size]
        rng = rng if rng is not None else np.random.default_rng()
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), 1):
            layers.append(Affine(n_in, n_out, init=init, rng=rng, dtype=dtype, name=f"Affine{i}"))
            if i < len(sizes) - 1:
                layers.append(activations[activation]())
        self.model = Sequential(layers)
        self.affines = [layer for layer in layers if isinstance(layer, Affine)]
        self.last_layer = SoftmaxWithLoss()
        self.weight_decay_lambda = weight_decay_lambda
        self.params = {}
        for i, layer in enumerate(self.affines, 1):
            self.params[f"W{i}"], self.params[f"b{i}"] = layer.W.data, layer.b.data

    def predict(self, x, train_flg=False):
        """Scores (the last Affine's output), as the book's predict: not class indices."""
        return self.model.forward(x, train=train_flg)

    def loss(self, x, t, train_flg=False):
        decay = sum(0.5 * self.weight_decay_lambda * np.sum(layer.W.data ** 2)
                    for layer in self.affines)
        return self.last_layer.forward(self.predict(x, train_flg), t) + decay

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        labels = np.argmax(t, axis=1) if t.ndim != 1 else t
        return float(np.sum(y == labels)) / x.shape[0]

    def gradient(self, x, t):
        """Backprop: {W1: dW1, b1: db1, ...} for the loss on (x, t)."""
        self.loss(x, t, train_flg=True)
        self.model.backward(self.last_layer.backward(1))
        grads = {}
        for i, layer in enumerate(self.affines, 1):
            grads[f"W{i}"] = layer.W.grad + self.weight_decay_lambda * layer.W.data
            grads[f"b{i}"] = layer.b.grad.copy()
        return grads

    def numerical_gradient(self, x, t):
        """The same dict by central differences (slow: for checking gradient())."""
        return {key: numerical_gradient(lambda _: self.loss(x, t), value)
                for key, value in self.params.items()}


class TwoLayerNet(MultiLayerNet):
    """The book's TwoLayerNet (chapter 5): Affine, ReLU, Affine, softmax-with-loss, weights drawn
    with std weight_init_std (0.01, the book's default)."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, rng=None,
                 dtype=np.float64):
        super().__init__(input_size, [hidden_size], output_size, weight_init_std=weight_init_std,
                         rng=rng, dtype=dtype)
