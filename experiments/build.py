"""From a resolved config to the objects of a run: data, model, optimizer, lr schedule.

Everything random draws from the one generator passed in, in a fixed order (data split,
subset, weights, then training), so a seed fixes the whole run.
"""
import inspect
from dataclasses import dataclass

import numpy as np

import framework as F
from datasets import split_validation

from .config import ConfigError, dataset, layer_kind, training_examples


@dataclass
class Data:
    """The three splits as (x, t) pairs; val is None without a validation split."""

    train: tuple
    val: tuple
    test: tuple


def load_data(config, rng, progress=None, log=print):
    """The configured dataset, split into train / validation (and subset), as the model gets it
    (float32; images (N, C, H, W): the first layer takes what it needs, Affine flattens them
    itself). test is None for a dataset without a test set."""
    data = config["data"]
    entry = dataset(data)
    train, test = entry.load(rng, progress=progress, log=log)
    val = None
    if data["validation"]:
        train, val = split_validation(*train, data["validation"], seed=rng)
    if data["subset"] is not None and data["subset"] < len(train[0]):
        _, train = split_validation(*train, data["subset"], seed=rng)
    # Split as loaded, then convert each split once: splitting float32 copies of uint8 images
    # would hold two copies of the training set at once (figures in benchmarks/README.md).
    return Data(*(None if split is None else (entry.model_input(split[0]), split[1])
                  for split in (train, val, test)))


def build_model(config, input_shape, rng, draws=None):
    """The Sequential model of config["model"]; each layer's input size comes from the shape
    (per example) that the layers before it produce, starting from input_shape. A layer that
    does not fit what reaches it (a kernel larger than its image, say) is a ConfigError naming
    its key path. Weights come from rng; a layer that draws while training (Dropout's masks,
    Layer.draws) draws from `draws` when given (each process's own in a data-parallel run)."""
    kinds, layers, shape = F.LAYERS, [], tuple(input_shape)
    for i, item in enumerate(config["model"]):
        cls = kinds[layer_kind(item)]
        given = item[layer_kind(item)] if isinstance(item, dict) else {}
        names = {short: arg for arg, short in cls.short_names.items()}
        args = {names.get(key, key): value for key, value in given.items()}
        args.update({arg: infer(shape) for arg, infer in cls.from_input.items()})
        if "rng" in inspect.signature(cls).parameters:
            args["rng"] = draws if cls.draws and draws is not None else rng
        try:
            layers.append(cls(**args))
            shape = layers[-1].output_shape(shape)
        except ValueError as error:
            raise ConfigError(f"model.{i}.{layer_kind(item)}: {error}") from None
    return F.Sequential(layers, input_shape=input_shape)


def checked_model(config, source):
    """The model, made once on a generator of its own before any folder or data: a layer that
    does not fit is refused there, and so are batches it cannot train on (BatchNorm and a last
    batch of one: the sizes are the config's); its shapes give the exact memory estimate."""
    data = config["data"]
    try:
        model = build_model(config, dataset(data).example_shape, np.random.default_rng(0))
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}.") from None
    try:
        F.check_batches(model, model.input_shape, training_examples(data), data["batch_size"],
                        data["drop_last"], names=("data.batch_size", "data.drop_last: true"))
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None
    return model


def build_training(config, train, rng, draws=None):
    """The model, the learning-rate schedule and the optimizer of a run on the training set
    `train` (x, t), and its steps per epoch: everything fit updates, made in one place (draws:
    as build_model's).

    The schedule owns the learning rate: config's optimizer.lr reaches the optimizer only
    through it (its value at step 0 here; LRSchedule sets it before every step)."""
    x = train[0]
    model = build_model(config, x.shape[1:], rng, draws)
    steps_per_epoch = F.steps_per_epoch(len(x), config["data"]["batch_size"],
                                        config["data"]["drop_last"])
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
