"""`train.py --predict RUN_OR_CHECKPOINT IMAGE...`: a trained model on a person's own digits.

Each image is read (PNG, JPEG, a .npy array, or `-`: a .npy array on stdin) and made to look
like an MNIST digit (datasets.images.mnist_like); every image is read and checked before the
first prediction. With --show, a picture of each input beside what the model saw and its
probabilities goes into --out DIR or the current folder, never into a run's folder.
"""
import sys
from pathlib import Path

import numpy as np

import framework as F
from datasets import DATASETS
from datasets.images import MAX_PIXELS, ImageError, from_bytes, mnist_like, read_image

from .evaluation import chosen_checkpoint
from .plots import pyplot
from .yamlfile import ConfigError

TOP = 3  # probabilities printed per image
MNIST_SIDE = 28
DIGIT_SHAPES = ((MNIST_SIDE * MNIST_SIDE,), (MNIST_SIDE, MNIST_SIDE), (1, MNIST_SIDE, MNIST_SIDE))


def predict_images(given, images, show, out, log):
    """Prints the predicted class and the TOP probabilities of each image; returns 0."""
    path = chosen_checkpoint(given, "--predict")
    try:
        state = F.load(path)
        model = F.load_model(path, state)
    except F.CheckpointError as e:
        raise ConfigError(f"--predict {given}: {e}.") from None
    shape = model_input(model, state, given)
    plt = pyplot(log) if show else None
    if show and plt is None:
        raise ConfigError("--show draws with matplotlib: python -m pip install -e \".[plot]\"")
    folder = show_folder(out) if show else None
    inputs = []
    for name in images:
        try:
            grey = stdin_image() if name == "-" else read_image(Path(name).expanduser(), name)
            inputs.append((name, grey, mnist_like(grey, name)))
        except ImageError as e:
            raise ConfigError(str(e)) from None
    which = f", epoch {state['epoch']}" if "epoch" in state else ""
    log(f"model: {path}{which}")
    written = set()
    for name, grey, seen in inputs:
        try:
            p = model.predict_proba(seen.reshape((1,) + shape))[0]
        except ValueError as e:  # a model saved without its input shape, guessed wrong
            raise ConfigError(f"--predict {given}: the model does not take a 28x28 digit: {e}") \
                from None
        top = np.argsort(-p, kind="stable")[:TOP]
        log(f"{name}: {top[0]}  (" + ", ".join(f"{k}: {p[k]:.1%}" for k in top) + ")",
            always=True)
        if show:
            picture = unique(folder / f"{'stdin' if name == '-' else Path(name).stem}-seen.png",
                             written)
            draw(plt, picture, name, grey, seen, p)
            log(f"    picture: {picture}")
    return 0


def model_input(model, state, given):
    """The shape of one example the model takes, refused unless it is a 28x28 image trained on
    digits (mnist_like makes digits as MNIST's were made)."""
    first = model.layers[0]
    shape = model.input_shape or ((first.in_features,) if hasattr(first, "in_features") else
                                  (getattr(first, "in_channels", 1), MNIST_SIDE, MNIST_SIDE))
    if tuple(shape) not in DIGIT_SHAPES:
        raise ConfigError(f"--predict {given}: this model takes examples of shape "
                          f"{tuple(shape)}, not 28x28 greyscale images")
    config = state.get("config")
    dataset = config.get("data", {}).get("dataset") if isinstance(config, dict) else None
    if dataset is not None and getattr(DATASETS.get(dataset), "photo", None) is not mnist_like:
        raise ConfigError(f"--predict {given}: this model was trained on {dataset}; --predict "
                          "prepares images as MNIST's digits were made, so its answers would "
                          "mean nothing")
    return tuple(shape)


def stdin_image():
    """A .npy array from stdin, at most the bytes of MAX_PIXELS float64 pixels (plus header)."""
    limit = MAX_PIXELS * 8 + 4096
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"-: more than {limit:,} bytes on stdin; a .npy image is at most "
                         f"{MAX_PIXELS:,} pixels")
    if not data:
        raise ImageError("-: nothing on stdin; pipe a .npy array in, e.g. "
                         "python -c \"...; np.save(sys.stdout.buffer, image)\" | python train.py "
                         "--predict RUN -")
    return from_bytes(data, "-")


def show_folder(out):
    """Where --show writes: --out DIR (made if needed) or the current folder, never a run's."""
    folder = Path(out).expanduser() if out else Path(".")
    if any((folder / name).exists() for name in ("config.yaml", "checkpoint.npz", ".lock")):
        raise ConfigError(f"--show: {folder.resolve()} is a run's folder, which only its run "
                          "writes; give another with --out DIR")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def unique(path, taken):
    """path, or path with -2, -3 ... when an earlier image of this command took the name."""
    candidate, n = path, 1
    while candidate in taken:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    taken.add(candidate)
    return candidate


def draw(plt, path, name, grey, seen, p):
    """The image as read, the 28x28 the model saw (white on black, as MNIST), and the
    probabilities."""
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(10, 3.4),
                                                 gridspec_kw={"width_ratios": [1, 1, 1.3]})
    left.imshow(grey, cmap="gray", vmin=0, vmax=1)
    left.set_title(f"{name} ({grey.shape[1]}x{grey.shape[0]})", fontsize=9)
    middle.imshow(seen, cmap="gray", vmin=0, vmax=1)
    middle.set_title("what the model saw (28x28)", fontsize=9)
    for ax in (left, middle):
        ax.set_xticks([])
        ax.set_yticks([])
    k = int(p.argmax())
    right.bar(range(len(p)), 100 * p, color=["C1" if c == k else "C0" for c in range(len(p))])
    right.set_xticks(range(len(p)))
    right.set_ylim(0, 100)
    right.set_xlabel("class")
    right.set_ylabel("probability (%)")
    right.set_title(f"predicted {k} ({p[k]:.1%})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
