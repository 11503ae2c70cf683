"""`train.py --eval RUN_DIR`: a trained run's model on the test set: accuracy, per class, confusion
matrix, and (with matplotlib) confusion.png and mistakes.png, the most confidently wrong examples
(for a dataset of images)."""
import os
from pathlib import Path

import numpy as np
import pandas as pd

import framework as F
from datasets import DATASETS
from framework.checks import REQUIRED, settings

from .build import load_data
from .config import dataset, parse_override, resolve, shorten
from .folder import held
from .memory import check_fits, data_bytes
from .plots import plot_evaluation
from .yamlfile import ConfigError

# The first bytes of the pictures people give --eval or --predict by mistake for a checkpoint.
IMAGES = {b"\x89PNG\r\n\x1a\n": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
          b"GIF8": "a GIF image", b"BM": "a BMP image"}


def mistaken_for_checkpoint(path):
    """"a YAML file" or "a PNG image" (...) for a file people give for a checkpoint by mistake,
    from its name or first bytes; None for any other (load says what else it is)."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return "a YAML file"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    return next((kind for magic, kind in IMAGES.items() if head.startswith(magic)), None)


def chosen_checkpoint(given, flag):
    """The checkpoint `flag` (--eval, --predict) names by `given`, as typed: a file (anything but
    a folder: load says what else it is), or a run folder's best.npz, else its checkpoint.npz.
    A config or an image is refused, saying what it is and what to type instead; so are a
    sweep's folder, naming one of its runs, and a folder holding neither."""
    path = Path(given).expanduser()
    where = f"{flag} {given}"
    if not os.path.lexists(path):
        raise ConfigError(f"{where}: no such file or folder.")
    if not path.is_dir():
        what = mistaken_for_checkpoint(path) if path.is_file() else None
        if what == "a YAML file":
            raise ConfigError(f"{where}: a YAML file: that is a config, not a trained model. "
                              f"Train it with:\n    python train.py {given}")
        if what is not None:
            use = ("The images come after the run" if flag == "--predict"
                   else "To classify it, use --predict")
            raise ConfigError(f"{where}: {what}, not a trained model. {use}:\n"
                              f"    python train.py --predict RUN {given}")
        return path
    runs = sorted(sub.name for sub in path.glob("*/") if (sub / "checkpoint.npz").exists())
    if runs and not (path / "checkpoint.npz").exists():
        raise ConfigError(f"{where}: a sweep's folder; use one of its runs, e.g. "
                          f"{flag} {path / runs[0]}")
    chosen = path / "best.npz" if (path / "best.npz").exists() else path / "checkpoint.npz"
    if not os.path.lexists(chosen):
        raise ConfigError(f"{where}: a folder holding neither best.npz nor checkpoint.npz; name "
                          "a run's folder or a checkpoint file.")
    return chosen


def evaluate_run(given, data_dir, log, overrides=()):
    """Evaluates a run folder's best.npz (else checkpoint.npz), or the checkpoint file named, on
    the test set of the data it was trained on; returns 0. A run still training is refused: its
    checkpoint holds only the epochs done so far, and its folder is the run's to write."""
    path = chosen_checkpoint(given, "--eval")
    refusal = (lambda holder: f"--eval {given}: this run is still training (process {holder} "
               "writes to its folder), and its checkpoint holds only the epochs done so far; "
               "evaluate it once the run has ended.")
    with held(path.parent, refusal):
        evaluate(path, given, data_dir, log, overrides)
    return 0


def evaluate(path, given, data_dir, log, overrides):
    """The checkpoint at `path` on its test set.

    Nothing in the file reaches outside it: the data come from the user's own places (data_dir
    and --set data.<location>=..., e.g. data.path for a dataset of one's own file, else the
    dataset's defaults: $MNIST_DIR or the user's cache, $MNIST_MIRRORS or the built-in mirrors),
    never from a folder, mirror or file the config inside names; that config is checked like any
    config."""
    folder = path.parent
    try:
        state = F.load(path)
    except F.CheckpointError as e:
        raise ConfigError(f"--eval {given}: {e}.") from None
    config = users_data(state.get("config"), data_dir, overrides)
    if config is None:
        raise ConfigError(f"--eval {given}: {path.name} does not say which data it was trained "
                          "on (no config inside); was it written by train.py?")
    config = resolve(config, f"--eval {path}: the config inside")
    # Before the model is made: the data, and the weights as read, as made, and their gradients
    check_fits(data_bytes(config["data"]) + 3 * sum(a.nbytes for a in state["model"].values()),
               f"--eval {path}", "a machine with more memory")
    try:
        model = F.load_model(path, state)
    except F.CheckpointError as e:
        raise ConfigError(f"--eval {given}: {e}.") from None
    check_fits_data(model, config["data"], path)
    data = load_data(config, np.random.default_rng(config["training"]["seed"]), log=log)
    if data.test is None:
        raise ConfigError(f"--eval {given}: {config['data']['dataset']} has no test set to "
                          "evaluate on; the run's validation accuracy is in its metrics.csv.")
    x, t = data.test
    try:
        p = model.predict_proba(x)
    except ValueError as e:  # outputs that are not finite: weights that overflow on these data
        raise ConfigError(f"--eval {given}: {e}.") from None
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
    if data_dir and "dir" not in entry.locations:  # as training refuses it
        raise ConfigError(f"--eval: --data-dir {data_dir}: the {name} data are not read from a "
                          "folder" + (f"; give data.{entry.locations[0]} with --set"
                                      if entry.locations else ""))
    places = {"dir": data_dir} if data_dir else {}
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
