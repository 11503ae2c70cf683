"""The loss, its own object: softmax and cross-entropy fused for stability and speed."""
import functools

import numpy as np


class SoftmaxCrossEntropy:
    """L = -(1/N) sum_n sum_k t_nk log p_nk, with p = softmax(z) over classes.

    Shapes: logits z (N, C); targets t either integer labels (N,) in [0, C), or (N, C) rows of
    probabilities (non-negative, summing to 1: one-hot rows, or soft targets such as label
    smoothing), as in PyTorch's cross_entropy. forward returns the scalar mean loss. Backward
    (no argument: L is the end of the graph) returns
        dz = (p - t) / N      (N, C), t as probabilities (one-hot for labels)
    The 1/N is where the batch mean enters; it is why Affine's db = dY.sum(axis=0) is an
    average, not a total. Stable: log-sum-exp after subtracting each row's max, so logits
    of ±1e4 give finite losses and gradients. Targets that are neither are refused by value.
    After forward, `labels` holds the integer labels, or each target row's most probable class
    (for accuracy only).
    """

    def forward(self, z, t):
        t = self.checked_targets(z, t)
        # Each row's max, taken column by column (C calls of np.maximum on N values): numpy's
        # z.max(axis=1) over a short last axis is slower.
        row_max = functools.reduce(np.maximum, z.T)
        shifted = z - row_max[:, None]
        e = np.exp(shifted)
        sum_e = e.sum(axis=1, keepdims=True)
        log_sum_e = np.log(sum_e)
        n = len(z)
        self.p = np.divide(e, sum_e, out=e)
        if t.ndim == 1:
            self.labels, self.t = t, None
            # -log p_{n,t} = log sum_j exp(shifted_nj) - shifted_{n,t}: no log of a tiny p.
            return float((log_sum_e[:, 0] - shifted[np.arange(n), t]).sum() / n)
        self.labels, self.t = t.argmax(axis=1), t
        return float((t * (log_sum_e - shifted)).sum(axis=1).sum() / n)

    def backward(self):
        n = len(self.p)
        if self.t is None:
            dz = self.p.copy()
            dz[np.arange(n), self.labels] -= 1
        else:
            # d/dz of -sum_k t_k log p_k is p * sum_k t_k - t: p - t for rows that sum to 1.
            dz = self.p * self.t.sum(axis=1, keepdims=True)
            dz -= self.t
        dz /= n
        return dz

    @staticmethod
    def checked_targets(z, t):
        """t as given when it fits logits z, else a ValueError naming the offending value and
        row."""
        z, t = np.asarray(z), np.asarray(t)
        if z.ndim != 2 or z.shape[1] < 1:
            raise ValueError(f"SoftmaxCrossEntropy: logits must have shape (N, C), got {z.shape}")
        n, classes = z.shape
        if t.ndim == 1 and t.dtype.kind in "iu":
            if len(t) != n:
                raise ValueError(f"SoftmaxCrossEntropy: {len(t)} labels for {n} rows of logits")
            bad = np.flatnonzero((t < 0) | (t >= classes))
            if len(bad):
                raise ValueError(f"SoftmaxCrossEntropy: label {t[bad[0]]} in row {bad[0]} is not "
                                 f"a class index in [0, {classes})")
            return t
        if t.ndim == 2 and t.dtype.kind == "f" and t.shape == z.shape:
            t = t.astype(z.dtype, copy=False)
            negative = np.argwhere(t < 0)
            if len(negative):
                row, k = negative[0]
                raise ValueError(f"SoftmaxCrossEntropy: target row {row} has {t[row, k]:.6g} at "
                                 f"class "
                                 f"{k}: probabilities cannot be negative")
            sums = t.sum(axis=1, dtype=np.float64)
            off = np.flatnonzero(~(np.abs(sums - 1) <= 1e-4))
            if len(off):
                raise ValueError(f"SoftmaxCrossEntropy: target row {off[0]} sums to "
                                 f"{sums[off[0]]:.6g}, not 1: targets are integer labels (N,) or "
                                 "rows of probabilities (N, C)")
            return t
        raise ValueError(f"SoftmaxCrossEntropy: targets of shape {t.shape} and dtype {t.dtype} do "
                         f"not fit logits of shape {z.shape}: give integer labels of shape ({n},) "
                         f"or probabilities of shape {z.shape}")
