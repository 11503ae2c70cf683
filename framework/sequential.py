"""A model as a list of layers applied in order. It knows nothing about training."""
import math

import numpy as np

from .layers import LAYERS, Softmax


class Sequential:
    """y = layer_L(... layer_2(layer_1(x))); backward runs the layers in reverse.

    Layers without a name get one from their kind and position among their kind
    (affine1, relu1, affine2, ...); parameters are named "<layer>.<param>" (affine1.W).
    input_shape: the shape of one example (e.g. (784,) or (1, 28, 28)), when known: predict
    then accepts a single example, and summary and checkpoints state it.
    """

    def __init__(self, *layers, input_shape=None):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers = list(layers)
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        counts = {}
        for layer in self.layers:
            kind = type(layer).__name__.lower()
            counts[kind] = counts.get(kind, 0) + 1
            if layer.name is None:
                layer.name = f"{kind}{counts[kind]}"
            for p in layer.parameters():
                p.name = f"{layer.name}.{p.name.rsplit('.', 1)[-1]}"
        if self.input_shape is not None:
            self.output_shapes(self.input_shape)  # a layer that does not fit is refused now
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")

    def forward(self, x, train=False):
        """The model's output; train=True for training (dropout on, batch statistics)."""
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def __call__(self, x, train=False):
        """model(x) is model.forward(x), as in PyTorch (eval mode unless train=True)."""
        return self.forward(x, train=train)

    def backward(self, dy, need_dx=True):
        """Fills every Parameter's grad and returns dx (None when need_dx is False)."""
        for layer in reversed(self.layers[1:]):
            dy = layer.backward(dy)
        return self.layers[0].backward(dy, need_dx=need_dx)

    def predict_proba(self, x, batch_size=250):
        """Class probabilities (softmax of the outputs) in eval mode, in batches: (N, C) for a
        batch, (0, C) for an empty one, (C,) for one example (see as_batch)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"predict: batch_size is a number of examples (1 or more), got "
                             f"{batch_size!r}")
        batch, one = self.as_batch(np.asarray(x))
        softmax = Softmax()
        # An empty batch goes through the layers once, as PyTorch's would: (0, C) comes out.
        p = np.concatenate([softmax.forward(self.forward(batch[i:i + batch_size], train=False))
                            for i in range(0, max(len(batch), 1), batch_size)])
        bad = np.flatnonzero(~np.isfinite(p).all(axis=1))
        if len(bad):  # argmax would call them class 0
            raise ValueError(f"predict: the outputs for {len(bad)} example(s) are NaN or infinite "
                             f"(the first: example {bad[0]}); do their inputs hold NaN or "
                             "infinity?")
        return p[0] if one else p

    def as_batch(self, x):
        """(batch, one): x as a batch for the layers, and whether x was one example.

        Without input_shape, a 1-D x is one example and anything else a batch. With it, an
        example is an array of input_shape or the same numbers in the same order: flat ((784,)
        for (1, 28, 28)), without axes of length 1 ((28, 28), (28, 28, 1)), or a greyscale image
        for a model of flat inputs ((28, 28) for (784,)). A batch's first axis counts examples,
        so (1, 784) is a batch of one. Anything else, such as channels last ((8, 8, 3) for
        (3, 8, 8)), is refused: reshaping it would mix pixels of different channels."""
        shape = self.input_shape
        if shape is None and x.ndim == 0:
            raise ValueError("predict: x is one number (shape ()); give an example (a 1-D array) "
                             "or a batch")
        if shape is None:
            return (x[None], True) if x.ndim == 1 else (x, False)
        if x.shape == shape:
            return x[None], True
        if x.ndim > 1 and self.same_order(x.shape[1:]):
            return x.reshape((len(x),) + shape), False
        if self.same_order(x.shape):
            return x.reshape((1,) + shape), True
        raise ValueError(
            f"predict: x of shape {x.shape} is neither one example of shape {shape} nor a batch "
            f"of them (an example may also come flat, ({math.prod(shape)},), or without its axes "
            "of length 1); images here put channels first, (C, H, W): an image of shape "
            "(H, W, C) is x.transpose(2, 0, 1), a batch (N, H, W, C) is x.transpose(0, 3, 1, 2)")

    def same_order(self, shape):
        """Whether an example of this shape holds input_shape's numbers in the same order."""
        if math.prod(shape) != math.prod(self.input_shape):
            return False
        kept = tuple(n for n in shape if n != 1)
        wanted = tuple(n for n in self.input_shape if n != 1)
        return len(shape) == 1 or kept == wanted or (len(wanted) <= 1 and len(kept) <= 2)

    def predict(self, x, batch_size=250):
        """Class indices in eval mode (dropout off, running statistics): an array for a batch
        (of one, or empty, too), an int for one example. Inputs are floating-point, scaled as in
        training; the first layer refuses anything else."""
        p = self.predict_proba(x, batch_size)
        return int(p.argmax()) if p.ndim == 1 else p.argmax(axis=1)

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self):
        return [(p.name, p) for p in self.parameters()]

    def state_dict(self):
        """{name: array} of every parameter and buffer (running statistics), e.g. affine1.W."""
        state = {name: p.data for name, p in self.named_parameters()}
        for layer in self.layers:
            state.update({f"{layer.name}.{key}": a for key, a in layer.buffers().items()})
        return state

    def check_state_dict(self, state):
        """Raises KeyError (names) or ValueError (shapes, kinds) when `state` does not fit this
        model, saying what; changes nothing."""
        own = self.state_dict()
        missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or unexpected:
            raise KeyError(f"state does not fit this model: missing {sorted(missing)}, "
                           f"unexpected {sorted(unexpected)}")
        for name, target in own.items():
            value = np.asarray(state[name])
            if value.shape != target.shape or value.dtype.kind != target.dtype.kind:
                raise ValueError(f"{name}: {value.dtype} {value.shape} in state, "
                                 f"{target.dtype} {target.shape} in model")
        for layer in self.layers:  # BatchNorm's running_var: a negative one makes NaN in eval
            for name in (f"{layer.name}.{buffer}" for buffer in layer.nonnegative):
                if (np.asarray(state[name]) < 0).any():
                    raise ValueError(f"{name}: negative in state; it can never be negative")

    def load_state_dict(self, state):
        """Copies arrays into the parameters and buffers; names, shapes and kinds must match
        exactly."""
        self.check_state_dict(state)  # all checked first: a misfit changes nothing
        for name, target in self.state_dict().items():
            target[...] = state[name]

    def save(self, path, optimizer=None, **extra):
        """framework.save(path, self, optimizer, **extra): one .npz that load_model rebuilds."""
        from .checkpoint import save  # checkpoint's load_model imports this module
        save(path, self, optimizer, **extra)

    def architecture(self):
        """What rebuilds this model: [{"kind", "module", "name", "arguments", "dtype"}] per layer
        (JSON-ready); kind is the name the layer's class is registered under (framework.LAYERS),
        module where the class was defined (for a message when it is not registered)."""
        return [{"kind": LAYERS.name_for(type(layer)), "module": type(layer).__module__,
                 "name": layer.name,
                 "arguments": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in layer.arguments.items()},
                 "dtype": str(layer.parameters()[0].data.dtype) if layer.parameters() else None}
                for layer in self.layers]

    def output_shapes(self, input_shape):
        """Each layer's output shape (per example) for examples of input_shape; a ValueError
        naming the first layer that does not fit what reaches it."""
        shapes, shape = [], tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
            shapes.append(shape)
        return shapes

    def summary(self, input_shape=None, compact=False):
        """A table of layers, output shapes (per example) and parameter counts, as a string
        (compact: without the rules above and below the rows)."""
        input_shape = input_shape or self.input_shape
        if input_shape is None:
            if not hasattr(self.layers[0], "in_features"):
                raise ValueError(f"summary: needs one example's shape, e.g. (1, 28, 28): give "
                                 f"input_shape to Sequential or to summary (the first layer, "
                                 f"{type(self.layers[0]).__name__}, does not say it)")
            input_shape = (self.layers[0].in_features,)
        rows, total = [], 0
        for layer, shape in zip(self.layers, self.output_shapes(input_shape)):
            count = sum(p.data.size for p in layer.parameters())
            total += count
            rows.append((layer.name, type(layer).__name__, f"(N, {', '.join(map(str, shape))})",
                         f"{count:,}"))
        header = ("layer", "type", "output shape", "parameters")
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]

        def line(r):
            return "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths)))

        rule = [] if compact else ["-" * len(line(header))]
        return "\n".join([line(header), *rule, *map(line, rows), *rule,
                          f"total parameters: {total:,}"])

    def __repr__(self):
        return "Sequential(" + ", ".join(layer.name for layer in self.layers) + ")"
