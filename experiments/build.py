"""From a resolved config to the objects of a run: data, model, optimizer, lr schedule.

Everything random draws from the one generator passed in, in a fixed order (data split,
subset, weights, then training), so a seed fixes the whole run.
"""
import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import framework as F
from datasets import DATASETS, default_root, load_mnist, split_validation

from .config import ConfigError, example_shape, layer_kind


@dataclass
class Data:
    """The three splits as (x, t) pairs; val is None without a validation split."""

    train: tuple
    val: tuple
    test: tuple


def load_data(config, rng, progress=None, log=print):
    """The configured dataset, split into train / validation (and subset), as float32 images of
    shape (N, 1, 28, 28): the first layer takes what it needs (Affine flattens them itself)."""
    data = config["data"]
    if data["dataset"] == "synthetic":
        train, test = synthetic(data["synthetic"], rng)
        log(f"data: synthetic blobs, {data['synthetic']['classes']} classes")
    else:
        dataset = DATASETS[data["dataset"]]
        root = Path(data["dir"]).expanduser() if data["dir"] else default_root(dataset)
        missing = [spec for spec in dataset.files.values() if not (root / spec.name).exists()]
        if missing:
            size = sum(spec.size for spec in missing) / 1e6
            log(f"data: downloading {dataset.name} ({size:.0f} MB, {len(missing)} files) "
                f"into {root}")
        # Split the uint8 images and scale each split once: splitting float32 images would
        # hold two copies of the training set at once (figures in benchmarks/README.md).
        train, test = load_mnist(root, mirrors=data["mirrors"], progress=progress,
                                 name=data["dataset"], normalize=False, flatten=False)
        log(f"data: {dataset.name} from {root} (verified; parsed arrays cached there)")
    val = None
    if data["validation"]:
        train, val = split_validation(*train, data["validation"], seed=rng)
    if data["subset"] is not None and data["subset"] < len(train[0]):
        _, train = split_validation(*train, data["subset"], seed=rng)
    return Data(*(scaled(split) for split in (train, val, test)))


def scaled(split):
    """(x, t) with uint8 images scaled to float32 in [0, 1]; float data and None pass through."""
    if split is None or split[0].dtype != np.uint8:
        return split
    x, t = split
    return np.divide(x, 255, dtype=np.float32), t


def synthetic(spec, rng):
    """Gaussian blobs: one random centre per class, unit noise around it. For tests and demos."""
    n_train, n = spec["train"], spec["train"] + spec["test"]
    centres = 2 * rng.standard_normal((spec["classes"], spec["features"]), dtype=np.float32)
    t = rng.integers(spec["classes"], size=n)
    x = centres[t] + rng.standard_normal((n, spec["features"]), dtype=np.float32)
    return (x[:n_train], t[:n_train]), (x[n_train:], t[n_train:])


def build_model(config, input_shape, rng):
    """The Sequential model of config["model"]; each layer's input size comes from the shape
    (per example) that the layers before it produce, starting from input_shape. A layer that
    does not fit what reaches it (a kernel larger than its image, say) is a ConfigError naming
    its key path."""
    kinds, layers, shape = F.LAYERS, [], tuple(input_shape)
    for i, item in enumerate(config["model"]):
        cls = kinds[layer_kind(item)]
        given = item[layer_kind(item)] if isinstance(item, dict) else {}
        names = {short: arg for arg, short in cls.short_names.items()}
        args = {names.get(key, key): value for key, value in given.items()}
        args.update({arg: infer(shape) for arg, infer in cls.from_input.items()})
        if "rng" in inspect.signature(cls).parameters:
            args["rng"] = rng
        try:
            layers.append(cls(**args))
            shape = layers[-1].output_shape(shape)
        except ValueError as error:
            raise ConfigError(f"model.{i}.{layer_kind(item)}: {error}") from None
    return F.Sequential(layers, input_shape=input_shape)


def checked_model(config, source):
    """The model, made once on a generator of its own before any folder or data: a layer that
    does not fit is refused there, and its shapes give the exact memory estimate."""
    try:
        return build_model(config, example_shape(config["data"]), np.random.default_rng(0))
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}.") from None


def build_training(config, train, rng):
    """The model, the learning-rate schedule and the optimizer of a run on the training set
    `train` (x, t), and its steps per epoch: everything fit updates, made in one place.

    The schedule owns the learning rate: config's optimizer.lr reaches the optimizer only
    through it (its value at step 0 here; LRSchedule sets it before every step)."""
    x = train[0]
    model = build_model(config, x.shape[1:], rng)
    steps_per_epoch = -(-len(x) // config["data"]["batch_size"])
    schedule = build_schedule(config, steps_per_epoch)
    settings = dict(config["optimizer"])
    name = settings.pop("name")
    settings["lr"] = schedule(0)
    return model, schedule, F.OPTIMIZERS[name](model.parameters(), **settings), steps_per_epoch


def build_schedule(config, steps_per_epoch):
    """step -> lr for the whole planned run (epochs x steps_per_epoch steps)."""
    settings, lr = config["schedule"], config["optimizer"]["lr"]
    warmup = round(settings["warmup_epochs"] * steps_per_epoch)
    after_warmup = config["training"]["epochs"] * steps_per_epoch - warmup
    if settings["name"] == "cosine":
        schedule = F.Cosine(lr, after_warmup, final=settings["final_lr"])
    elif settings["name"] == "step":
        schedule = F.StepDecay(lr, max(1, round(settings["step_epochs"] * steps_per_epoch)),
                               settings["gamma"])
    else:
        schedule = F.Constant(lr)
    return F.Warmup(schedule, warmup) if warmup else schedule


def parameter_count(model):
    """Number of trainable numbers in the model."""
    return int(sum(p.data.size for p in model.parameters()))
