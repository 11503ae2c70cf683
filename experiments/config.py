"""Experiment configs: every default in SCHEMA (one place), YAML loading, validation, --set overrides.

A config is checked completely before any work starts. Mistakes raise ConfigError with a
one-paragraph message naming the source (file or --set), the key path and what is allowed.
"""
import copy
import difflib
import math
import re

import yaml

from datasets import DATASETS

REQUIRED = object()  # default of a setting that has none: leaving it out is an error


class ConfigError(Exception):
    """A user's mistake in a config file or an override; the message says where and what is allowed."""


class Invalid(Exception):
    """A check's complaint about a value; `path` leads from the checked value to the culprit."""

    def __init__(self, problem, path=()):
        super().__init__(problem)
        self.problem, self.path = problem, tuple(path)


# ---- checks: each returns the (normalised) value or raises Invalid; `allowed` names what fits

def allows(text):
    """Decorator attaching the description of what a check accepts."""
    def attach(check):
        check.allowed = text
        return check
    return attach


def describe(value):
    """A value as a user would recognise it in their YAML."""
    if isinstance(value, bool):
        return str(value).lower()
    kind = {int: "the integer", float: "the number", str: "the text",
            list: "a list", dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)
    return kind if value is None or isinstance(value, (list, dict)) else f"{kind} {value!r}"


def bounds(low, high, low_open=False, high_open=False):
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '≥'} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '≤'} {high}")
    return " and ".join(parts)


def integer(low=None, high=None):
    """A whole number within [low, high]."""
    allowed = " ".join(filter(None, ["an integer", bounds(low, high)]))

    @allows(allowed)
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"wrong type: expected {allowed}, got {describe(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise Invalid(f"out of range: {value} is not {bounds(low, high)}")
        return value
    return check


def number(low=None, high=None, low_open=False, high_open=False):
    """A finite real number (integers accepted) within the bounds; returned as float."""
    allowed = " ".join(filter(None, ["a number", bounds(low, high, low_open, high_open)]))

    @allows(allowed)
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"wrong type: expected {allowed}, got {describe(value)}")
        if (not math.isfinite(value) or (low is not None and (value < low or low_open and value == low))
                or (high is not None and (value > high or high_open and value == high))):
            raise Invalid(f"out of range: {value} is not {bounds(low, high, low_open, high_open) or 'finite'}")
        return float(value)
    return check


def choice(*options):
    """One of the given words."""
    allowed = "one of " + ", ".join(options)

    @allows(allowed)
    def check(value):
        if value not in options or not isinstance(value, str):
            hint = close_match(value, options)
            raise Invalid(f"{describe(value)} is not allowed{hint}; expected {allowed}")
        return value
    return check


@allows("true or false")
def boolean(value):
    if not isinstance(value, bool):
        raise Invalid(f"wrong type: expected true or false, got {describe(value)}")
    return value


@allows("a text")
def text(value):
    if not isinstance(value, str) or not value:
        raise Invalid(f"wrong type: expected a non-empty text, got {describe(value)}")
    return value


@allows("a list of web addresses or folders (or one text, comma-separated)")
def text_list(value):
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(f"wrong type: expected {text_list.allowed}, got {describe(value)}")
    return value


def optional(check):
    """null, or what `check` accepts."""
    @allows(f"{check.allowed}, or null")
    def optional_check(value):
        return None if value is None else check(value)
    return optional_check


@allows('"he" (for ReLU), "xavier" (for sigmoid) or a number > 0 (the weights\' std)')
def init(value):
    if value in ("he", "xavier") and isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise Invalid(f"{describe(value)} is not allowed; expected {init.allowed}")


def close_match(word, options):
    """ " (did you mean 'x'?)" for a near miss, else ""."""
    found = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{found[0]}'?)" if found else ""


# ---- the layers a model may list, each with its settings (default, check)

LAYERS = {
    "affine": {
        "out": (REQUIRED, integer(1)),  # number of output units; the last affine's must equal the classes
        "init": ("he", init),  # weight init: "he" std sqrt(2/in), "xavier" std sqrt(1/in), or a std
    },
    "relu": {},
    "sigmoid": {},
    "dropout": {
        "p": (0.5, number(0, 1, high_open=True)),  # probability of zeroing each unit while training
    },
}


@allows("a list of layers such as `- affine: {out: 256}`, `- relu`, `- dropout: {p: 0.2}`")
def layer_list(value):
    if not isinstance(value, list) or not value:
        raise Invalid(f"wrong type: expected {layer_list.allowed}, got {describe(value)}")
    layers = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            kind, settings = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            kind, settings = next(iter(item.items()))
        else:
            raise Invalid(f"a layer is a name (`relu`) or one name with settings (`affine: {{out: 10}}`), "
                          f"got {describe(item)}", (i,))
        if kind not in LAYERS:
            why = ("; leave it out: the loss applies softmax itself" if kind == "softmax"
                   else close_match(kind, LAYERS))
            raise Invalid(f"unknown layer '{kind}'{why}; layers: {', '.join(LAYERS)}", (i,))
        settings = resolve_section(settings, LAYERS[kind], (i, kind))
        layers.append({kind: settings} if settings else kind)
    return layers


@allows("null, or a mapping with `grid:` (key path -> list of values) and optionally "
        "`with:` (\"key.path=value\" -> settings that go with that value)")
def sweep_spec(value):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid(f"wrong type: expected {sweep_spec.allowed}, got {describe(value)}")
    for key in value:
        if key not in ("grid", "with"):
            raise Invalid(f"unknown key '{key}'{close_match(key, ['grid', 'with'])}; allowed: grid, with", (key,))
    grid, extra = value.get("grid"), value.get("with") or {}
    if not isinstance(grid, dict) or not grid:
        raise Invalid("a sweep needs `grid:` mapping key paths to lists of values, e.g. "
                      "`optimizer.name: [sgd, adam]`", ("grid",))
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise Invalid(f"wrong type: expected a non-empty list of values, got {describe(values)}", ("grid", key))
    if not isinstance(extra, dict):
        raise Invalid(f"wrong type: expected a mapping, got {describe(extra)}", ("with",))
    for key, settings in extra.items():
        if not isinstance(key, str) or "=" not in key or not isinstance(settings, dict):
            raise Invalid('expected entries like `"optimizer.name=adam": {optimizer.lr: 0.001}`', ("with", key))
    return {"grid": grid, "with": extra}


# ---- every setting, its default and its check: the single source of defaults

SCHEMA = {
    "name": (None, optional(text)),  # label used in the run folder's name; null = the config file's name
    "data": {
        "dataset": ("mnist", choice("mnist", "fashion", "synthetic")),  # synthetic: Gaussian blobs, no files
        "dir": (None, optional(text)),  # where the dataset files live; null = $MNIST_DIR or ~/.cache/npdl/<name>
        "mirrors": (None, optional(text_list)),  # where to download from; null = $MNIST_MIRRORS or built-in list
        "validation": (5000, integer(0)),  # training examples held out for validation (0 = none)
        "subset": (None, optional(integer(1))),  # train on only this many random examples (quick runs)
        "batch_size": (128, integer(1)),  # examples per optimizer step
        "shuffle": (True, boolean),  # a fresh random order each epoch (false: file order)
        "synthetic": {  # only for dataset: synthetic
            "train": (1000, integer(2)),  # training examples (validation is taken from these)
            "test": (300, integer(1)),  # test examples
            "features": (20, integer(1)),  # inputs per example
            "classes": (3, integer(2)),  # number of classes (blobs)
        },
    },
    "model": ([{"affine": {"out": 512}}, "relu", {"dropout": {"p": 0.2}},  # layers in order; input
               {"affine": {"out": 512}}, "relu", {"dropout": {"p": 0.2}},  # sizes are inferred; the
               {"affine": {"out": 10}}], layer_list),  # last layer is an affine with one unit per class
    "loss": ("softmax_cross_entropy", choice("softmax_cross_entropy")),  # softmax + cross-entropy, fused
    "optimizer": {
        "name": ("adam", choice("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")),
        "lr": (0.001, number(0, low_open=True)),  # learning rate (the peak one when a schedule is used)
        "weight_decay": (0.0, number(0)),  # L2 on weights (never biases), added to the gradient
        "momentum": (None, optional(number(0, 1, high_open=True))),  # momentum, nesterov; null = 0.9
        "alpha": (None, optional(number(0, 1, high_open=True))),  # rmsprop's decay of g²; null = 0.99
        "beta1": (None, optional(number(0, 1, high_open=True))),  # adam's decay of m; null = 0.9
        "beta2": (None, optional(number(0, 1, high_open=True))),  # adam's decay of v; null = 0.999
        "eps": (None, optional(number(0, low_open=True))),  # adagrad/rmsprop/adam; null = their default
    },
    "schedule": {
        "name": ("cosine", choice("none", "step", "cosine")),  # how lr changes over the steps
        "warmup_epochs": (0.0, number(0)),  # linear warm-up from ~0 to lr over this many epochs
        "final_lr": (0.0, number(0)),  # cosine: the lr of the last step
        "step_epochs": (1.0, number(0, low_open=True)),  # step: multiply lr by gamma every this many epochs (counted after any warm-up)
        "gamma": (0.1, number(0, low_open=True)),  # step: the factor
    },
    "training": {
        "epochs": (10, integer(1)),  # passes over the training set
        "seed": (0, integer(0)),  # seeds the one random generator: split, init, order, dropout
        "eval_every": (1, integer(1)),  # evaluate on validation and test every this many epochs (and the last)
        "patience": (None, optional(integer(1))),  # early stopping: evaluations without a better val acc; null = off
        "bias_every_epoch": (True, boolean),  # log the bias gradient on the first batch of every epoch
        "bias_every": (0, integer(0)),  # also every this many steps (0 = off)
    },
    "logging": {
        "runs_dir": ("runs", text),  # parent of the timestamped run folders (when --out is not given)
        "bias_lines": (True, boolean),  # print the bias-gradient lines (bias_grads.csv is always written)
        "progress": (None, optional(boolean)),  # progress bar: null = only on a terminal
        "plots": (True, boolean),  # write curves.png and bias_grads.png (needs matplotlib)
    },
    "sweep": (None, sweep_spec),  # runs every combination of the grid; see configs/compare_optimizers.yaml
}

OPTIMIZER_SETTINGS = {  # which optional settings each optimizer takes
    "sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",), "adagrad": ("eps",),
    "rmsprop": ("alpha", "eps"), "adam": ("beta1", "beta2", "eps"),
}


# ---- resolving: defaults + user values, checked

def resolve_section(user, schema, path=()):
    """Defaults of `schema` overlaid with the mapping `user`, every value checked."""
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise Invalid(f"wrong type: expected a mapping with keys {', '.join(schema)}, got {describe(user)}", path)
    for key in user:
        if key not in schema:
            allowed = f"allowed keys here: {', '.join(schema)}" if schema else "it takes no settings"
            raise Invalid(f"unknown key '{key}'{close_match(key, schema)}; {allowed}", path + (key,))
    resolved = {}
    for key, spec in schema.items():
        if isinstance(spec, dict):
            resolved[key] = resolve_section(user.get(key), spec, path + (key,))
            continue
        default, check = spec
        if key not in user and default is REQUIRED:
            raise Invalid(f"missing; it is required ({check.allowed})", path + (key,))
        try:
            resolved[key] = check(copy.deepcopy(user.get(key, default)))
        except Invalid as e:
            raise Invalid(e.problem, path + (key,) + e.path) from None
    return resolved


def dotted(path):
    """('model', 3, 'dropout', 'p') -> 'model.3.dropout.p'."""
    return ".".join(str(part) for part in path)


def resolve(user, source):
    """The complete, checked config from a user's mapping; ConfigError names `source` on a mistake."""
    try:
        config = resolve_section(user, SCHEMA)
        check_consistency(config)
    except Invalid as e:
        where = f"{source}: {dotted(e.path)}" if e.path else source
        raise ConfigError(f"{where}: {e.problem}.") from None
    return config


def classes(data):
    """Number of classes of the configured dataset."""
    return data["synthetic"]["classes"] if data["dataset"] == "synthetic" else DATASETS[data["dataset"]].num_classes


def train_size(data):
    """Number of training examples before the validation split."""
    return data["synthetic"]["train"] if data["dataset"] == "synthetic" else DATASETS[data["dataset"]].n_train


def check_consistency(config):
    """Checks between settings: output layer vs classes, optimizer settings, sizes, patience."""
    model, data = config["model"], config["data"]
    last = model[-1]
    if not (isinstance(last, dict) and "affine" in last):
        raise Invalid(f"the last layer must be an affine layer (one output per class), got '{layer_kind(last)}'",
                      ("model", len(model) - 1))
    if last["affine"]["out"] != classes(data):
        raise Invalid(f"out of range: the output layer has {last['affine']['out']} units but "
                      f"{data['dataset']} has {classes(data)} classes", ("model", len(model) - 1, "affine", "out"))

    name = config["optimizer"]["name"]
    for key in ("momentum", "alpha", "beta1", "beta2", "eps"):
        if config["optimizer"][key] is not None and key not in OPTIMIZER_SETTINGS[name]:
            takes = ", ".join(("lr", "weight_decay") + OPTIMIZER_SETTINGS[name])
            raise Invalid(f"{name} does not use '{key}' (it takes {takes}); remove it or set it to null",
                          ("optimizer", key))

    available = train_size(data)
    if data["validation"] >= available:
        raise Invalid(f"out of range: {data['validation']} is not < {available}, the training examples of "
                      f"{data['dataset']}", ("data", "validation"))
    left = available - data["validation"]
    if data["subset"] is not None and data["subset"] > left:
        raise Invalid(f"out of range: {data['subset']} is more than the {left} training examples left after "
                      f"validation", ("data", "subset"))
    if config["training"]["patience"] is not None and data["validation"] == 0:
        raise Invalid("early stopping watches validation accuracy: set data.validation > 0 or patience to null",
                      ("training", "patience"))


def layer_kind(layer):
    """'relu' for "relu", 'affine' for {"affine": {...}}."""
    return layer if isinstance(layer, str) else next(iter(layer))


# ---- YAML

class Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a number (plain YAML 1.1 wants 1.0e-3) and refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first given on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def parse_yaml(text, source):
    """The object in a YAML text; ConfigError with line and column when it is malformed."""
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        context = f" ({e.context})" if e.context and e.problem else ""
        raise ConfigError(f"{source}: {where}: not valid YAML: {e.problem or e.context}{context}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}.") from None


def load_file(path):
    """The user's mapping in a YAML config file (not yet resolved)."""
    try:
        with open(path, encoding="utf-8") as f:
            text_ = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file.") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise ConfigError(f"{path}: cannot be read as a YAML config ({e.__class__.__name__}).") from None
    user = parse_yaml(text_, path)
    if user is None:
        return {}
    if not isinstance(user, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections ({', '.join(SCHEMA)}), got {describe(user)}.")
    return user


def dump(config):
    """The config as YAML text, in the schema's order."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)


# ---- overrides: --set key.path=value and sweep combinations

def key_path(key):
    """'model.0.affine.out' -> ['model', 0, 'affine', 'out']: list indices are numbers."""
    return [int(part) if part.isdigit() else part for part in str(key).strip().split(".")]


def parse_override(text_):
    """'optimizer.lr=0.01' -> (['optimizer', 'lr'], 0.01)."""
    key, sep, value = text_.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text_}: expected KEY.PATH=VALUE, e.g. --set optimizer.lr=0.01.")
    return key_path(key), parse_yaml(value, f"--set {text_}")


def set_path(config, path, value, source):
    """Sets config[path[0]][path[1]]... = value, creating missing mappings on the way."""
    node = config
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, dict) and not isinstance(part, int):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            if last:
                node[part] = value
            else:
                if isinstance(node[part], str):  # a bare layer name gains settings: relu -> {relu: {}}
                    node[part] = {node[part]: {}}
                node = node[part]
        else:
            raise ConfigError(f"{source}: {dotted(path[:depth + 1])}: there is no such place to set "
                              f"({dotted(path[:depth]) or 'the config'} is {describe(node)}).")


def apply_overrides(config, overrides):
    """The config with each --set KEY.PATH=VALUE applied in turn, re-checked after each one."""
    for item in overrides:
        path, value = parse_override(item)
        updated = copy.deepcopy(config)
        set_path(updated, path, value, f"--set {item}")
        config = resolve(updated, f"--set {item}")
    return config


def load(path=None, overrides=()):
    """Defaults + the file at `path` (None: defaults only) + overrides, resolved and checked."""
    config = resolve(load_file(path) if path is not None else {}, path or "defaults")
    return apply_overrides(config, overrides)
