"""A model as a list of layers applied in order. It knows nothing about training."""
import numpy as np


class Sequential:
    """y = layer_L(... layer_2(layer_1(x))); backward runs the layers in reverse.

    Layers without a name get one from their kind and position among their kind
    (affine1, relu1, affine2, ...); parameters are named "<layer>.<param>" (affine1.W).
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers = list(layers)
        counts = {}
        for layer in self.layers:
            kind = type(layer).__name__.lower()
            counts[kind] = counts.get(kind, 0) + 1
            if layer.name is None:
                layer.name = f"{kind}{counts[kind]}"
            for p in layer.parameters():
                p.name = f"{layer.name}.{p.name.rsplit('.', 1)[-1]}"
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")

    def forward(self, x, train=False):
        """The model's output; train=True for training (dropout on, batch statistics)."""
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def backward(self, dy, need_dx=True):
        """Fills every Parameter's grad and returns dx (None when need_dx is False)."""
        for layer in reversed(self.layers[1:]):
            dy = layer.backward(dy)
        return self.layers[0].backward(dy, need_dx=need_dx)

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

    def load_state_dict(self, state):
        """Copies arrays into the parameters and buffers; names, shapes and kinds must match exactly."""
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
        for name, target in own.items():  # all checked first: a misfit changes nothing
            target[...] = state[name]

    def summary(self, input_shape=None):
        """A table of layers, output shapes (per example) and parameter counts, as a string."""
        if input_shape is None:
            first = next((l for l in self.layers if hasattr(l, "in_features")), None)
            input_shape = (first.in_features,) if first is not None else ("?",)
        rows, shape, total = [], tuple(input_shape), 0
        for layer in self.layers:
            shape = layer.output_shape(shape)
            count = sum(p.data.size for p in layer.parameters())
            total += count
            rows.append((layer.name, type(layer).__name__, str(("N",) + tuple(shape)), f"{count:,}"))
        header = ("layer", "type", "output shape", "parameters")
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
        line = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        rule = "-" * len(line(header))
        return "\n".join([line(header), rule, *map(line, rows), rule, f"total parameters: {total:,}"])

    def __repr__(self):
        return "Sequential(" + ", ".join(l.name for l in self.layers) + ")"
