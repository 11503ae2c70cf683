"""Checkpoints: model, optimizer state and extras in one .npz, written atomically, read without
pickle."""
import json
import zipfile

import numpy as np

from .files import atomic_write
from .layers import LAYERS
from .sequential import Sequential


class CheckpointError(Exception):
    """A checkpoint file that is missing, truncated or not one of ours."""


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
    """Reads a checkpoint: {"model": state, "optimizer": state or absent, extras...}."""
    out = {"model": {}}
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):  # a .npy file holds one array, not members
            raise CheckpointError(f"{path}: holds a single array (a .npy file), not a checkpoint")
        with f:
            for key in f.files:
                group, name = key.split("/", 1)
                value = f[key]  # reads (and CRC-checks) the member now, inside the try
                if group in ("model", "optimizer"):
                    out.setdefault(group, {})[name] = value
                elif group == "json":
                    out[name] = json.loads(value.item())
                else:
                    out[name] = value.item() if value.ndim == 0 else value
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: a folder; a checkpoint is a file in it, such as best.npz "
                              "or "
                              "checkpoint.npz") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: not a complete checkpoint ({type(e).__name__}: {e}); "
                              "the file may be truncated or damaged") from None
    return out


def load_model(path):
    """The model saved in a checkpoint, rebuilt from its architecture with the saved weights and
    buffers, ready for predict (eval mode is predict's and evaluate's own)."""
    state = load(path)
    if not isinstance(state.get("architecture"), list):
        raise CheckpointError(f"{path}: holds no model architecture (saved by an older version?)")
    built = []
    for spec in state["architecture"]:
        if spec.get("kind") not in LAYERS:
            raise CheckpointError(unregistered(path, spec))
        cls, args = LAYERS[spec["kind"]], dict(spec["arguments"])
        if spec["dtype"] is not None:
            args["dtype"] = np.dtype(spec["dtype"])
        layer = cls(**args)
        layer.name = spec["name"]
        built.append(layer)
    model = Sequential(built, input_shape=state.get("input_shape"))
    model.load_state_dict(state["model"])
    return model


def unregistered(path, spec):
    """What to do about a layer kind the checkpoint names and no registered class has."""
    kind, module = spec.get("kind"), spec.get("module")
    saved_from = f", saved from a class in module {module!r}" if isinstance(module, str) else ""
    return (f"{path}: layer kind {kind!r} is not registered{saved_from}. Registered: "
            f"{', '.join(LAYERS)}. A layer of your own is registered by decorating its class "
            "with @framework.register_layer; import the module that defines it before "
            "load_model")
