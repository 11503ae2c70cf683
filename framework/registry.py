"""The classes a config, `--help` and a checkpoint can name: a registry per kind (layers,
optimizers, losses), filled by a decorator on each class, wherever the class is defined.

    @register_layer                    # framework.register_layer, from layers.py
    class GELU(Layer):
        ...

A registered class's settings are its constructor's checked arguments (framework.checks): what a
config may set, what `--help` lists and what a checkpoint saves to make it again. So a class is
checked here, once, when it is registered: every constructor argument must be checked or be one
the framework supplies itself (a layer's rng, dtype and name; an optimizer's params), and the
constructor must be wrapped in @checked, which keeps the checked values. Otherwise a setting
would be left out of configs and checkpoints and rebuilt at its default (`kernel_size: int = 2`
saved as 5 comes back as 2), or a checkpoint would hold no settings at all; such a class is
refused at import, by name, with what to write.
"""
import inspect
import re
from collections.abc import Mapping

from .checks import Check, checked_arguments

# What to write for a plain annotation or default, by its type.
SUGGESTED = {bool: "Flag()", int: "Integer()", float: "Real()", str: 'OneOf("a", "b")',
             type(None): "Optional(Integer())"}


def lower_case(class_name):
    """Affine -> "affine", MaxPool2D -> "maxpool2d"."""
    return class_name.lower()


def snake_case(class_name):
    """SoftmaxCrossEntropy -> "softmax_cross_entropy"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()


class Registry(Mapping):
    """{name: class} of one kind, in the order the classes were registered.

    kind: "layer", "optimizer" or "loss" (for messages); base: the class every entry derives
    from; supplied: the constructor arguments the framework passes itself (not settings);
    naming: the name a class is listed under, from its class name.
    """

    def __init__(self, kind, base, supplied=(), naming=lower_case):
        self.kind, self.base, self.supplied, self.naming = kind, base, tuple(supplied), naming
        self.classes = {}

    def __getitem__(self, name):
        return self.classes[name]

    def __iter__(self):
        return iter(self.classes)

    def __len__(self):
        return len(self.classes)

    def __repr__(self):
        return f"<{self.kind}s: {', '.join(self.classes)}>"

    def name_for(self, cls):
        """The name `cls` is (or would be) listed under."""
        return self.naming(cls.__name__)

    def register(self, cls):
        """Lists `cls` under its name and returns it (a class decorator); a class that could not
        be made again from its settings, or whose name is taken, is a TypeError naming it."""
        where = f"{cls.__module__}.{cls.__qualname__}"
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"register_{self.kind}: {where} is not a subclass of "
                            f"{self.base.__name__}")
        name = self.name_for(cls)
        taken = self.classes.get(name)
        if taken is not None and taken is not cls:
            raise TypeError(f"{where}: a {self.kind} named '{name}' is already registered "
                            f"({taken.__module__}.{taken.__qualname__}); give the class "
                            "another name")
        check_constructor(cls, where, self.supplied)
        for attribute in ("from_input", "short_names"):  # a layer's, naming its arguments
            check_named_arguments(cls, where, attribute)
        if hasattr(self.base, "state_shapes"):  # a layer's
            check_declared_state(cls, where, self.base)
        self.classes[name] = cls
        return cls


def check_constructor(cls, where, supplied):
    """A TypeError unless every argument of cls's constructor is checked or supplied, and the
    checked ones are kept by @checked."""
    if cls.__init__ is object.__init__:
        return  # no constructor: no settings
    signature = inspect.signature(cls.__init__)
    checked = []
    for name, p in list(signature.parameters.items())[1:]:  # after self
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            stars = "*" if p.kind == p.VAR_POSITIONAL else "**"
            raise TypeError(f"{where}: the constructor takes {stars}{name}; "
                            "a registered class names each setting, so a checkpoint can make "
                            "it again")
        if p.kind == p.POSITIONAL_ONLY:
            raise TypeError(f"{where}: constructor argument '{name}' is positional-only (before "
                            "`/`); a checkpoint makes the class again with each setting by name")
        if isinstance(p.annotation, Check):
            checked.append(name)
        elif name not in supplied:
            raise TypeError(f"{where}: constructor argument '{name}' has no check, so configs "
                            f"and checkpoints would leave it out; write "
                            f"`{name}: {suggestion(p)}` with a check from framework.checks"
                            + (f" (or it is one the framework supplies: "
                               f"{', '.join(supplied)})" if supplied else ""))
    if checked and checked_arguments(cls.__init__) != tuple(checked):
        raise TypeError(f"{where}: the constructor's checked arguments ({', '.join(checked)}) "
                        "are not kept: write @checked (from framework.checks) above its "
                        "def __init__, so that bad values are refused and a checkpoint can "
                        "make the object again")


def suggestion(p):
    """What to write for argument p: `Integer() = 2` for `kernel_size: int = 2`."""
    plain = p.annotation is not p.empty and isinstance(p.annotation, type)
    kind = p.annotation if plain else type(p.default)
    check = SUGGESTED.get(kind, "Integer(1)")
    return check if p.default is p.empty else f"{check} = {p.default!r}"


def check_named_arguments(cls, where, attribute):
    """A TypeError when a key of cls.<attribute> ({argument: ...}) is not a checked argument."""
    named = getattr(cls, attribute, {})
    checked = () if cls.__init__ is object.__init__ else checked_arguments(cls.__init__)
    unknown = [name for name in named if name not in checked]
    if unknown:
        raise TypeError(f"{where}: {attribute} names {', '.join(map(repr, unknown))}, which the "
                        f"constructor does not take as a checked argument (it takes "
                        f"{', '.join(checked) or 'none'})")


def check_declared_state(cls, where, base):
    """A TypeError when cls holds arrays (its own parameters() or buffers()) but does not state
    their shapes (state_shapes): a checkpoint could then be checked only after making the layer,
    whatever size its arguments declare."""
    holds = cls.parameters is not base.parameters or cls.buffers is not base.buffers
    if holds and cls.state_shapes.__func__ is base.state_shapes.__func__:
        raise TypeError(f"{where}: holds parameters or buffers but does not state their shapes; "
                        "write a classmethod state_shapes(cls, arguments) returning {name: "
                        "shape} from the checked arguments (see Layer.state_shapes), so that a "
                        "checkpoint is checked before the layer is made")
