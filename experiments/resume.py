"""Continuing a run: its checkpoint back into model, optimizer and generator; logs trimmed to match."""
import csv

import framework as F

from .yamlfile import ConfigError


def restore(folder, model, optimizer, rng):
    """Loads folder/checkpoint.npz into model, optimizer and rng; returns (epoch, history)."""
    path = folder / "checkpoint.npz"
    try:
        state = F.load(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except F.CheckpointError as e:
        raise ConfigError(f"--resume {folder}: {e}.") from None
    except (KeyError, ValueError) as e:
        raise ConfigError(f"--resume {folder}: the checkpoint does not fit the configured model or "
                          f"optimizer ({e}); resume with the run's own config.yaml unchanged.") from None
    rng.bit_generator.state = state["rng"]
    return int(state["epoch"]), state["history"]


def trim_bias_csv(folder, epochs_done, columns):
    """Drops bias rows logged after the checkpoint (the interrupted epoch is trained again)."""
    path = folder / "bias_grads.csv"
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f) if int(row["epoch"]) <= epochs_done]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
