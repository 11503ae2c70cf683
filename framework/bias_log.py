"""The bias-gradient report: db = sum_to(dY), checked on a real batch.

For each layer whose forward broadcasts a bias (Affine's b over the N rows; a conv bias or
BatchNorm's beta over the batch and every position) it compares db with the explicit sum of
dY, example by example, and with 1ᵀ·dY (dY's positions as rows), and with float64 central
differences on a few bias entries. For the output layer it adds the loss's own identity for
its bias gradient (Loss.output_bias, Loss.identity): with softmax-cross-entropy
db_k = mean_n p_nk - mean_n t_nk (for labels: the fraction of the batch labelled k), so
sum_k db_k = 0.

Split over processes (framework.parallel), each process's dY holds its rows of the batch: its
partial sum Σ_n dY_n over them is shown per process, and their Allreduce sum is checked against
db, which is the sum AllReduce gave the optimizer.
"""
import numpy as np

from .comm import LOCAL
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


def bias_report(model, loss_fn, x, t, step, epoch, entries=3, eps=1e-6, comm=None):
    """One dict per bias layer for the batch just backpropagated (call before optimizer.step).

    comm: the processes the batch is split over (framework.comm), which all call this at the same
    step; rank 0 gets the records (the others an empty list), the numeric check on its rows."""
    comm = LOCAL if comm is None else comm
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
        ones = np.ones(len(rows), dy.dtype) @ rows
        record = {
            "event": "bias", "step": step, "epoch": epoch, "layer": b.name,
            "batch_size": len(dy), "positions": len(rows), "dY_shape": tuple(dy.shape),
            "db_shape": tuple(b.data.shape), "db_norm": float(np.linalg.norm(db))}
        if comm.size > 1:
            record.update(across_processes(comm, per_example, ones, len(dy), len(rows)))
            per_example, ones = record.pop("sum"), record.pop("ones")
        record.update({
            "sum_norm": float(np.linalg.norm(per_example)),
            "sum_check": float(np.abs(db - per_example).max()),
            "ones_check": float(np.abs(db - ones).max()),
        })
        records.append(record)
    expected = loss_fn.output_bias()  # before the forward passes below replace its batch
    if model.layers[-1] is layers[-1] and expected is not None:
        if comm.size > 1:  # each process's part of the identity, over its rows: their sum
            expected = comm.allreduce(np.array(expected, np.float64))
        records[-1].update(output_identity(getattr(layers[-1], layers[-1].bias).grad, expected,
                                           loss_fn.identity))
    if comm.rank != 0:
        return []

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


def across_processes(comm, partial, ones, batch_rows, positions):
    """This process's partial sums (Σ_n dY_n and 1ᵀ·dY over its rows) added over the processes
    by Allreduce, with every process's partial on rank 0."""
    partials = comm.gather(partial)
    summed = comm.allreduce(np.stack([partial, ones]))  # in db's dtype, as AllReduce added db
    counts = comm.allreduce(np.array([batch_rows, positions]))
    out = {"processes": comm.size, "sum": summed[0], "ones": summed[1],
           "batch_size": int(counts[0]), "positions": int(counts[1])}
    if partials is not None:
        out["partial_norms"] = [float(np.linalg.norm(p)) for p in partials]
    return out


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
KEY_PROCESSES = ("  over K processes: each sums dY over its own rows; Allreduce(SUM) adds the K "
                 "partial sums,\n"
                 "  and Σ, 1ᵀ check db against those sums of partial sums; numeric: on rank 0's "
                 "rows")


def summed(r):
    """'sum of 128 rows' or 'sum over 128x28x28 = 100,352 positions'."""
    if r["positions"] == r["batch_size"]:
        return f"sum of {r['batch_size']} rows"
    return (f"sum over {r['batch_size']}x{r['positions'] // r['batch_size']} = "
            f"{r['positions']:,} positions")


def format_bias(r):
    """The full report of one layer, two lines (one more for the output layer, and one more for
    the partial sums of a batch split over processes), e.g.
    `step 1  affine2.b  dY (128, 10) -> db (10,) = sum of 128 rows  |db| 0.1104`."""
    processes = r.get("processes", 1)
    each = f" in each of {processes} processes" if processes > 1 else ""
    lines = [f"step {r['step']}  {r['layer']}  dY {r['dY_shape']}{each} -> db {r['db_shape']} = "
             f"{summed(r)}  |db| {r['db_norm']:.4f}"]
    if processes > 1:
        norms = ", ".join(f"{norm:.4f}" for norm in r["partial_norms"])
        lines.append(f"    per process: |Σ_n dY_n| over its rows {norms}; "
                     f"their Allreduce sum |.| {r['sum_norm']:.4f} = db")
    lines.append(f"    checks: Σ {r['sum_check']:.1e}  1ᵀ {r['ones_check']:.1e}  "
                 f"numeric {r['numeric_rel_err']:.1e}")
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
        key = [KEY, KEY_PROCESSES] if records[0].get("processes", 1) > 1 else [KEY]
        return "\n".join(key + [format_bias(r) for r in records])
