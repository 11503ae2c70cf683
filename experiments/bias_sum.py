"""bias_sum.png, the lesson as a picture: at a run's first step, dY of the output layer and of
the first layer as an N x out heat map, its column sums, and db (the gradient backward
computed) beside them: the same numbers. For a conv layer dY is (N, C, H, W): one example's
H x W maps sum to its row of an N x C map, whose column sums are db.

The run saves what the picture needs in bias_sum.npz (a few kB: one step, at most COLUMNS
columns or CHANNELS channels of each layer), so the picture can be redrawn from the folder.
"""
import zipfile

import numpy as np

import framework as F
from framework.bias_log import bias_layers, upstream_gradients
from framework.files import atomic_write

COLUMNS = 10  # of an Affine layer's dY
CHANNELS = 4  # of a conv layer's dY (each an H x W map in the picture)
KEYS = ("name", "shape", "rows", "db", "next", "positions")


class BiasSumSample(F.Callback):
    """Writes folder/bias_sum.npz at step 1, before the optimizer's step: for the output bias
    layer and the first one, its name, dY's full shape, `rows` (N, k): dY's first k columns
    (for a conv layer each example's sum over its positions), `db` (k,): the layer's own
    gradient, `next`: the kind of layer after it, and for a conv layer `positions` (k, H, W):
    the first example's dY."""

    def __init__(self, folder):
        self.path = folder / "bias_sum.npz"

    def after_backward(self, state):
        if state.step != 1:
            return
        layers = bias_layers(state.model)
        if not layers:
            return
        dys = upstream_gradients(state.model, state.loss_fn)
        roles = {"output": layers[-1]} | ({"first": layers[0]} if len(layers) > 1 else {})
        arrays = {"step": np.asarray(state.step)}
        for role, layer in roles.items():
            found = sample(state.model, layer, dys[layer])
            if state.comm.size > 1:  # each process holds its rows: in rank order, the batch's
                rows = state.comm.gather(found["rows"])
                if rows is not None:
                    found["rows"] = np.concatenate(rows)
                    found["shape"][0] = len(found["rows"])
            arrays.update({f"{role}/{key}": value for key, value in found.items()})
        if state.comm.rank != 0:  # rank 0 writes the run's files
            return
        with atomic_write(self.path) as f:
            np.savez_compressed(f, **arrays)


def sample(model, layer, dy):
    """What bias_sum.npz keeps of one layer (copies: dy may be a reused work array)."""
    b = getattr(layer, layer.bias)
    after = model.layers.index(layer) + 1
    found = {"name": np.asarray(b.name), "shape": np.asarray(dy.shape),
             "next": np.asarray(type(model.layers[after]).__name__.lower()
                                if after < len(model.layers) else "")}
    if dy.ndim == 2:
        k = min(COLUMNS, dy.shape[1])
        found["rows"] = dy[:, :k].copy()
    else:
        k = min(CHANNELS, dy.shape[1])
        found["rows"] = dy[:, :k].sum(axis=(2, 3))
        found["positions"] = dy[0, :k].copy()
    found["db"] = b.grad.reshape(-1)[:k].copy()
    return found


def read_sample(path):
    """bias_sum.npz as {"step": int, "layers": [dict per layer]}, or None when it is missing or
    not as BiasSumSample writes it."""
    try:
        with np.load(path, allow_pickle=False) as f:
            found = {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    layers = []
    for role in ("output", "first"):
        layer = {key: found[f"{role}/{key}"] for key in KEYS if f"{role}/{key}" in found}
        if "rows" not in layer:
            continue
        rows, db = layer["rows"], layer["db"]
        positions = layer.get("positions")
        if (rows.ndim != 2 or db.shape != rows.shape[1:]
                or positions is not None and (positions.ndim != 3 or len(positions) != len(db))):
            return None
        layers.append(layer)
    return {"step": int(found["step"]), "layers": layers} if layers and "step" in found else None


def plot_bias_sum(plt, folder, loss):
    """bias_sum.png from folder/bias_sum.npz (one panel per layer); returns its path, or None
    when the run saved no sample."""
    sample = read_sample(folder / "bias_sum.npz")
    if sample is None:
        return None
    figure = plt.figure(figsize=(6.4 * len(sample["layers"]), 9.5))
    for panel, layer, role in zip(figure.subfigures(1, len(sample["layers"]), squeeze=False)[0],
                                  sample["layers"], ("output layer", "first layer")):
        draw_layer(panel, layer, role, loss)
    figure.suptitle(f"{folder.name}, step {sample['step']}: db is dY summed over the batch "
                    "(and over a conv's positions)", fontsize=11, y=0.995)
    figure.savefig(folder / "bias_sum.png", dpi=100)
    plt.close(figure)
    return folder / "bias_sum.png"


def draw_layer(panel, layer, role, loss):
    """One layer: (a conv's first example's maps,) the N x k heat map, its column sums, db."""
    from matplotlib.patches import Rectangle  # matplotlib is optional: only when drawing

    rows, db, shape = layer["rows"], layer["db"], [int(n) for n in layer["shape"]]
    positions = layer.get("positions")
    n, k = rows.shape
    maps = positions is not None
    heights = ([2.0, 1.0] if maps else []) + [6.5, 1.0, 0.55, 0.75, 0.55]
    # The last, narrow column holds the colour bar, so the strips line up with the heat map.
    grid = panel.add_gridspec(len(heights), (k if maps else 1) + 1, height_ratios=heights,
                              width_ratios=[1] * (k if maps else 1) + [0.05 * (k if maps else 1)],
                              left=0.17, right=0.85, top=0.87, bottom=0.03, hspace=0.1,
                              wspace=0.15)
    body = slice(0, -1)
    at = 0
    if maps:
        spread = float(np.abs(positions).max()) or 1.0
        for c in range(k):
            ax = panel.add_subplot(grid[0, c])
            ax.imshow(positions[c], cmap="RdBu_r", vmin=-spread, vmax=spread)
            ax.set_title(f"channel {c}\nΣ = {positions[c].sum():.3g}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        arrow(panel.add_subplot(grid[1, body]), f"each {shape[2]}x{shape[3]} map of example 0 "
                                                 "sums to its entry in row 0 (boxed)")
        at = 2
    heat = panel.add_subplot(grid[at, body])
    spread = float(np.abs(rows).max()) or 1.0
    image = heat.imshow(rows, aspect="auto", cmap="RdBu_r", vmin=-spread, vmax=spread,
                        interpolation="nearest")
    panel.colorbar(image, cax=panel.add_subplot(grid[at, -1]), label="dY")
    heat.set_ylabel(f"example n ({n} rows)" + (", summed over its positions" if maps else ""))
    heat.set_xticks(range(k))
    heat.set_xticklabels([])
    if maps:
        heat.add_patch(Rectangle((-0.5, -0.5), k, 1, fill=False, edgecolor="black", lw=1.5))
    arrow(panel.add_subplot(grid[at + 1, body]), f"sum over the {n} rows (axis 0)")
    total = rows.sum(axis=0)  # float32, as backward adds
    scale = max(float(np.abs(db).max()), float(np.abs(total).max()))
    exponent = int(np.floor(np.log10(scale))) if scale > 0 else 0
    strip(panel.add_subplot(grid[at + 2, body]), total, exponent, "Σ_n dY_n")
    middle = panel.add_subplot(grid[at + 3, body])
    middle.axis("off")
    gap = float(np.abs(total - db).max())
    middle.text(0.5, 0.5, "=   (max |Σ - db| = 0: the same numbers)" if gap == 0 else
                f"=   up to float32 rounding (max |Σ - db| = {gap:.1e}: the same terms added in "
                "another order)", ha="center", va="center", fontsize=8.5,
                transform=middle.transAxes)
    axis = strip(panel.add_subplot(grid[at + 4, body]), db, exponent, "db")
    axis.set_xticks(range(k))
    axis.set_xlabel("channel" if maps else "output unit")
    panel.suptitle(caption(layer, role, shape, k, loss), fontsize=9.5, y=0.955, va="top")


def caption(layer, role, shape, k, loss):
    """The panel's title: the layer, dY's shape, the part shown, what dY is or why db is 0."""
    name, width = str(layer["name"]), shape[1]
    text = f"{role} {name}: dY {tuple(shape)} -> db ({width},)"
    if len(shape) == 4:
        text += (f"\nchannels 0-{k - 1} of {width}; N·H·W = {shape[0]}·{shape[2]}·{shape[3]} = "
                 f"{shape[0] * shape[2] * shape[3]:,} positions")
    elif k < width:
        text += f"\ncolumns 0-{k - 1} of {width}"
    if role == "output layer" and len(shape) == 2 and loss.gradient:
        text += f"\n{loss.gradient}"
    if str(layer["next"]) == "batchnorm":
        text += "\nBatchNorm follows: it removes each channel's mean, so db is 0 up to rounding"
    return text


def arrow(ax, text):
    """A downward arrow with a label, filling ax."""
    ax.axis("off")
    ax.annotate("", xy=(0.08, 0.05), xytext=(0.08, 0.95), xycoords="axes fraction",
                arrowprops={"arrowstyle": "-|>", "lw": 1.5})
    ax.text(0.12, 0.5, text, va="center", fontsize=8.5, transform=ax.transAxes)


def strip(ax, values, exponent, label):
    """One row of numbers in cells, in units of 10**exponent, tinted by sign."""
    shown = values / 10.0 ** exponent
    ax.imshow(shown[None, :], aspect="auto", cmap="RdBu_r", vmin=-25, vmax=25)
    for j, v in enumerate(shown):
        ax.text(j, 0, f"{v:.2f}", ha="center", va="center", fontsize=7.5)
    ax.set_yticks([0])
    ax.set_yticklabels([f"{label}\n(×1e{exponent})"], fontsize=8)
    ax.set_xticks([])
    return ax
