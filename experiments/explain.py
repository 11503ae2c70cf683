"""`train.py --explain-bias`: why db = dY.sum(axis=0), on N=3 rows, computed by the real Affine
layer."""
import numpy as np

import framework as F


def show(a):
    """An array on one line, as in the README: [[1, 2], [0, 1]], 0.1 rather than 1.000e-01."""
    a = np.asarray(a)
    if a.ndim == 0:
        return f"{float(a):.6g}"
    return "[" + ", ".join(show(row) for row in a) + "]"


def explain_bias(print=print):
    """Prints the forward broadcast and the backward sum of a batched Affine layer (N=3, in=2,
    out=2)."""
    layer = F.Affine(2, 2, dtype=np.float64, rng=np.random.default_rng(0))
    layer.W.data[...] = [[1, -1], [0.5, 2]]
    layer.b.data[...] = [0.1, -0.2]
    x = np.array([[1, 2], [0, 1], [3, -1]], dtype=np.float64)
    y = layer.forward(x)
    dY = np.array([[0.1, -0.3], [0.2, 0.1], [-0.4, 0.5]])
    layer.backward(dY)
    db = layer.b.grad
    ones = np.ones(len(dY))

    print("A batched Affine layer, y = x @ W + b, with N = 3 examples, 2 inputs, 2 outputs:\n")
    print(f"x  (3, 2) = {show(x)}")
    print(f"W  (2, 2) = {show(layer.W.data)}")
    print(f"b  (2,)   = {show(layer.b.data)}\n")
    print("Forward: x @ W is (3, 2); "
          "`+ b` broadcasts, copying the one row b to each of the 3 rows:")
    print(f"x @ W     = {show(x @ layer.W.data)}")
    print(f"y = x @ W + b = {show(y)}\n")
    print("Backward: given dY = dL/dy, the same shape as y,")
    print(f"dY (3, 2) = {show(dY)}")
    print("each of the 3 copies of b received one row of dY; "
          "the gradient of a copy is the sum of the")
    print("copies' gradients, so the rows add up:\n")
    print(f"dY[0] + dY[1] + dY[2] = {show(dY[0])} + {show(dY[1])} + {show(dY[2])} = "
          f"{show(dY[0] + dY[1] + dY[2])}")
    print(f"1ᵀ·dY = {show(ones)} @ dY = {show(ones @ dY)}")
    print(f"db from Affine.backward (dY.sum(axis=0)) = {show(db)}   shape {db.shape}, like b\n")
    print(f"The same rule as dW = xᵀ·dY = {show(layer.W.grad)}: a sum over the batch. "
          "The loss already")
    print("divides by N, so db is the batch average of the per-example bias gradients. "
          "Left unsummed,")
    print("dY (3, 2) would not even fit b (2,): every optimizer refuses such a gradient by name.")


def explain_conv_bias(print=print):
    """The same rule for a conv bias: N=2 examples, one channel, a 3x3 output, the real Conv2D."""
    layer = F.Conv2D(1, 1, 2, dtype=np.float64, rng=np.random.default_rng(0))
    layer.W.data[...] = [[[[1, 0], [0, -1]]]]
    layer.b.data[...] = [0.5]
    x = np.arange(2 * 16, dtype=np.float64).reshape(2, 1, 4, 4) % 7
    y = layer.forward(x)
    dY = np.array([[[[0.1, 0.2, 0.0], [-0.1, 0.3, 0.1], [0.0, 0.2, -0.2]]],
                   [[[0.2, -0.1, 0.1], [0.0, 0.1, 0.3], [-0.3, 0.0, 0.1]]]])
    layer.backward(dY)
    per_example = dY.sum(axis=(2, 3))[:, 0]

    print("\nThe same rule for a convolution. "
          "Conv2D(1 channel in, 1 out, 2x2 kernel) on N = 2 examples")
    print("of 4x4 gives y of shape (2, 1, 3, 3). Its bias b (1,) is added at every one of the 3x3")
    print("positions of every example: 2 x 9 = 18 copies of the one number b.\n")
    print(f"b = {show(layer.b.data)};   y[0, 0] = {show(y[0, 0])}   (each entry includes + b)\n")
    print(f"dY[0, 0] = {show(dY[0, 0])}")
    print(f"dY[1, 0] = {show(dY[1, 0])}\n")
    print("Every copy passes its share back, "
          "so db adds all 18 entries of dY, over the batch and every")
    print(f"position: example 0 gives {per_example[0]:.6g}, example 1 gives {per_example[1]:.6g};")
    print(f"db = dY.sum(axis=(0, 2, 3)) = {show(dY.sum(axis=(0, 2, 3)))};  Conv2D.backward gave "
          f"{show(layer.b.grad)}.")
    print("For a batch of 128 and 28x28 outputs, "
          "100,352 entries add into each entry of db; BatchNorm's")
    print("beta is broadcast the same way, so dbeta sums the same axes.")


def explain_processes(print=print):
    """The same sum split over processes (mpiexec -n 2 train.py): the N=3 rows of explain_bias
    as 2 rows on one process and 1 on another, each its own real Affine layer, their partial
    sums added as MPI's Allreduce(SUM) adds them."""
    dY = np.array([[0.1, -0.3], [0.2, 0.1], [-0.4, 0.5]])
    x = np.array([[1, 2], [0, 1], [3, -1]], dtype=np.float64)
    partials = []
    for rows in (slice(0, 2), slice(2, 3)):  # process 0's rows, process 1's
        layer = F.Affine(2, 2, dtype=np.float64, rng=np.random.default_rng(0))
        layer.forward(x[rows])
        layer.backward(dY[rows])
        partials.append(layer.b.grad.copy())
    print("\nThe same sum over processes. `mpiexec -n 2 python train.py CONFIG` splits each "
          "batch: here")
    print("process 0 takes rows 0 and 1, process 1 takes row 2, and each runs the same layer on "
          "its rows.")
    print("Each backward sums only its own rows of dY:\n")
    print(f"process 0: db_0 = dY[0] + dY[1] = {show(partials[0])}")
    print(f"process 1: db_1 = dY[2]         = {show(partials[1])}")
    print(f"Allreduce(SUM): db_0 + db_1      = {show(partials[0] + partials[1])}   "
          f"= dY.sum(axis=0), the db of all 3 rows\n")
    print("Every gradient adds up the same way (dW = xᵀ·dY is a sum over rows too), so after the")
    print("Allreduce every process takes the step one process takes on the whole batch. The loss")
    print("of each process's rows is divided by the whole batch's size N, not by its own share,")
    print("so the partial sums add up to the batch average. The log shows each process's partial")
    print("sum and checks their Allreduce sum against db.")
