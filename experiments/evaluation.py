"""`train.py --eval RUN_DIR`: a trained run's model on the test set: accuracy, per class, confusion
matrix, and (with matplotlib) confusion.png and mistakes.png, the most confidently wrong examples
(for a dataset of images)."""
import os

import numpy as np
import pandas as pd

import framework as F
from datasets import DATASETS
from framework.checks import REQUIRED, settings

from .build import load_data
from .config import dataset, parse_override, resolve, shorten
from .memory import check_fits, data_bytes
from .plots import plot_evaluation
from .yamlfile import ConfigError


def chosen_checkpoint(folder, flag):
    """The checkpoint `flag` (--eval, --predict) names: a file as given (anything but a folder:
    load says what else it is), or a run folder's best.npz, else its checkpoint.npz. A sweep's
    folder is refused, naming one of its runs, and so is a folder holding neither."""
    if not folder.is_dir():
        return folder
    runs = sorted(sub.name for sub in folder.glob("*/") if (sub / "checkpoint.npz").exists())
    if runs and not (folder / "checkpoint.npz").exists():
        raise ConfigError(f"{flag} {folder}: a sweep's folder; use one of its runs, e.g. "
                          f"{flag} {folder / runs[0]}")
    path = folder / "best.npz" if (folder / "best.npz").exists() else folder / "checkpoint.npz"
    if not os.path.lexists(path):
        raise ConfigError(f"{flag} {folder}: a folder holding neither best.npz nor "
                          "checkpoint.npz; name a run's folder or a checkpoint file.")
    return path


def evaluate_run(folder, data_dir, log, overrides=()):
    """Evaluates a run folder's best.npz (else checkpoint.npz), or the checkpoint file named, on
    the test set of the data it was trained on; returns 0.

    Nothing in the file reaches outside it: the data come from the user's own places (data_dir
    and --set data.<location>=..., e.g. data.path for a dataset of one's own file, else the
    dataset's defaults: $MNIST_DIR or the user's cache, $MNIST_MIRRORS or the built-in mirrors),
    never from a folder, mirror or file the config inside names; that config is checked like any
    config."""
    path = chosen_checkpoint(folder, "--eval")
    folder = path.parent
    try:
        state = F.load(path)
    except F.CheckpointError as e:
        raise ConfigError(f"--eval {folder}: {e}.") from None
    config = users_data(state.get("config"), data_dir, overrides)
    if config is None:
        raise ConfigError(f"--eval {folder}: {path.name} does not say which data it was trained on "
                          "(no config inside); was it written by train.py?")
    config = resolve(config, f"--eval {path}: the config inside")
    # Before the model is made: the data, and the weights as read, as made, and their gradients
    check_fits(data_bytes(config["data"]) + 3 * sum(a.nbytes for a in state["model"].values()),
               f"--eval {path}", "a machine with more memory")
    try:
        model = F.load_model(path, state)
    except F.CheckpointError as e:
        raise ConfigError(f"--eval {folder}: {e}.") from None
    check_fits_data(model, config["data"], path)
    data = load_data(config, np.random.default_rng(config["training"]["seed"]), log=log)
    if data.test is None:
        raise ConfigError(f"--eval {folder}: {config['data']['dataset']} has no test set to "
                          "evaluate on; the run's validation accuracy is in its metrics.csv.")
    x, t = data.test
    p = model.predict_proba(x)
    predicted = p.argmax(axis=1)
    which = "best validation accuracy" if path.name == "best.npz" else "last"
    epoch = state.get("epoch")
    epoch = f"epoch {epoch}, " if isinstance(epoch, int) and not isinstance(epoch, bool) else ""
    log(f"{path} ({epoch}the {which} checkpoint) on {len(t):,} test examples")
    log(f"accuracy {np.mean(predicted == t):.2%}")
    classes = np.arange(p.shape[1])
    per_class = pd.DataFrame({"class": classes, "examples": np.bincount(t, minlength=len(classes)),
                              "accuracy": [np.mean(predicted[t == k] == k) if np.any(t == k)
                                           else np.nan for k in classes]})
    log("per class:\n" + per_class.to_string(index=False, float_format=lambda v: f"{v:.2%}"))
    confusion = pd.crosstab(pd.Series(t, name="true"), pd.Series(predicted, name="predicted"))
    confusion = confusion.reindex(index=classes, columns=classes, fill_value=0)
    log("confusion matrix (rows: true class, columns: predicted):\n" + confusion.to_string())
    plot_evaluation(folder, confusion, x, t, predicted, p, dataset(config["data"]).picture, log)
    return 0


def users_data(config, data_dir, overrides):
    """A checkpoint's config (None if it has none) with the places its dataset's data are read
    from (the entry's locations: data.dir, data.mirrors, data.path) the user's: data_dir and the
    --set overrides of locations, else the defaults. Done before the config is resolved, which
    makes the dataset's entry (and may read a file it names)."""
    if not isinstance(config, dict):
        return None
    data = config.get("data")
    name = data.get("dataset") if isinstance(data, dict) else None
    entry = DATASETS.get(name) if isinstance(name, str) else None
    if entry is None:
        if overrides:
            raise ConfigError(f"--eval: --set {overrides[0]}: the config inside names no dataset "
                              "whose data --set could place.")
        return config
    places = {"dir": data_dir} if data_dir and "dir" in entry.locations else {}
    for text in overrides:
        key, value = parse_override(text)
        if len(key) != 2 or key[0] != "data" or key[1] not in entry.locations:
            allowed = ", ".join(f"data.{k}" for k in entry.locations) or "none, for this dataset"
            raise ConfigError(f"--eval: --set {shorten(text)}: with --eval, --set says only where "
                              f"the data are ({allowed}); the rest is the checkpoint's.")
        places[key[1]] = value
    needed = [key for key in entry.locations
              if settings(entry)[key][0] is REQUIRED and key not in places]
    if needed:
        raise ConfigError(f"--eval: the {name} data are read from data.{needed[0]}, which --eval "
                          f"never takes from a checkpoint (it could name any file): give yours, "
                          f"--set data.{needed[0]}=...")
    config["data"] = {**{k: v for k, v in data.items() if k not in entry.locations}, **places}
    return config


def check_fits_data(model, data, path):
    """Refuses (ConfigError) a model that does not take the examples of the data its config names,
    or does not give one output per class."""
    entry = dataset(data)
    try:
        out = model.output_shapes(entry.example_shape)[-1]
        problem = None if out == (entry.classes,) else f"its output per example is {out}"
    except ValueError as e:
        problem = str(e)
    if problem:
        raise ConfigError(f"--eval {path}: the model does not fit the data its config names "
                          f"({data['dataset']}: examples of shape {entry.example_shape}, "
                          f"{entry.classes} classes): {problem}.")
