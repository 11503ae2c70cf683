"""`train.py --explain-bias`: why db = dY.sum(axis=0), on N=3 rows, computed by the real Affine layer."""
import numpy as np

import framework as F


def show(a):
    """An array on one line, as in the README: [[1, 2], [0, 1]], 0.1 rather than 1.000e-01."""
    a = np.asarray(a)
    if a.ndim == 0:
        return f"{float(a):.6g}"
    return "[" + ", ".join(show(row) for row in a) + "]"


def explain_bias(print=print):
    """Prints the forward broadcast and the backward sum of a batched Affine layer (N=3, in=2, out=2)."""
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
    print("Forward: x @ W is (3, 2); `+ b` broadcasts, copying the one row b to each of the 3 rows:")
    print(f"x @ W     = {show(x @ layer.W.data)}")
    print(f"y = x @ W + b = {show(y)}\n")
    print("Backward: given dY = dL/dy, the same shape as y,")
    print(f"dY (3, 2) = {show(dY)}")
    print("each of the 3 copies of b received one row of dY; the gradient of a copy is the sum of the")
    print("copies' gradients, so the rows add up:\n")
    print(f"dY[0] + dY[1] + dY[2] = {show(dY[0])} + {show(dY[1])} + {show(dY[2])} = {show(dY[0] + dY[1] + dY[2])}")
    print(f"1ᵀ·dY = {show(ones)} @ dY = {show(ones @ dY)}")
    print(f"db from Affine.backward (dY.sum(axis=0)) = {show(db)}   shape {db.shape}, like b\n")
    print(f"The same rule as dW = xᵀ·dY = {show(layer.W.grad)}: a sum over the batch. The loss already")
    print("divides by N, so db is the batch average of the per-example bias gradients. Left unsummed,")
    print("dY (3, 2) would not even fit b (2,): every optimizer refuses such a gradient by name.")
