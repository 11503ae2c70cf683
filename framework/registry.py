"""Names for the framework's layers and optimizers, found from the classes themselves.

Every Layer or Optimizer subclass defined in a `framework` module is listed under its class
name in lower case (Affine -> "affine", AdamW -> "adamw"); its settings are its constructor's
checked arguments (`framework.checks.settings`). So a new layer is one class: configs, `--set`
and `--help` find it here.
"""
from .layers import Layer
from .optimizers import Optimizer


def framework_subclasses(base):
    """{lower-case name: class} of base's subclasses defined in framework modules, in definition
    order."""
    found, stack = {}, list(reversed(base.__subclasses__()))
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("framework.") and not cls.__name__.startswith("_"):
            found[cls.__name__.lower()] = cls
        stack.extend(reversed(cls.__subclasses__()))
    return found


def layers():
    """{name: Layer subclass}, e.g. {"relu": ReLU, "affine": Affine, ...}."""
    return framework_subclasses(Layer)


def optimizers():
    """{name: Optimizer subclass}, e.g. {"sgd": SGD, "momentum": Momentum, ...}."""
    return framework_subclasses(Optimizer)
