"""The pictures of a run, one function each, drawn from the run's own files (so `train.py --plots
RUN` can draw them again): curves.png and bias_grads.png after training, confusion.png and
mistakes.png with --eval, comparison.png for a sweep. matplotlib is optional.

Each draw_* function returns a matplotlib Figure; save() writes and closes it.
"""
import re
import textwrap

import numpy as np
import pandas as pd

import framework as F

from .bias_sum import plot_bias_sum

SHORT_RUN = 2  # epochs: a run this short is drawn per step, not per epoch
SPLITS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def pyplot(log):
    """matplotlib.pyplot on the file-only Agg backend, or None when not installed (logged, unless
    log is None)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if log is not None:
            log("plots skipped: matplotlib is not installed (python -m pip install -e \".[plot]\"; "
                "then python train.py --plots RUN draws them)")
        return None
    return plt


def read_csv(path):
    """A run's CSV, or None when it is missing or empty."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    return table if len(table) else None


# ---- what every picture shares

def title(figure, *lines):
    """The figure's title, each line wrapped to the figure's width (a run folder's name is
    long)."""
    columns = int(figure.get_figwidth() * 72 / (0.62 * 11))  # characters of 11-point text
    figure.suptitle("\n".join(textwrap.fill(line, columns, break_on_hyphens=False)
                              for line in lines), fontsize=11)


def whole_numbers(axis):
    """Ticks on whole numbers only (epochs, steps, classes)."""
    from matplotlib.ticker import MaxNLocator
    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # 1 epoch: the tick 1


def percent(axis):
    """Fractions shown as percentages, as the console prints accuracy."""
    from matplotlib.ticker import PercentFormatter
    axis.set_major_formatter(PercentFormatter(xmax=1, decimals=None))


def distinct_colours(n):
    """n colours, none repeated: tab10, tab20, then evenly spaced along viridis."""
    from matplotlib import colormaps
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]


def above(ax):
    """The panel's legend in one row between its title (set with pad=20) and its data, which it
    never covers."""
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1), ncol=2, fontsize="small",
              frameon=False, borderaxespad=0.2)


def save(plt, figure, path):
    """Writes the figure to `path` and closes it."""
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ---- a run: curves.png and bias_grads.png

def plot_run(folder, history, config, log):
    """curves.png, bias_grads.png and bias_sum.png of the run in `folder`, from its history
    (metrics.csv's rows), steps.csv, bias_grads.csv and bias_sum.npz; without history (a run
    that diverged in its first epoch), the bias pictures of the steps it logged."""
    plt = pyplot(log)
    if plt is None:
        return
    loss = F.LOSSES[config["loss"]]  # what its output layer's dY and bias identity are
    written = []
    if history:
        metrics, steps = pd.DataFrame(history), read_csv(folder / "steps.csv")
        save(plt, draw_curves(plt, folder.name, metrics, steps, config), folder / "curves.png")
        written.append(folder / "curves.png")
    bias = read_csv(folder / "bias_grads.csv")
    if bias is not None:
        full = bias[bias["batch_size"] == config["data"]["batch_size"]]
        if len(full):
            save(plt, draw_bias(plt, folder.name, full, loss), folder / "bias_grads.png")
            written.append(folder / "bias_grads.png")
    picture = plot_bias_sum(plt, folder, loss)
    if picture is not None:
        written.append(picture)
    if written:
        log("plots: " + ", ".join(map(str, written)))


def draw_curves(plt, name, metrics, steps, config):
    """Loss and accuracy of train, val and test: per epoch, or for a run of SHORT_RUN epochs or
    fewer, every step's training loss and batch accuracy with val and test at each epoch's
    end."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    per_step = len(metrics) <= SHORT_RUN and steps is not None
    for ax, measure, column in ((left, "loss", "loss"), (right, "accuracy", "acc")):
        if per_step and column in steps:
            ax.plot(steps["step"], steps[column], "o-", ms=2.5, lw=0.7, color=SPLITS["train"],
                    label="train (each step's batch)")
        for split, colour in SPLITS.items():
            if f"{split}_{column}" not in metrics or (per_step and split == "train"):
                continue
            rows = metrics[["epoch", "step", f"{split}_{column}"]].dropna()
            x = rows["step"] if per_step else rows["epoch"]
            ax.plot(x, rows[f"{split}_{column}"], "o" if per_step else "o-", color=colour,
                    ms=7 if per_step else 5, label=f"{split} (epoch end)" if per_step else split)
        ax.set_xlabel("step" if per_step else "epoch")
        whole_numbers(ax.xaxis)
        ax.set_ylabel(measure)
        ax.legend()
    percent(right.yaxis)
    epochs = f"{len(metrics)} epoch" + ("s" if len(metrics) != 1 else "")
    title(figure, name, f"{config['optimizer']['name']} lr {config['optimizer']['lr']:g}, "
                        f"batch {config['data']['batch_size']}, {epochs}")
    return figure


def layer_group(parameter):
    """'affine' for affine3.b, 'conv2d' for conv2d1.b: the kind of layer a bias belongs to."""
    layer = parameter.rsplit(".", 1)[0]
    return re.sub(r"\d+$", "", layer) or layer


def draw_bias(plt, name, bias, loss):
    """bias_grads.png, from bias_grads.csv's full-batch rows: on the left, a panel per kind of
    layer, each layer's |db| and |Σ_n dY_n| at the logged steps, which coincide because db is
    that sum; on the right, how closely (float32 rounding), and how closely the output layer's
    db follows the loss's own identity (and Σ_k db_k, where the identity makes it 0)."""
    groups = list(dict.fromkeys(layer_group(layer) for layer in bias["layer"]))
    figure = plt.figure(figsize=(13, max(4.5, 2.6 * len(groups))), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=[3, 2])
    axes = left.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    for ax, group in zip(axes, groups):
        draw_bias_group(ax, group, bias[[layer_group(layer) == group for layer in bias["layer"]]])
    axes[-1].set_xlabel("step")
    whole_numbers(axes[-1].xaxis)
    draw_bias_checks(right, bias, loss)
    title(figure, name, f"bias gradients at the logged steps (full batches of "
                        f"{bias['batch_size'].iloc[0]}): db = dY summed over the batch (and "
                        "positions)")
    return figure


def draw_bias_group(ax, group, layers):
    """One kind of layer: a colour of its own and one legend entry (beside the data) per layer;
    a line and dots for |db|, rings for |Σ_n dY_n|."""
    names = list(dict.fromkeys(layers["layer"]))
    for layer, colour in zip(names, distinct_colours(len(names))):
        rows = layers[layers["layer"] == layer]
        ax.plot(rows["step"], rows["db_norm"], "o-", ms=3, lw=1, color=colour, label=layer)
        ax.plot(rows["step"], rows["sum_norm"], "o", ms=9, mfc="none", mew=1, color=colour)
    ax.set_yscale("log")
    ax.set_ylabel("|db|")
    ax.set_title(f"{group} layers: |db| (line) and |Σ_n dY_n| (rings) coincide", fontsize=10)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)


def draw_bias_checks(subfigure, bias, loss):
    """The largest difference between db and the sum written out, or 1ᵀ·dY, over the layers at
    each logged step; and the output layer's difference from the loss's identity (with Σ_k db_k
    where the identity makes it 0)."""
    output = bias.dropna(subset=["db_sum"]) if "db_sum" in bias else bias.iloc[:0]
    panels = subfigure.subplots(2 if len(output) else 1, 1, sharex=True, squeeze=False)[:, 0]
    worst = bias.groupby("step")[["sum_check", "ones_check"]].max()
    checks = panels[0]
    checks.axhline(0, color="gray", lw=0.8)
    checks.plot(worst.index, worst["sum_check"], "o-", ms=4, color="tab:purple",
                label="max |db - Σ_n dY_n|")
    checks.plot(worst.index, worst["ones_check"], "s", ms=4, color="tab:brown",
                label="max |db - 1ᵀ·dY|")
    checks.set_title("the sum written out, and as 1ᵀ·dY: float32 rounding, worst layer",
                     fontsize=10, pad=20)
    above(checks)
    if len(output):
        identity = panels[1]
        identity.axhline(0, color="gray", lw=0.8)
        if loss.zero_sum:
            identity.plot(output["step"], output["db_sum"], "o-", ms=4, color="tab:blue",
                          label="Σ_k db_k: 0 up to rounding")
        rule = loss.identity.split("=", 1)[1].strip()
        identity.plot(output["step"], output["identity_check"], "s", ms=4, color="tab:orange",
                      label=f"max |db_k - ({rule})|")
        identity.set_title(f"output layer {output['layer'].iloc[0]}: {loss.identity}",
                           fontsize=10, pad=20)
        above(identity)
    panels[-1].set_xlabel("step")
    whole_numbers(panels[-1].xaxis)


# ---- --eval: confusion.png and mistakes.png

def plot_evaluation(folder, confusion, x, t, predicted, p, picture, log):
    """confusion.png, and mistakes.png for image data, of a run's test set; picture(example)
    draws one example (None: the data are not images)."""
    plt = pyplot(log)
    if plt is None:
        return
    save(plt, draw_confusion(plt, folder.name, confusion), folder / "confusion.png")
    written = [folder / "confusion.png"]
    if np.any(predicted != t) and picture(x[0]) is not None:
        save(plt, draw_mistakes(plt, folder.name, x, t, predicted, p, picture),
             folder / "mistakes.png")
        written.append(folder / "mistakes.png")
    log("plots: " + ", ".join(map(str, written)))


def draw_confusion(plt, name, confusion):
    """The test set's confusion matrix (rows: true class, columns: predicted): each cell's count,
    coloured on a log scale (the diagonal's thousands beside single mistakes), empty cells
    blank."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter
    counts = confusion.to_numpy()
    figure, ax = plt.subplots(figsize=(6.4, 6), layout="constrained")
    norm = LogNorm(vmin=0.5, vmax=max(int(counts.max()), 10))  # from 0.5: a 1 is not blank
    image = ax.imshow(np.ma.masked_equal(counts, 0), cmap="Blues", norm=norm)
    for (i, j), count in np.ndenumerate(counts):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if norm(count) > 0.6 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_xticks(range(counts.shape[1]), confusion.columns)
    ax.set_yticks(range(counts.shape[0]), confusion.index)
    bar = figure.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("test examples (log scale)")
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    accuracy = np.trace(counts) / counts.sum()
    title(figure, name, f"test confusion: {accuracy:.2%} of {counts.sum():,} right")
    return figure


def draw_mistakes(plt, name, x, t, predicted, p, picture):
    """The 16 (at most) wrong predictions made most confidently, each with what it is and what
    the model said."""
    wrong = np.flatnonzero(predicted != t)
    worst = wrong[np.argsort(-p[wrong, predicted[wrong]])][:16]
    figure, axes = plt.subplots(4, 4, figsize=(7, 8), layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), worst):
        ax.imshow(picture(x[i]), cmap="gray_r")  # colour pictures ignore cmap
        ax.set_title(f"true {t[i]}, said {predicted[i]}\n({p[i, predicted[i]]:.0%} sure)",
                     fontsize=8)
    title(figure, name, "the most confidently wrong test examples")
    return figure


# ---- a sweep: comparison.png

def plot_comparison(folder, table, labels, log):
    """comparison.png: each run's training loss (per step when steps.csv has it, else per epoch)
    and validation (else test) accuracy; `labels` names each run by the settings that differ."""
    plt = pyplot(log)
    if plt is None:
        return
    save(plt, draw_comparison(plt, folder, table, labels), folder / "comparison.png")
    log(f"plot: {folder / 'comparison.png'}")


def draw_comparison(plt, folder, table, labels):
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    colours = distinct_colours(len(table))
    for (_, row), label, colour in zip(table.iterrows(), labels, colours):
        metrics = read_csv(folder / row["folder"] / "metrics.csv")
        steps = read_csv(folder / row["folder"] / "steps.csv")
        if steps is not None:
            # the book smooths its curves too
            smooth = steps["loss"].rolling(20, min_periods=1).mean()
            left.plot(steps["step"], smooth, lw=1, color=colour, label=label)
            left.set_xlabel("step (loss: mean of the last 20 steps)")
        elif metrics is not None:
            left.plot(metrics["step"], metrics["train_loss"], "o-", color=colour, label=label)
            left.set_xlabel("step")
        accuracy = "val_acc" if metrics is not None and "val_acc" in metrics else "test_acc"
        if metrics is not None and accuracy in metrics:
            rows = metrics[["epoch", accuracy]].dropna()
            right.plot(rows["epoch"], rows[accuracy], "o-", color=colour, label=label)
            right.set_ylabel(accuracy.replace("_acc", " accuracy"))
    left.set_yscale("log")
    left.set_ylabel("training loss")
    right.set_xlabel("epoch")
    whole_numbers(left.xaxis)
    whole_numbers(right.xaxis)
    percent(right.yaxis)
    for ax in (left, right):
        ax.legend(fontsize="small")
    title(figure, folder.name, f"{len(table)} runs")
    return figure
