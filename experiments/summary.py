"""What a run amounts to: summary.json, and the figures sweep tables compare."""
import json
import math

from framework.files import atomic_write


def last(history, key):
    """The latest value of `key` in the history (None when never measured)."""
    return next((r[key] for r in reversed(history) if key in r and not math.isnan(r[key])), None)


def summarize(history, status):
    """The figures of a run that summary.json and sweep tables report."""
    summary = {"status": status, "epochs": len(history), "test_accuracy": last(history, "test_acc"),
               "final_train_loss": last(history, "train_loss"), "best_val_accuracy": None,
               "best_val_epoch": None, "test_accuracy_at_best_val": None,
               "train_seconds": round(sum(r["seconds"] for r in history), 3)}
    evaluated = [r for r in history if "val_acc" in r]
    if evaluated:
        best = max(evaluated, key=lambda r: r["val_acc"])  # max keeps the first of equals
        summary.update(best_val_accuracy=best["val_acc"], best_val_epoch=best["epoch"],
                       test_accuracy_at_best_val=best.get("test_acc"))
    return summary


def write_summary(folder, summary):
    """folder/summary.json, written atomically."""
    with atomic_write(folder / "summary.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(summary, indent=2) + "\n")
