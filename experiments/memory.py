"""How much memory a config needs, estimated before anything large is allocated."""
import math

import framework as F
from framework.memory import available_bytes, size

from .build import checked_model
from .config import dataset
from .yamlfile import ConfigError


def data_bytes(data):
    """The dataset as train.py holds it (its entry's figure: as loaded plus the float32 copy)."""
    return dataset(data).nbytes()


def training_bytes(model, input_shape, batch_size, optimizer_slots):
    """Parameters (data, grad, optimizer state, scratch) and a batch's activations, float32.

    Each layer's output is counted four times: its values, what backward keeps, its gradient,
    and a temporary; input_shape is one example's shape.
    """
    parameters = sum(p.data.size for p in model.parameters()) * (3 + optimizer_slots)
    activations = sum(map(math.prod, [input_shape, *model.output_shapes(input_shape)]))
    return 4 * (parameters + 4 * batch_size * activations)


def model_bytes(config, model, processes=1):
    """data_bytes + training_bytes for a config and the model made from it, in one of
    `processes` processes that train the run together (each holds the whole data set and its
    share of every batch)."""
    slots = len(F.OPTIMIZERS[config["optimizer"]["name"]].slots) + 1
    share = -(-config["data"]["batch_size"] // processes)
    return data_bytes(config["data"]) + training_bytes(model, model.input_shape, share, slots)


def config_bytes(config):
    """The estimate of data_bytes + training_bytes from a resolved config alone, before any array
    is made: a layer with an `out` setting (affine) has in x out weights and out biases and makes
    the shape (out,); the other layers keep their input's shape."""
    data = config["data"]
    shape = dataset(data).example_shape
    parameters, activations = 0, math.prod(shape)
    for layer in config["model"]:
        out = next(iter(layer.values())).get("out") if isinstance(layer, dict) else None
        if out is not None:
            parameters += math.prod(shape) * out + out
            shape = (out,)
        activations += math.prod(shape)
    slots = len(F.OPTIMIZERS[config["optimizer"]["name"]].slots) + 1
    return data_bytes(data) + 4 * (parameters * (3 + slots) + 4 * data["batch_size"] * activations)


SMALLER = "a smaller data.batch_size, data.subset, dataset or model"


def check_fits(needed, what, remedy=SMALLER):
    """Refuses (ConfigError) an estimate beyond the memory available now."""
    available = available_bytes()
    if available is not None and needed > available:
        raise ConfigError(f"{what} needs about {size(needed)} of memory, but this machine has "
                          f"{size(available)} available; use {remedy}.")


def check_before_work(runs, source, at_once=1, processes=1):
    """Every run's layers and memory estimate, checked before any folder or data: runs is
    [(sweep label or None, resolved config)], of which up to `at_once` run at the same time
    (on this machine: a cluster's workers have their own memory); `processes`: how many
    processes on this machine train each run together (mpiexec -n K)."""
    needs = []
    for label, config in runs:
        what = f"sweep run {label}" if label else "this config"
        check_fits(config_bytes(config), what)  # rough, from the config alone: before any weights
        model = checked_model(config, f"{source}, sweep run {label}" if label else source)
        needs.append(processes * model_bytes(config, model, processes))
        if processes == 1:
            check_fits(needs[-1], what)
        else:
            check_fits(needs[-1], f"{what} in {processes} processes on this machine (each holds "
                       "the whole data set)", f"fewer processes on this machine, or {SMALLER}")
    at_once = min(at_once, len(needs))
    if at_once > 1:
        check_fits(sum(sorted(needs)[-at_once:]), f"{at_once} runs at once (the largest ones "
                   "together)", f"fewer at once (--jobs, sweep.jobs), or {SMALLER}")
