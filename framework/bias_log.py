"""The bias-gradient log: db = dY.sum(axis=0), checked on a real batch.

For each Affine layer it compares db with the explicit sum of the N rows of dY and with
1ᵀ·dY, and with central differences on a few bias entries. For an output layer feeding
softmax-cross-entropy it adds the identity db_k = mean_n p_nk - (fraction of the batch
labelled k), so sum_k db_k = 0.
"""
import numpy as np

from .gradcheck import float64_copy, numeric_grad, relative_error
from .layers import Affine


def bias_report(model, loss_fn, x, t, step, epoch, entries=3, eps=1e-6):
    """One dict per Affine layer for the batch just backpropagated (call before optimizer.step)."""
    affines = [layer for layer in model.layers if isinstance(layer, Affine)]
    records = []
    for layer in affines:
        dy, db = layer.last_dy, layer.b.grad
        rows_added = np.zeros_like(db)
        for row in dy:  # the sum written out, row by row: what broadcasting's backward does
            rows_added += row
        records.append({
            "event": "bias", "step": step, "epoch": epoch, "layer": layer.b.name,
            "batch_size": len(dy), "dY_shape": tuple(dy.shape), "db_shape": tuple(db.shape),
            "db_norm": float(np.linalg.norm(db)),
            "sum_check": float(np.abs(db - rows_added).max()),
            "ones_check": float(np.abs(db - np.ones(len(dy), dy.dtype) @ dy).max()),
        })
    if model.layers[-1] is affines[-1] and hasattr(loss_fn, "p"):
        records[-1].update(output_identity(affines[-1].b.grad, loss_fn.p, loss_fn.labels))

    # Central differences in float64 on the largest entries of each db (eval mode: no dropout).
    x64 = x.astype(np.float64)
    loss = lambda: loss_fn.forward(model.forward(x64, train=False), t)
    with float64_copy(model):
        loss()
        model.backward(loss_fn.backward(), need_dx=False)
        for layer, record in zip(affines, records):
            index = np.argsort(-np.abs(layer.b.grad))[:entries]
            numeric = numeric_grad(loss, layer.b.data, index, eps)
            record["numeric_rel_err"] = relative_error(layer.b.grad[index], numeric)
    return records


def output_identity(db, p, labels):
    """The softmax-cross-entropy identity for the output bias, and the class pushed hardest."""
    n, classes = p.shape
    fraction = np.bincount(labels, minlength=classes) / n
    predicted = p.mean(axis=0, dtype=np.float64) - fraction
    k = int(np.argmax(np.abs(db)))
    return {"db_sum": float(db.sum(dtype=np.float64)),
            "identity_check": float(np.abs(db - predicted).max()),
            "top_class": k, "top_db": float(db[k])}


def format_bias(r):
    """The log line for one record, e.g. `step 469  affine2.b  dY (128, 10) -> db (10,) = sum of 128 rows ...`."""
    line = (f"step {r['step']}  {r['layer']}  dY {r['dY_shape']} -> db {r['db_shape']} = sum of "
            f"{r['batch_size']} rows  |db| {r['db_norm']:.4f}  max|db - Σ dY_n| {r['sum_check']:.1e}  "
            f"max|db - 1ᵀdY| {r['ones_check']:.1e}  numeric check {r['numeric_rel_err']:.1e}")
    if "db_sum" in r:
        direction = "down" if r["top_db"] > 0 else "up"
        line += (f"\n    output: db_k = mean_n p_nk - frac_k (max diff {r['identity_check']:.1e}), "
                 f"Σ_k db_k = {r['db_sum']:.1e}; class {r['top_class']} pushed hardest "
                 f"(db {r['top_db']:+.4f}: its bias goes {direction})")
    return line
