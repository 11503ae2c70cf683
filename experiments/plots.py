"""Plots of a run (curves.png, bias_grads.png) and of a sweep (comparison.png); matplotlib is
optional."""
import pandas as pd

from .bias_sum import plot_bias_sum

SHORT_RUN = 2  # epochs: a run this short is drawn per step, not per epoch


def pyplot(log):
    """matplotlib.pyplot on the file-only Agg backend, or None (logged) when not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("plots skipped: matplotlib is not installed (python -m pip install -e \".[plot]\")")
        return None
    return plt


def read_csv(path):
    """A run's CSV, or None when it is missing or empty."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    return table if len(table) else None


def plot_run(folder, history, config, log):
    """curves.png (loss and accuracy; per step for short runs) and bias_grads.png (what the bias
    log checks: db against the explicit sum of dY, and the output layer's Σ_k db_k = 0)."""
    plt = pyplot(log)
    if plt is None or not history:
        return
    metrics, steps = pd.DataFrame(history), read_csv(folder / "steps.csv")
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if len(metrics) <= SHORT_RUN and steps is not None:
        left.plot(steps["step"], steps["loss"], lw=0.8, label="train (each step)")
        left.set_xlabel("step")
        for split in ("val", "test"):
            if f"{split}_loss" in metrics:
                rows = metrics[["step", f"{split}_loss"]].dropna()
                left.plot(rows["step"], rows[f"{split}_loss"], "o", label=f"{split} (epoch end)")
    else:
        for split in ("train", "val", "test"):
            if f"{split}_loss" in metrics:
                rows = metrics[["epoch", f"{split}_loss"]].dropna()
                left.plot(rows["epoch"], rows[f"{split}_loss"], marker="o", label=split)
        left.set_xlabel("epoch")
    for split in ("train", "val", "test"):
        if f"{split}_acc" in metrics:
            rows = metrics[["epoch", f"{split}_acc"]].dropna()
            right.plot(rows["epoch"], rows[f"{split}_acc"], marker="o", label=split)
    right.set_xlabel("epoch")
    left.set_ylabel("loss")
    right.set_ylabel("accuracy")
    left.legend()
    right.legend()
    figure.suptitle(f"{folder.name}: {config['optimizer']['name']} "
                    f"lr {config['optimizer']['lr']:g}, batch {config['data']['batch_size']}")
    figure.tight_layout()
    figure.savefig(folder / "curves.png", dpi=100)
    plt.close(figure)
    written = [folder / "curves.png"]
    bias = read_csv(folder / "bias_grads.csv")
    if bias is not None:
        plot_bias(plt, folder, bias[bias["batch_size"] == config["data"]["batch_size"]])
        written.append(folder / "bias_grads.png")
    picture = plot_bias_sum(plt, folder)
    if picture is not None:
        written.append(picture)
    log("plots: " + ", ".join(map(str, written)))


def plot_bias(plt, folder, bias):
    """bias_grads.png: per layer, |db| (line) and |Σ_n dY_n| (dots) over the logged steps, which
    coincide because db is that sum; and the output layer's Σ_k db_k, which is 0 up to rounding."""
    output = bias.dropna(subset=["db_sum"]) if "db_sum" in bias else bias.iloc[:0]
    figure, axes = plt.subplots(1, 2 if len(output) else 1, figsize=(11 if len(output) else 6, 4),
                                squeeze=False)
    ax = axes[0, 0]
    for layer, rows in bias.groupby("layer", sort=False):
        line, = ax.plot(rows["step"], rows["db_norm"], label=f"{layer}: |db|")
        ax.plot(rows["step"], rows["sum_norm"], "o", ms=4, color=line.get_color(),
                label="|Σ_n dY_n|")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("db is the sum of dY over the batch: line and dots coincide", fontsize=10)
    ax.legend(fontsize="x-small", ncol=2)
    if len(output):
        ax = axes[0, 1]
        ax.axhline(0, color="gray", lw=0.8)
        ax.plot(output["step"], output["db_sum"], "o-", label="Σ_k db_k")
        ax.plot(output["step"], output["identity_check"], "s", ms=3,
                label="max |db_k - (mean p_k - frac_k)|")
        ax.set_xlabel("step")
        ax.set_title(f"output layer {output['layer'].iloc[0]}: Σ_k db_k = 0 (up to rounding)",
                     fontsize=10)
        ax.legend(fontsize="small")
    figure.suptitle(f"{folder.name}: bias gradients on full batches")
    figure.tight_layout()
    figure.savefig(folder / "bias_grads.png", dpi=100)
    plt.close(figure)


def plot_comparison(folder, table, labels, log):
    """comparison.png: each run's training loss (per step when steps.csv has it, else per epoch)
    and validation (else test) accuracy; `labels` names each run by the settings that differ."""
    plt = pyplot(log)
    if plt is None:
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (_, row), label in zip(table.iterrows(), labels):
        metrics = read_csv(folder / row["folder"] / "metrics.csv")
        steps = read_csv(folder / row["folder"] / "steps.csv")
        if steps is not None:
            # the book smooths its curves too
            smooth = steps["loss"].rolling(20, min_periods=1).mean()
            left.plot(steps["step"], smooth, lw=1, label=label)
            left.set_xlabel("step (loss: mean of the last 20 steps)")
        elif metrics is not None:
            left.plot(metrics["step"], metrics["train_loss"], marker="o", label=label)
            left.set_xlabel("step")
        accuracy = "val_acc" if metrics is not None and "val_acc" in metrics else "test_acc"
        if metrics is not None and accuracy in metrics:
            rows = metrics[["epoch", accuracy]].dropna()
            right.plot(rows["epoch"], rows[accuracy], marker="o", label=label)
            right.set_ylabel(accuracy.replace("_acc", " accuracy"))
    left.set_yscale("log")
    left.set_ylabel("training loss")
    right.set_xlabel("epoch")
    for ax in (left, right):
        ax.legend(fontsize="small")
    figure.suptitle(f"{folder.name}: {len(table)} runs")
    figure.tight_layout()
    figure.savefig(folder / "comparison.png", dpi=100)
    plt.close(figure)
    log(f"plot: {folder / 'comparison.png'}")
