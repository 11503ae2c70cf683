"""Checkpoints: model, optimizer state and extras in one .npz, written atomically, read without
pickle.

A checkpoint is input like any file a user loads, and `load` reads it as untrusted, in this
order: only a regular file (a FIFO or a device is refused without waiting on it); each member's
name, compression, and dtype and shape from its .npy header, every size checked against what
the file can hold and, in all, against the memory available, before any array is read; the
JSON members within limits of size and depth; the architecture's layers checked with their
constructors' own checks, and the parameter and buffer shapes they declare (Layer.state_shapes)
compared with the model's arrays; then each weight, buffer and optimizer value read and found
finite (a variance non-negative). Any problem is one CheckpointError naming the file, the
member and what is wrong; load_model builds layers only from a file that passed all of it.
"""
import inspect
import json
import os

import numpy as np

from .archive import Bad, listed, open_archive, open_regular, parse_json, read
from .checks import Invalid, describe, resolve_section, settings
from .files import atomic_write
from .layers import LAYERS
from .memory import available_bytes, size
from .sequential import Sequential

# What each group of members (GROUP/NAME.npy) holds: its dtype kinds, in words
HOLDS = {"model": ("f", "floating-point numbers"), "optimizer": ("biuf", "numbers"),
         "extra": ("biufU", "numbers or text"), "json": ("U", "text (JSON)")}
MAX_NAME = 256  # characters in a layer's name


class CheckpointError(Exception):
    """A checkpoint file that is missing, damaged, not one of ours, or not what it declares."""


def save(path, model, optimizer=None, **extra):
    """Writes model.state_dict() (and optimizer.state_dict(), and extras) to `path`.

    Extras may be arrays, numbers, strings, or anything JSON can hold (dicts, lists, a
    numpy Generator's bit_generator.state). The model's architecture goes in too, so that
    load_model(path) can rebuild it. The file appears only when complete: it is written
    beside its destination and renamed over it.
    """
    if not hasattr(model, "architecture"):
        swapped = hasattr(path, "architecture")
        raise TypeError("save(path, model, optimizer=None): " + (
            "the path comes first (torch.save's order is the other way round): write "
            "F.save(path, model), or model.save(path)" if swapped else
            f"model must be a Sequential, got {type(model).__name__}"))
    extra = {"architecture": model.architecture(), "input_shape": model.input_shape, **extra}
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optimizer/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    for k, v in extra.items():
        if isinstance(v, (np.ndarray, np.generic, int, float, str, bool)):
            arrays[f"extra/{k}"] = np.asarray(v)
        else:
            arrays[f"json/{k}"] = np.asarray(json.dumps(v))  # None, dicts, lists
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load(path):
    """Reads a checkpoint: {"model": state, "optimizer": state or absent, extras...}, every part
    checked before it is used (see above); anything wrong is a CheckpointError saying what."""
    try:
        with open_regular(path) as f, open_archive(f) as archive:
            members = listed(archive, os.fstat(f.fileno()).st_size, HOLDS)
            check_names(members)
            out = {m.name: parse_json(read(archive, m), m.key)
                   for m in members if m.group == "json"}
            limits = checked_model_members(out, members)
            out["model"] = {}
            for m in members:
                if m.group != "json":
                    value = checked_values(read(archive, m), m, limits)
                    if m.group in ("model", "optimizer"):
                        out.setdefault(m.group, {})[m.name] = value
                    else:
                        out[m.name] = value.item() if value.ndim == 0 else value
    except Bad as e:
        raise CheckpointError(e.message(path)) from None
    return out


def check_names(members):
    """Extras and JSON members become keys of load's result, beside model and optimizer: their
    names must not meet; and a JSON member is one text."""
    seen = {}
    for m in members:
        if m.group in ("extra", "json"):
            if m.name in ("model", "optimizer"):
                raise Bad(m.key, f"an extra cannot be named {m.name!r}, the name of the "
                                 f"{m.name}'s arrays")
            if m.name in seen:
                raise Bad(m.key, f"a second member for {m.name!r} (as {seen[m.name]})")
            seen[m.name] = m.key
        if m.group == "json" and m.shape != ():
            raise Bad(m.key, f"holds {m.described()}; a JSON member is one text")


def unregistered(entry):
    """What to do about a layer kind an architecture's entry names and no registered class has."""
    kind, module = entry.get("kind"), entry.get("module")
    shown_module = isinstance(module, str) and module.isprintable() and len(module) <= MAX_NAME
    saved_from = f", saved from a class in module {module!r}" if shown_module else ""
    shown = repr(kind) if isinstance(kind, str) else describe(kind)
    return (f"layer kind {shown} is not registered{saved_from}. Registered: {', '.join(LAYERS)}. "
            "A layer of your own is registered by decorating its class with "
            "@framework.register_layer; import the module that defines it before load_model")


class LayerSpec:
    """One layer of an architecture, checked: its class, name, constructor arguments, dtype."""

    def __init__(self, index, cls, name, arguments, dtype):
        self.index, self.cls, self.name = index, cls, name
        self.arguments, self.dtype = arguments, dtype

    def __str__(self):
        arguments = ", ".join(f"{k}={v}" for k, v in self.arguments.items())
        return f"layer {self.index} ({self.name} = {self.cls.__name__}({arguments}))"

    def make(self):
        extra = {"dtype": np.dtype(self.dtype)} if self.dtype is not None else {}
        layer = self.cls(**self.arguments, **extra)
        layer.name = self.name
        return layer


def checked_architecture(architecture):
    """[LayerSpec] of an architecture (a list of {kind, name, arguments, dtype}), each layer's
    arguments checked as its constructor checks them; Bad names the layer and what is wrong."""
    key = "json/architecture"
    if not isinstance(architecture, list) or not architecture:
        raise Bad(key, "expected a list of layers, got "
                       + ("an empty list" if architecture == [] else describe(architecture)))
    specs, names, known = [], {}, {}
    for i, entry in enumerate(architecture):
        fields = ("kind", "name", "arguments", "dtype")  # and "module", where the class was
        if not isinstance(entry, dict) or sorted(set(entry) - {"module"}) != sorted(fields):
            raise Bad(key, f"layer {i}: expected a mapping with the keys {', '.join(fields)} (and "
                           "module), got " + (f"the keys {', '.join(map(str, entry))}"
                                              if isinstance(entry, dict) else describe(entry)))
        name = entry["name"]
        if not isinstance(name, str) or not name or not name.isprintable() or len(name) > MAX_NAME:
            raise Bad(key, f"layer {i}: the name {describe(name)} is not a printable text of 1 to "
                           f"{MAX_NAME} characters")
        if name in names:
            raise Bad(key, f"layer {i}: the name {name!r} is layer {names[name]}'s too; each "
                           "layer's is its own")
        names[name] = i
        kind = entry["kind"]
        if not isinstance(kind, str) or kind not in LAYERS:
            raise Bad(key, f"layer {i} ({name}): {unregistered(entry)}")
        if kind not in known:  # inspect is slow: once a kind
            cls = LAYERS[kind]
            known[kind] = cls, settings(cls), "dtype" in inspect.signature(cls).parameters
        cls, checks, takes_dtype = known[kind]
        try:
            arguments = resolve_section(entry["arguments"], checks)
        except Invalid as e:
            where = "".join(f"{part}: " for part in e.path)
            raise Bad(key, f"layer {i} ({name}): {where}{e.problem}") from None
        dtype = entry["dtype"]
        if takes_dtype and not is_float_name(dtype) or not takes_dtype and dtype is not None:
            allowed = "a floating-point dtype such as float32" if takes_dtype else "null"
            shown = repr(dtype) if isinstance(dtype, str) else describe(dtype)
            raise Bad(key, f"layer {i} ({name}): dtype {shown}; {cls.__name__} takes {allowed}")
        specs.append(LayerSpec(i, cls, name, arguments, dtype))
    return specs


def is_float_name(dtype):
    """Whether `dtype` is the name numpy gives a floating-point dtype ('float32', not 'f4')."""
    try:
        return (isinstance(dtype, str) and np.dtype(dtype).kind == "f"
                and str(np.dtype(dtype)) == dtype)
    except (TypeError, ValueError):
        return False


def checked_model_members(parsed, members):
    """The architecture (when the file has one) and input_shape checked, and the model members'
    dtypes and shapes compared with the ones its layers declare, all before any is read; returns
    the names of the members that can never be negative."""
    shape = parsed.get("input_shape")
    if shape is not None and (not isinstance(shape, list) or not shape or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
        raise Bad("json/input_shape", "expected null or a list of positive integers, got "
                                      + json.dumps(shape)[:60])
    model = {m.name: m for m in members if m.group == "model"}
    if "architecture" not in parsed:
        return set()
    expected, nonnegative = {}, set()
    for spec in checked_architecture(parsed["architecture"]):
        for name, shape in spec.cls.state_shapes(spec.arguments).items():
            expected[f"{spec.name}.{name}"] = (spec, tuple(shape))
        nonnegative.update(f"{spec.name}.{name}" for name in spec.cls.nonnegative)
    for name, (spec, shape) in expected.items():
        should = f"{spec.dtype} {shape}"
        if name not in model:
            raise Bad(f"model/{name}", f"missing; the architecture's {spec} holds it, {should}")
        if model[name].dtype != np.dtype(spec.dtype) or model[name].shape != shape:
            other = "; are the arrays another model's?" if model[name].shape != shape else ""
            raise Bad(f"model/{name}", f"{model[name].described()} in the file, {should} for the "
                                       f"architecture's {spec}{other}")
    for name in model.keys() - expected.keys():
        raise Bad(f"model/{name}", "an array no layer of the architecture holds")
    return nonnegative


def checked_values(value, member, nonnegative):
    """A model or optimizer array refused when it holds NaN or infinity, or a buffer that can
    never be negative holds a negative number; other arrays as read."""
    if member.group in ("model", "optimizer") and value.dtype.kind == "f":
        if not np.isfinite(value).all():
            bad = value.size - np.count_nonzero(np.isfinite(value))
            use = ("a model computes nothing meaningful" if member.group == "model"
                   else "training cannot continue")
            raise Bad(member.key, f"NaN or infinity in {bad:,} of its {value.size:,} values; {use} "
                                  "with them")
    if member.group == "model" and member.name in nonnegative and (value < 0).any():
        raise Bad(member.key, f"negative in {np.count_nonzero(value < 0):,} of its {value.size:,} "
                              f"values (the lowest {value.min()}); it can never be negative")
    return value


def load_model(path, state=None):
    """The model saved in a checkpoint, rebuilt from its architecture with the saved weights and
    buffers, ready for predict (eval mode is predict's and evaluate's own). `state`: what
    load(path) returned, when the caller has it (the file is then not read again)."""
    state = load(path) if state is None else state
    if "architecture" not in state:
        raise CheckpointError(f"{path}: holds no model architecture (saved by an older version?)")
    try:
        specs = checked_architecture(state["architecture"])
        needed, available = 3 * sum(a.nbytes for a in state["model"].values()), available_bytes()
        if available is not None and needed > available:  # weights, gradients, first values
            raise Bad(None, f"its model needs about {size(needed)} to build, more than the "
                            f"{size(available)} this machine has available")
        try:
            model = Sequential([spec.make() for spec in specs],
                               input_shape=state.get("input_shape"))
        except ValueError as e:  # layers that do not fit together, as a config's would not
            raise Bad("json/architecture", str(e)) from None
    except Bad as e:
        raise CheckpointError(e.message(path)) from None
    model.load_state_dict(state["model"])
    return model
