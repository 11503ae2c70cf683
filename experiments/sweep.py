"""Sweeps: every combination of a config's `sweep.grid`, each run in its own sub-folder, then ranked.

    sweep:
      grid:                                  # key path -> values; all combinations run
        optimizer.name: [sgd, adam]
      with:                                  # settings that go with one value
        optimizer.name=adam: {optimizer.lr: 0.001}
"""
import copy
import gc
import itertools
import json
import re

import pandas as pd

from .config import ConfigError, key_path, parse_yaml, resolve, set_path
from .run import Diverged, Interrupted, pyplot, save_config, train


def combinations(config, source):
    """[(label, chosen values, resolved config)] for every grid combination, all checked up front."""
    grid, extra = config["sweep"]["grid"], config["sweep"]["with"]
    matches = []
    for key, settings in extra.items():
        path, _, text = key.partition("=")
        value = parse_yaml(text, f"{source}: sweep.with")
        if path not in grid or value not in grid[path]:
            raise ConfigError(f"{source}: sweep.with: '{key}' never happens: sweep.grid has "
                              + (f"{path}: {grid[path]}" if path in grid else f"no key '{path}' (it has {', '.join(grid)})")
                              + ".")
        matches.append((path, value, settings))

    runs = []
    for values in itertools.product(*grid.values()):
        chosen = dict(zip(grid, values))
        label = ",".join(f"{key}={value}" for key, value in chosen.items())
        settings = dict(chosen)
        for path, value, more in matches:
            if chosen[path] == value:
                settings.update(more)
        combined = copy.deepcopy(config)
        combined["sweep"] = None
        where = f"{source}: sweep combination {label}"
        for path, value in settings.items():
            set_path(combined, key_path(path), value, where)
        runs.append((label, chosen, resolve(combined, where)))
    return runs


def folder_name(label):
    """A label made safe as a folder name."""
    return re.sub(r"[^A-Za-z0-9._=,+-]+", "_", label)


def run_sweep(config, folder, log, source, resume=False):
    """Runs every combination (skipping finished ones when resuming); returns the ranked table."""
    runs = combinations(config, source)
    log(f"sweep: {len(runs)} runs: " + "; ".join(label for label, _, _ in runs))
    rows = []
    for i, (label, chosen, run_config) in enumerate(runs, 1):
        sub = folder / folder_name(label)
        log(f"\n=== sweep run {i}/{len(runs)}: {label}  ({sub})")
        if resume and (sub / "summary.json").exists():
            summary = json.loads((sub / "summary.json").read_text(encoding="utf-8"))
            log(f"already done: {summary['status']}")
        else:
            continuing = resume and (sub / "checkpoint.npz").exists()
            sub.mkdir(exist_ok=True)
            save_config(run_config, sub, f"sweep run {label} of {source}")
            log.open(sub / "log.txt")
            try:
                summary = train(run_config, sub, log, resume=continuing)
            except Diverged as e:
                log(f"diverged: {e}; the sweep goes on")
                summary = json.loads((sub / "summary.json").read_text(encoding="utf-8"))
            except Interrupted as e:
                raise Interrupted(folder, e.epoch) from None
            finally:
                log.close()
            # matplotlib's mathtext parser (pyparsing) leaves exception-traceback cycles whose
            # frames hold the finished run's data and model until a collection: collect before
            # the next run loads its own (compare_optimizers.yaml peak 836 -> 427 MB).
            gc.collect()
        rows.append({"run": label, **chosen, **summary, "folder": sub.name})
    table = rank(rows)
    table.to_csv(folder / "comparison.csv", index=False)
    log("\n" + table.drop(columns=["folder"]).to_string(index=False))
    if config["logging"]["plots"]:
        plot_comparison(folder, table, log)
    return table


def rank(rows):
    """The runs best first: by best validation accuracy when there is one, else test accuracy."""
    table = pd.DataFrame(rows)
    key = "best_val_accuracy" if table["best_val_accuracy"].notna().any() else "test_accuracy"
    table = table.sort_values(key, ascending=False, na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.drop(columns=["error"], errors="ignore")


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
