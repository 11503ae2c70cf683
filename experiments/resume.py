"""Continuing a run: its checkpoint back into model, optimizer and generator, every part checked;
logs trimmed back to match; a changed config refused."""
import csv
import io
import json

import framework as F
from datasets import DATASETS
from framework.checks import is_number
from framework.comm import LOCAL
from framework.files import atomic_write

from .config import default_at
from .yamlfile import ConfigError


def may_change():
    """What may differ between the run's checkpoint and the config it resumes with: where data
    (each registered dataset's locations: data.dir, ...) and output live, and what is logged.
    Anything else (model, optimizer, data split, the plan of epochs and schedule, the seed) would
    make the resumed run a different run."""
    return ("logging", *dict.fromkeys(f"data.{key}" for cls in DATASETS.values()
                                      for key in cls.locations))


# What every epoch's record in a checkpoint's history holds (framework.fit writes them).
HISTORY_KEYS = ("epoch", "step", "lr", "train_loss", "seconds")


def differences(saved, current, path=()):
    """["optimizer.name: adam -> sgd", ...] between two resolved configs, except may_change()."""
    key = ".".join(map(str, path))
    if any(key == allowed or key.startswith(allowed + ".") for allowed in may_change()):
        return []
    if isinstance(saved, dict) and isinstance(current, dict):
        # A setting added since the run was made is, at its default, what that run did.
        return [line for k in {**saved, **current}
                if k in saved or current[k] != default_at(path + (k,))
                for line in differences(saved.get(k), current.get(k), path + (k,))]
    return [] if saved == current else [f"{key}: {saved!r} -> {current!r}"]


def checked_state(folder, config, processes=1, model=None):
    """folder/checkpoint.npz read and checked against `config` (members, config, epoch, history),
    against the number of processes that resume it (as many as trained it) and, when given,
    against the model `config` makes (its arrays' names and shapes).

    The CLI calls this before any data is loaded, so that a changed config.yaml (even one cut
    down to a few bytes, which reads as all defaults, the dataset included) is refused at once
    rather than after a download."""
    path = folder / "checkpoint.npz"
    where = f"--resume {folder}"
    try:
        state = F.load(path)
    except F.CheckpointError as e:
        raise ConfigError(f"{where}: {e}.") from None
    missing = [k for k in ("architecture", "model", "optimizer", "epoch", "history", "rng",
                           "config")
               if k not in state]
    if missing:
        raise ConfigError(f"{where}: {path} lacks {', '.join(missing)}: it is not a checkpoint of "
                          "a train.py run (or of an older version); start a new run.")
    # tuples as JSON has them
    changed = differences(state["config"], json.loads(json.dumps(config)))
    if changed:
        raise ConfigError(f"{where}: config.yaml (or --set) differs from the config this run was "
                          f"trained with: {'; '.join(changed)}. Resuming would not continue that "
                          "run: undo the change, or start a new run.")
    epoch, history = state["epoch"], state["history"]
    epochs = config["training"]["epochs"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= epochs:
        raise ConfigError(f"{where}: the checkpoint's epoch {epoch!r} is not in [0, {epochs}].")
    if (not isinstance(history, list) or len(history) != epoch
            or [r.get("epoch") if isinstance(r, dict) else None for r in history]
            != list(range(1, epoch + 1))):
        raise ConfigError(f"{where}: the checkpoint's history does not list epochs 1 to {epoch}.")
    for record in history:  # what metrics.csv and summary.json are made from, after training
        bad = [k for k in HISTORY_KEYS if k not in record]
        bad += [k for k, v in record.items() if not is_number(v)]
        if bad:
            raise ConfigError(f"{where}: the checkpoint's history of epoch {record['epoch']}: "
                              f"'{bad[0]}' is missing or not a number.")
    trained_by = state.get("processes", 1)  # a checkpoint from before data parallelism: one
    if not isinstance(trained_by, int) or isinstance(trained_by, bool) or trained_by < 1:
        raise ConfigError(f"{where}: the checkpoint's number of processes {trained_by!r} is not "
                          "a whole number of at least 1.")
    if trained_by != processes:
        how = f"mpiexec -n {trained_by} " if trained_by != 1 else ""
        raise ConfigError(f"{where}: this run was trained by {trained_by} process"
                          f"{'es' if trained_by != 1 else ''} and would be resumed by {processes}: "
                          "each process draws its own dropout masks and adds its own rows of "
                          "every batch, so another number would not continue the same run. "
                          f"Resume it as it ran{', without mpiexec' if not how else ''}:\n"
                          f"    {how}python train.py --resume {folder}")
    seconds = state.get("wall_seconds", 0.0)
    if not is_number(seconds) or not 0 <= seconds < 1e12:
        raise ConfigError(f"{where}: the checkpoint's wall_seconds {seconds!r} is not a number of "
                          "seconds.")
    if model is not None:
        try:
            model.check_state_dict(state["model"])
        except (KeyError, ValueError) as e:
            raise ConfigError(f"{where}: {path}'s model does not fit the configured one ({e}); "
                              "is it another run's checkpoint?") from None
    return state


def restore(folder, model, optimizer, rng, config, comm=LOCAL, own=None):
    """Loads folder/checkpoint.npz into model, optimizer and rng (and, in a run over processes,
    this process's own generator `own` from the states saved in rank order), each part checked
    first; returns (epoch, history). Anything that does not fit is a ConfigError saying what."""
    state = checked_state(folder, config, comm.size)
    where, epoch, history = f"--resume {folder}", state["epoch"], state["history"]
    kind = type(rng.bit_generator).__name__
    generators = {"rng": (rng, state["rng"])}
    if own is not None:
        saved = state.get("process_rngs")
        generators["process_rngs"] = (own, saved[comm.rank] if isinstance(saved, list)
                                      and len(saved) == comm.size else None)
    for name, (_, saved) in generators.items():
        if not isinstance(saved, dict) or saved.get("bit_generator") != kind:
            raise ConfigError(f"{where}: the checkpoint's generator state is not a {kind} "
                              f"state ({name}).")
    # The config states the optimizer's settings; the file's must be the same (the learning rate
    # aside: the schedule sets it every step).
    configured = {name: getattr(optimizer, name) for name in optimizer.hyper if name != "lr"}
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for generator, saved in generators.values():
            generator.bit_generator.state = saved
    except (KeyError, ValueError, TypeError, OverflowError) as e:  # numpy: a state beyond uint64
        raise ConfigError(f"{where}: the checkpoint does not fit the configured model or optimizer "
                          f"({e}).") from None
    changed = [f"optimizer/{name} is {getattr(optimizer, name)!r} in the file, {value!r} in the "
               "config" for name, value in configured.items() if getattr(optimizer, name) != value]
    if changed:
        raise ConfigError(f"{where}: {'; '.join(changed)}: the checkpoint is not of this run.")
    return epoch, history


def trim_csv(path, epochs_done, columns):
    """Keeps a log CSV's complete rows of epochs 1..epochs_done (bias_grads.csv, steps.csv): rows
    logged after the checkpoint are trained again, and a row torn by a kill mid-write is dropped."""
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # the torn last line
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        if None in row or None in row.values() or not str(row.get("epoch", "")).isdigit():
            continue
        if int(row["epoch"]) <= epochs_done:
            rows.append(row)
    with atomic_write(path, "w", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
