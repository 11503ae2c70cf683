"""Plots of a run (curves.png, bias_grads.png) and of a sweep (comparison.png); matplotlib is optional."""
import pandas as pd


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


def plot_run(folder, history, log):
    """curves.png (loss and accuracy per epoch) and bias_grads.png (|db| of each layer over steps)."""
    plt = pyplot(log)
    if plt is None or not history:
        return
    metrics = pd.DataFrame(history)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, quantity in zip(axes, ("loss", "acc")):
        for split in ("train", "val", "test"):
            column = f"{split}_{quantity}"
            if column in metrics:
                rows = metrics[["epoch", column]].dropna()
                ax.plot(rows["epoch"], rows[column], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if quantity == "acc" else "loss")
        ax.legend()
    figure.tight_layout()
    figure.savefig(folder / "curves.png", dpi=100)
    plt.close(figure)

    bias_csv = folder / "bias_grads.csv"
    if bias_csv.exists():
        bias = pd.read_csv(bias_csv)
        figure, ax = plt.subplots(figsize=(6, 4))
        for layer, rows in bias.groupby("layer", sort=False):
            ax.plot(rows["step"], rows["db_norm"], marker=".", label=layer)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("|db|")
        ax.set_title("bias gradient norm per Affine layer")
        ax.legend()
        figure.tight_layout()
        figure.savefig(folder / "bias_grads.png", dpi=100)
        plt.close(figure)
    log(f"plots: {folder / 'curves.png'}, {folder / 'bias_grads.png'}")


def plot_comparison(folder, table, log):
    """comparison.png: every run's training loss and validation (else test) accuracy per epoch."""
    plt = pyplot(log)
    if plt is None:
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for _, row in table.iterrows():
        metrics = pd.read_csv(folder / row["folder"] / "metrics.csv")
        left.plot(metrics["epoch"], metrics["train_loss"], marker="o", label=row["run"])
        accuracy = "val_acc" if "val_acc" in metrics else "test_acc"
        if accuracy in metrics:
            rows = metrics[["epoch", accuracy]].dropna()
            right.plot(rows["epoch"], rows[accuracy], marker="o", label=row["run"])
            right.set_ylabel(accuracy.replace("_acc", " accuracy"))
    left.set_yscale("log")
    left.set_ylabel("training loss")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(folder / "comparison.png", dpi=100)
    plt.close(figure)
    log(f"plot: {folder / 'comparison.png'}")
