"""Experiment configs: every default in SCHEMA or in the framework's classes, validation, --set
overrides.

The layers a model may list and the optimizers, with their settings, defaults and allowed values,
come from the framework's classes (framework.LAYERS, framework.OPTIMIZERS and each
constructor's checked arguments); SCHEMA holds the rest. A config is checked completely before
any work starts: mistakes raise ConfigError with a one-paragraph message naming the source (file
or --set), the key path and what is allowed.
"""
import copy
import os
import textwrap

import framework as F
from datasets import DATASETS
from datasets.entry import DEFAULT
from framework.checks import (
    REQUIRED,
    Check,
    Flag,
    Integer,
    Invalid,
    OneOf,
    Optional,
    Real,
    Text,
    close_match,
    describe,
    resolve_section,
    settings,
)

from .yamlfile import MAX_BYTES, ConfigError, dump, parse_yaml, read_mapping

__all__ = ["ConfigError", "dump", "load", "resolve", "user_config", "SCHEMA"]


# ---- checks the config needs besides the framework's

class Name(Text):
    """A run's name: a text that is one folder name (no / or \\, not . or ..)."""

    allowed = "a name without / or \\"

    def __call__(self, value):
        value = super().__call__(value)
        if "/" in value or "\\" in value or value in (".", ".."):
            raise Invalid(f"the name {value!r} would leave the runs folder; use a plain name "
                          "without / or \\")
        return value


class Registered(OneOf):
    """The name of a class in a registry (framework.LAYERS, OPTIMIZERS, LOSSES), looked up when a
    config is checked: a user's own class, registered after this module was imported, counts."""

    def __init__(self, registry):
        self.registry = registry

    @property
    def options(self):
        return tuple(self.registry)

    @property
    def allowed(self):
        return "one of " + ", ".join(self.options)


def layer_settings(cls):
    """{config name: (default, check)} of a layer class: its checked arguments less what the
    input decides."""
    return {cls.short_names.get(arg, arg): spec for arg, spec in settings(cls).items()
            if arg not in cls.from_input}


def layer_kind(layer):
    """'relu' for "relu", 'affine' for {"affine": {...}}."""
    return layer if isinstance(layer, str) else next(iter(layer))


class LayerList(Check):
    """The model: a list of framework layers by name, each with its settings."""

    allowed = "a list of layers such as `- affine: {out: 256}`, `- relu`, `- dropout: {p: 0.2}`"

    def __call__(self, value):
        if not isinstance(value, list) or not value:
            raise Invalid(f"wrong type: expected {self.allowed}, got {describe(value)}")
        layers, problems = [], []  # every layer's mistakes, not only the first layer's
        for i, item in enumerate(value):
            try:
                layers.append(self.layer(i, item))
            except Invalid as e:
                problems.extend(e.each())
        if problems:
            raise Invalid.all(problems)
        if layer_kind(layers[-1]) == "softmax":
            raise Invalid("leave out the last softmax: the loss applies softmax itself",
                          (len(layers) - 1,))
        return layers

    @staticmethod
    def layer(i, item):
        """The resolved layer at position i of the list (its kind, or {kind: settings})."""
        kinds = F.LAYERS
        if isinstance(item, dict) and len(item) > 1:
            # `--set model.0.dense.out=256` on an affine layer adds a second name to it
            unknown = next((kind for kind in item if kind not in kinds), None)
            if unknown is not None:
                raise Invalid(unknown_layer(unknown, kinds), (i,))
            raise Invalid(f"one layer per list item, got {' and '.join(map(str, item))}; a "
                          "key path names the layer at that position (model.N.KIND.SETTING)", (i,))
        if isinstance(item, str):
            kind, user = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            kind, user = next(iter(item.items()))
        else:
            raise Invalid("a layer is a name (`relu`) or one name with settings "
                          f"(`affine: {{out: 10}}`), got {describe(item)}", (i,))
        if not isinstance(kind, str) or kind not in kinds:
            raise Invalid(unknown_layer(kind, kinds), (i,))
        resolved = resolve_section(user, layer_settings(kinds[kind]), (i, kind))
        return {kind: resolved} if resolved else kind


def unknown_layer(kind, kinds):
    """"unknown layer 'dense' (did you mean 'affine'? ...); layers: ..." for a name not in
    `kinds`, pointing from another framework's name for a layer (Layer.other_names) to ours."""
    ours = next((name for name, cls in kinds.items() if kind in cls.other_names), None)
    hint = (f" (did you mean '{ours}'? '{kind}' is its name elsewhere)" if ours
            else close_match(kind, kinds))
    return f"unknown layer '{kind}'{hint}; layers: {', '.join(kinds)}"


class OptimizerSection(Check):
    """`name:` one of the framework's optimizers, then that optimizer's own settings."""

    allowed = "a mapping with `name:` and that optimizer's settings"

    def __call__(self, value):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise Invalid(f"wrong type: expected {self.allowed}, got {describe(value)}")
        classes = F.OPTIMIZERS
        try:
            name = Registered(classes)(value.get("name", "adam"))
        except Invalid as e:
            raise Invalid(e.problem, ("name",)) from None
        own = settings(classes[name])
        others = {key for cls in classes.values() for key in settings(cls)}
        problems = []  # every mistake of the section, not only the first
        for key, setting in value.items():
            if key == "name" or key in own or (key in others and setting is None):
                continue
            problems.append(Invalid(
                f"{name} does not use '{key}' (it takes {', '.join(own)}); remove it or set it "
                "to null" if key in others else
                f"unknown key '{key}'{close_match(key, ['name', *own])}; {name} takes: name, "
                f"{', '.join(own)}", (key,)))
        given = {key: value[key] for key in own if value.get(key) is not None}
        try:
            resolved = resolve_section(given, own)
        except Invalid as e:
            problems.extend(e.each())
        if problems:
            raise Invalid.all(problems)
        return {"name": name, **resolved}


# What every dataset's section has besides `dataset:` and that dataset's own settings.
DATA = {
    "validation": (5000, Integer(0)),  # training examples held out for validation (0 = none)
    "subset": (None, Optional(Integer(1))),  # train on only this many random examples (quick runs)
    "batch_size": (128, Integer(1)),  # examples per optimizer step
    "shuffle": (True, Flag()),  # a fresh random order each epoch (false: file order)
    # leave out each epoch's last batch when it is smaller (as PyTorch's DataLoader)
    "drop_last": (False, Flag()),
    "augment_shift": (0, Integer(0, 4)),  # move training images up to this many pixels; 0: off
}


class DataSection(Check):
    """`dataset:` one of the registered datasets, that dataset's own settings (datasets.DATASETS
    and each entry's checked arguments), and the settings of DATA."""

    allowed = "a mapping with `dataset:`, that dataset's settings and " + ", ".join(DATA)

    def __call__(self, value):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise Invalid(f"wrong type: expected {self.allowed}, got {describe(value)}")
        try:
            name = OneOf(*DATASETS)(value.get("dataset", DEFAULT))
        except Invalid as e:
            raise Invalid(e.problem, ("dataset",)) from None
        own = settings(DATASETS[name])
        others = {key for cls in DATASETS.values() for key in settings(cls)} - set(own) - set(DATA)
        given = {}
        for key, setting in value.items():
            if key in others:
                if setting is None:
                    continue
                takes = f"its settings: {', '.join(own)}" if own else "it has no settings"
                raise Invalid(f"{name} does not use '{key}' ({takes}); remove it or set it to "
                              "null", (key,))
            given[key] = setting
        schema = {"dataset": (DEFAULT, Check()), **own, **DATA}
        resolved = resolve_section(given, schema)
        resolved["dataset"] = name
        dataset(resolved)  # an entry that describes itself from a file reads its headers here
        return resolved


def dataset(data):
    """The entry (a datasets.Dataset) of a resolved data section: example shape, classes, sizes,
    bytes, load and picture. An entry that reads its description from a file raises Invalid at
    the setting naming the file."""
    cls = DATASETS[data["dataset"]]
    return cls(**{key: data[key] for key in settings(cls)})


MAX_GRID_VALUES = 1000  # as sweep.MAX_RUNS: no list of a grid can be longer than a whole sweep


MAX_JOBS = 256  # runs at once: beyond what one machine's cores (or a sweep's runs) can use
MAX_EPOCHS = 1_000_000  # a warm-up or step of a schedule: longer than any run (1e308 overflows)


class SearchSpace(Check):
    """sweep.random.space: key path -> {uniform: [low, high]}, {log_uniform: [low, high]} (low >
    0) or {choice: [values]}."""

    allowed = ("a mapping of key paths to {uniform: [low, high]}, {log_uniform: [low, high]} or "
               "{choice: [values]}")
    KINDS = ("uniform", "log_uniform", "choice")

    def __call__(self, space):
        if not isinstance(space, dict) or not space:
            raise Invalid(f"wrong type: expected {self.allowed}, e.g. `optimizer.lr: "
                          f"{{log_uniform: [1.0e-4, 1.0e-1]}}`, got {describe(space)}")
        return {key: self.dimension(key, spec) for key, spec in space.items()}

    def dimension(self, key, spec):
        """One key's {kind: values}, checked."""
        if not isinstance(key, str):
            raise Invalid(f"a key is a key path such as optimizer.lr, got {describe(key)}")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in self.KINDS:
            raise Invalid("expected one of {uniform: [low, high]}, {log_uniform: [low, high]}, "
                          f"{{choice: [values]}}, got {describe(spec)}", (key,))
        kind, values = next(iter(spec.items()))
        if kind == "choice":
            if not isinstance(values, list) or not values or len(values) > MAX_GRID_VALUES:
                raise Invalid(f"expected a list of 1 to {MAX_GRID_VALUES} values, got "
                              f"{describe(values)}", (key, kind))
            repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
            if repeated is not None:
                raise Invalid(f"lists {repeated!r} more than once", (key, kind))
            return {kind: values}
        if not isinstance(values, list) or len(values) != 2:
            raise Invalid(f"expected [low, high], got {describe(values)}", (key, kind))
        low = (Real(0, low_open=True) if kind == "log_uniform" else Real())
        try:
            low, high = low(values[0]), Real()(values[1])
        except Invalid as e:
            raise Invalid(e.problem, (key, kind)) from None
        if not low < high:
            raise Invalid(f"expected low < high, got [{values[0]}, {values[1]}]", (key, kind))
        return {kind: [low, high]}


RANDOM = {"runs": (REQUIRED, Integer(1, MAX_GRID_VALUES)),  # configurations to draw
          "seed": (0, Integer(0)),  # seeds the draws (each run's own training.seed is apart)
          "space": (REQUIRED, SearchSpace())}  # key path -> what to draw it from


class SweepSpec(Check):
    """null, or the runs: `grid:` (key path -> list of values; every combination runs) or
    `random:` (configurations drawn from ranges), optionally `with:` ("key.path=value" ->
    settings); and where they run: `jobs:` (at once on this machine) or `scheduler:` (a Dask
    scheduler's address)."""

    allowed = ("null, or a mapping with `grid:` (key path -> list of values) or `random:` (runs, "
               "seed, space), and optionally `with:` (\"key.path=value\" -> settings that go "
               "with that value), `jobs:` and `scheduler:`")
    KEYS = {"grid": None, "random": None, "with": None,
            "jobs": (1, Integer(1, MAX_JOBS)),  # runs at once, in as many worker processes
            "scheduler": (None, Optional(Text()))}  # a Dask scheduler's address: runs go there

    def __call__(self, value):
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Invalid(f"wrong type: expected {self.allowed}, got {describe(value)}")
        for key in value:
            if key not in self.KEYS:
                raise Invalid(f"unknown key '{key}'{close_match(key, self.KEYS)}; allowed: "
                              f"{', '.join(self.KEYS)}", (key,))
        grid, search, extra = value.get("grid"), value.get("random"), value.get("with") or {}
        if (grid is None) == (search is None):
            raise Invalid("a sweep needs either `grid:` mapping key paths to lists of values "
                          "(e.g. `optimizer.name: [sgd, adam]`) or `random:`, not "
                          + ("both" if grid is not None else "neither"),
                          ("grid" if grid is not None or search is None else "random",))
        if search is not None:
            search = resolve_section(search, RANDOM, ("random",))
        elif not isinstance(grid, dict) or not grid:
            raise Invalid("a sweep needs `grid:` mapping key paths to lists of values, e.g. "
                          "`optimizer.name: [sgd, adam]`", ("grid",))
        for key, values in (grid or {}).items():
            if not isinstance(key, str):
                raise Invalid(f"a grid key is a key path such as optimizer.lr, got {describe(key)}",
                              ("grid",))
            if not isinstance(values, list) or not values:
                # --set sweep.grid.training.epochs=[1, 2] makes {training: {epochs: [1, 2]}}
                nested = (f"; a grid key is one key path: sweep.grid={{{key}.KEY: [...]}}"
                          if isinstance(values, dict) else "")
                raise Invalid("wrong type: expected a non-empty list of values, got "
                              f"{describe(values)}{nested}", ("grid", key))
            if len(values) > MAX_GRID_VALUES:  # before sweep.combinations compares them in pairs
                raise Invalid(f"{len(values):,} values; a sweep runs at most {MAX_GRID_VALUES} "
                              "combinations", ("grid", key))
        if not isinstance(extra, dict):
            raise Invalid(f"wrong type: expected a mapping, got {describe(extra)}", ("with",))
        for key, more in extra.items():
            if not isinstance(key, str) or "=" not in key or not isinstance(more, dict):
                raise Invalid("expected entries like "
                              '`"optimizer.name=adam": {optimizer.lr: 0.001}`', ("with", key))
        where = {key: spec for key, spec in self.KEYS.items() if spec is not None}
        return {"grid": grid, "random": search, "with": extra,
                **resolve_section({key: value[key] for key in where if key in value}, where)}


def catalogue():
    """The layers, optimizers, datasets and losses a config may name, each setting with what it
    allows and its default (for --help)."""
    def show(name, specs):
        if not specs:
            return [f"  {name:<10} no settings"]
        return [f"  {name if i == 0 else '':<10} {key}: {check.allowed} "
                f"({'required' if default is REQUIRED else f'default {as_yaml(default)}'})"
                for i, (key, (default, check)) in enumerate(specs.items())]
    lines = ["layers (model: list of these; input sizes come from the data):"]
    for kind, cls in F.LAYERS.items():
        lines += show(kind, layer_settings(cls))
    lines.append("optimizers (optimizer.name, and its settings):")
    for name, cls in F.OPTIMIZERS.items():
        lines += show(name, settings(cls))
    lines.append(f"datasets (data.dataset, and its settings; with any: {', '.join(DATA)}):")
    for name, cls in DATASETS.items():
        lines += show(name, settings(cls))
        lines += textwrap.wrap(cls.about(), 100, initial_indent=" " * 13,
                               subsequent_indent=" " * 13)
    lines.append(f"losses (loss): {', '.join(F.LOSSES)}")
    return "\n".join(lines)


def as_yaml(value):
    """A default as a config would write it: null, true, 0.001."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


# ---- every setting the framework's classes do not state, its default and its check

SCHEMA = {
    # label used in the run folder's name; null = the config file's name
    "name": (None, Optional(Name())),
    # the dataset (data.dataset: its name), its own settings and those of DATA
    "data": ({"dataset": DEFAULT}, DataSection()),
    "model": ([{"affine": {"out": 512}}, "relu", {"dropout": {"p": 0.2}},  # layers in order; input
               {"affine": {"out": 512}}, "relu", {"dropout": {"p": 0.2}},  # sizes are inferred; the
               {"affine": {"out": 10}}], LayerList()),  # last layer: an affine, one unit a class
    "loss": ("softmax_cross_entropy", Registered(F.LOSSES)),  # see framework/losses.py
    "optimizer": ({"name": "adam"}, OptimizerSection()),  # name, then that optimizer's settings
    "schedule": {
        "name": ("cosine", OneOf("none", "step", "cosine")),  # how lr changes over the steps
        "warmup_epochs": (0.0, Real(0, MAX_EPOCHS)),  # linear warm-up from ~0 to lr over these
        "final_lr": (0.0, Real(0)),  # cosine: the lr of the last step
        # step: multiply lr by gamma every this many epochs (counted after any warm-up)
        "step_epochs": (1.0, Real(0, MAX_EPOCHS, low_open=True)),
        "gamma": (0.1, Real(0, low_open=True)),  # step: the factor
    },
    "training": {
        "epochs": (10, Integer(1)),  # passes over the training set
        "max_steps": (None, Optional(Integer(1))),  # end after this many steps in all; null: off
        "seed": (0, Integer(0)),  # seeds the one random generator: split, init, order, dropout
        # evaluate on validation and test every this many epochs (and the last)
        "eval_every": (1, Integer(1)),
        # early stopping: evaluations without a better val acc; null = off
        "patience": (None, Optional(Integer(1))),
        # log the bias gradient on the first batch of every epoch
        "bias_every_epoch": (True, Flag()),
        "bias_every": (0, Integer(0)),  # also every this many steps (0 = off)
    },
    "logging": {
        # parent of the timestamped run folders (when --out is not given)
        "runs_dir": ("runs", Text()),
        # print the bias-gradient lines (bias_grads.csv is always written)
        "bias_lines": (True, Flag()),
        "progress": (None, Optional(Flag())),  # progress bar: null = only on a terminal
        "plots": (True, Flag()),  # write curves.png and bias_grads.png (needs matplotlib)
    },
    # runs every combination of the grid; see configs/compare_optimizers.yaml
    "sweep": (None, SweepSpec()),
}


# ---- resolving: defaults + user values, checked

def dotted(path):
    """('model', 3, 'dropout', 'p') -> 'model.3.dropout.p'."""
    return ".".join(str(part) for part in path)


def resolve(user, source, overrides=()):
    """The complete, checked config from a user's mapping.

    On a mistake, ConfigError names where it came from: the --set among `overrides`
    ([(key path, "--set ...")]) that set the culprit or a mapping holding it, else `source`.
    """
    try:
        config = resolve_section(user, SCHEMA)
        check_consistency(config)
    except Invalid as e:
        mistakes = [located(each, source, overrides) for each in e.each()]
        raise ConfigError("\n".join(mistakes)) from None
    return config


def located(e, source, overrides):
    """`origin: key.path: problem.` for one complaint: the --set that set the culprit or a
    mapping holding it, else `source`."""
    origin = next((text for key, text in reversed(overrides)
                   if list(e.path[:len(key)]) == key[:len(e.path)]), source)
    where = f"{origin}: {dotted(e.path)}" if e.path else origin
    return f"{where}: {e.problem}."


def training_examples(data):
    """Number of examples the training steps draw from: the subset, else what validation
    leaves."""
    return data["subset"] or dataset(data).sizes["train"] - data["validation"]


def check_consistency(config):
    """Checks between settings: output layer vs classes, sizes, patience."""
    model, data = config["model"], config["data"]
    described = dataset(data)
    which = data["dataset"] if data.get("path") is None else f"{data['path']}"  # a file: its name
    last = model[-1]
    if not (isinstance(last, dict) and "affine" in last):
        raise Invalid("the last layer must be an affine layer (one output per class), got "
                      f"'{layer_kind(last)}'", ("model", len(model) - 1))
    if last["affine"]["out"] != described.classes:
        raise Invalid(f"out of range: the output layer has {last['affine']['out']} units but "
                      f"{which} has {described.classes} classes",
                      ("model", len(model) - 1, "affine", "out"))

    available = described.sizes["train"]
    if data["validation"] >= available:
        raise Invalid(f"out of range: {data['validation']} is not < {available}, the training "
                      f"examples of {which}", ("data", "validation"))
    left = available - data["validation"]
    if data["subset"] is not None and data["subset"] > left:
        raise Invalid(f"out of range: {data['subset']} is more than the {left} training examples "
                      "left after validation", ("data", "subset"))
    if data["augment_shift"] and len(described.example_shape) != 3:
        raise Invalid(f"shifting needs images: the examples of {data['dataset']} are vectors of "
                      f"{described.example_shape[0]} numbers, not pictures; set it to 0",
                      ("data", "augment_shift"))
    if config["training"]["patience"] is not None and data["validation"] == 0:
        raise Invalid("early stopping watches validation accuracy: set data.validation > 0 or "
                      "patience to null", ("training", "patience"))


# ---- overrides: --set key.path=value and sweep combinations

def key_path(key):
    """'model.0.affine.out' -> ['model', 0, 'affine', 'out']: list positions are (ASCII) numbers."""
    return [int(part) if part.isascii() and part.isdigit() else part
            for part in str(key).strip().split(".")]


def parse_override(text):
    """'optimizer.lr=0.01' -> (['optimizer', 'lr'], 0.01)."""
    if len(text) > MAX_BYTES:  # as a config file: parsing megabytes of YAML takes minutes
        raise ConfigError(f"--set {text[:40]}...: {len(text):,} characters; a setting is at most "
                          f"{MAX_BYTES // 1024} KB (write a long one in a config file).")
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text}: expected KEY.PATH=VALUE, e.g. --set optimizer.lr=0.01.")
    return key_path(key), parse_yaml(value, f"--set {shorten(text)}")


def shorten(text, limit=100):
    """An override as messages quote it: a long one cut to its start."""
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def default_at(path):
    """The default config's value at `path` (None when it has none there). Inside a section that
    its own check resolves (data, optimizer), the default section as that check resolves it."""
    node, resolved = SCHEMA, False
    for part in path:
        if isinstance(node, tuple):  # (default, check) with more path to go
            node, resolved = node[1](copy.deepcopy(node[0])), True
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if resolved:
        return copy.deepcopy(node)
    return copy.deepcopy(node[0]) if isinstance(node, tuple) else {}


def set_path(config, path, value, source):
    """Sets config[path[0]][path[1]]... = value in a user's mapping, creating what is missing on
    the way (a list the user left out, such as model, starts as its default)."""
    node = config
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, dict) and not isinstance(part, int):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = (default_at(path[:1]) if depth == 0 else None) or {}
                node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            if last:
                node[part] = value
            else:
                if isinstance(node[part], str):  # a bare layer name gains settings: {relu: {}}
                    node[part] = {node[part]: {}}
                node = node[part]
        else:
            raise ConfigError(f"{source}: {dotted(path[:depth + 1])}: there is no such place to "
                              f"set ({dotted(path[:depth]) or 'the config'} is {describe(node)}).")


def user_config(path=None, overrides=()):
    """(the user's mapping: the file at `path` with every --set applied,
    [(key path, "--set ...")])."""
    user = read_mapping(path, SCHEMA) if path is not None else {}
    origins = []
    for item in overrides:
        key, value = parse_override(item)
        set_path(user, key, value, f"--set {shorten(item)}")
        origins.append((key, f"--set {shorten(item)}"))
    return user, origins


def expand_paths(config):
    """The config with `~` in its folders expanded, once, so every file of a run lands where the
    user meant (pandas would expand `~` in one file's path and the rest would not)."""
    config["logging"]["runs_dir"] = os.path.expanduser(config["logging"]["runs_dir"])
    for key in DATASETS[config["data"]["dataset"]].locations:
        if isinstance(config["data"][key], str):
            config["data"][key] = os.path.expanduser(config["data"][key])
    return config


def load(path=None, overrides=()):
    """Defaults + the file at `path` (None: defaults only) + all overrides, resolved and checked
    once."""
    user, origins = user_config(path, overrides)
    return resolve(user, str(path) if path is not None else "defaults", origins)
