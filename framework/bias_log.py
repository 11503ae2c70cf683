"""The bias-gradient report: db = sum_to(dY), checked on a real batch.

For each layer whose forward broadcasts a bias (Affine's b over the N rows; a conv bias or
BatchNorm's beta over the batch and every position) it compares db with the explicit sum of
dY, example by example, and with 1ᵀ·dY (dY's positions as rows), and with float64 central
differences on a few bias entries. For the output layer it adds the loss's own identity for
its bias gradient (Loss.output_bias, Loss.identity): with softmax-cross-entropy
db_k = mean_n p_nk - mean_n t_nk (for labels: the fraction of the batch labelled k), so
sum_k db_k = 0.
"""
import numpy as np

from .numeric import float64_copy, grads_set_aside, numeric_grad, relative_error


def bias_layers(model):
    """The model's layers that broadcast a bias parameter."""
    return [layer for layer in model.layers if layer.bias is not None]


def upstream_gradients(model, loss_fn):
    """{layer: dY} for every bias layer, for the batch just backpropagated.

    Recomputed from the loss down through the layers above each one (the same arrays forward
    kept, so the same dY backward saw), with the model's gradients set aside meanwhile: the
    layers keep nothing for this report.
    """
    wanted = bias_layers(model)
    found = {}
    with grads_set_aside(model):
        dy = loss_fn.backward()
        for layer in reversed(model.layers[model.layers.index(wanted[0]):]):
            if layer.bias is not None:
                found[layer] = dy
            if layer is not wanted[0]:
                dy = layer.backward(dy)
    return found


def bias_report(model, loss_fn, x, t, step, epoch, entries=3, eps=1e-6):
    """One dict per bias layer for the batch just backpropagated (call before optimizer.step)."""
    layers = bias_layers(model)
    if not layers:
        return []
    dys = upstream_gradients(model, loss_fn)
    records = []
    for layer in layers:
        dy, b = dys[layer], getattr(layer, layer.bias)
        db = b.grad.reshape(-1)
        channels = len(db)
        per_example = np.zeros_like(db)
        for example in dy:  # the sum written out, example by example (each over its positions)
            per_example += example.reshape(channels, -1).sum(axis=1) if dy.ndim > 2 else example
        rows = np.moveaxis(dy, 1, -1).reshape(-1, channels)  # one row per example and position
        records.append({
            "event": "bias", "step": step, "epoch": epoch, "layer": b.name,
            "batch_size": len(dy), "positions": len(rows), "dY_shape": tuple(dy.shape),
            "db_shape": tuple(b.data.shape), "db_norm": float(np.linalg.norm(db)),
            "sum_norm": float(np.linalg.norm(per_example)),
            "sum_check": float(np.abs(db - per_example).max()),
            "ones_check": float(np.abs(db - np.ones(len(rows), dy.dtype) @ rows).max()),
        })
    expected = loss_fn.output_bias()  # before the forward passes below replace its batch
    if model.layers[-1] is layers[-1] and expected is not None:
        records[-1].update(output_identity(getattr(layers[-1], layers[-1].bias).grad, expected,
                                           loss_fn.identity))

    # Central differences in float64 on the largest entries of each db (eval mode: no dropout).
    x64 = x.astype(np.float64)
    loss = lambda: loss_fn.forward(model.forward(x64, train=False), t)
    with float64_copy(model):
        loss()
        model.backward(loss_fn.backward(), need_dx=False)
        for layer, record in zip(layers, records):
            b = getattr(layer, layer.bias)
            index = np.argsort(-np.abs(b.grad.reshape(-1)))[:entries]
            numeric = numeric_grad(loss, b.data, index, eps)
            record["numeric_rel_err"] = relative_error(b.grad.reshape(-1)[index], numeric)
    return records


def output_identity(db, expected, identity):
    """How far the output bias's gradient db is from what the loss's identity says it must be
    (`expected`), the sum of db, and the class pushed hardest."""
    k = int(np.argmax(np.abs(db)))
    return {"identity": identity, "db_sum": float(db.sum(dtype=np.float64)),
            "identity_check": float(np.abs(db - expected).max()),
            "top_class": k, "top_db": float(db[k])}


KEY = ("bias gradients: db = dY summed over the batch (and positions). Why: python train.py "
       "--explain-bias\n"
       "  Σ, 1ᵀ: max|db - Σ_n dY_n|, max|db - 1ᵀ·dY| (float32, another order: ~1e-8, "
       "more if more terms);\n"
       "  numeric: relative error against float64 central differences")


def summed(r):
    """'sum of 128 rows' or 'sum over 128x28x28 = 100,352 positions'."""
    if r["positions"] == r["batch_size"]:
        return f"sum of {r['batch_size']} rows"
    return (f"sum over {r['batch_size']}x{r['positions'] // r['batch_size']} = "
            f"{r['positions']:,} positions")


def format_bias(r):
    """The full report of one layer, two lines (three for the output layer), e.g.
    `step 1  affine2.b  dY (128, 10) -> db (10,) = sum of 128 rows  |db| 0.1104`."""
    lines = [f"step {r['step']}  {r['layer']}  dY {r['dY_shape']} -> db {r['db_shape']} = "
             f"{summed(r)}  |db| {r['db_norm']:.4f}",
             f"    checks: Σ {r['sum_check']:.1e}  1ᵀ {r['ones_check']:.1e}  "
             f"numeric {r['numeric_rel_err']:.1e}"]
    if "db_sum" in r:
        direction = "down" if r["top_db"] > 0 else "up"
        lines.append(f"    output: {r['identity']} (diff {r['identity_check']:.0e}); "
                     f"Σ_k db_k = {r['db_sum']:.1e}; "
                     f"class {r['top_class']} pushed most ({direction})")
    return "\n".join(lines)


def format_bias_step(records):
    """One line for all layers of a logged step: the worst of each check and the largest |db|."""
    top = max(records, key=lambda r: r["db_norm"])
    worst = {key: max(r[key] for r in records)
             for key in ("sum_check", "ones_check", "numeric_rel_err")}
    return (f"step {records[0]['step']}  {len(records)} biases: Σ {worst['sum_check']:.1e}  "
            f"1ᵀ {worst['ones_check']:.1e}  numeric {worst['numeric_rel_err']:.1e}  "
            f"largest |db| {top['db_norm']:.4f} ({top['layer']})")


class BiasLines:
    """The bias log as console text, one logged step at a time: the key and every layer in full
    the first time, then one line a step."""

    def __init__(self):
        self.shown = False

    def __call__(self, records):
        if self.shown:
            return format_bias_step(records)
        self.shown = True
        return "\n".join([KEY] + [format_bias(r) for r in records])
