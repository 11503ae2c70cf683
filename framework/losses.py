"""Losses, each its own object, and what fit, evaluate and the bias log ask of one (Loss).

A loss is registered with @register_loss (framework.LOSSES) under its class name in snake case
(SoftmaxCrossEntropy is softmax_cross_entropy), the name a config's `loss:` gives.
"""
import functools

import numpy as np

from .registry import Registry, snake_case


class Loss:
    """Base class: the contract between a loss and fit, evaluate and the bias log. They call
    these methods and read nothing else of the loss.

        forward(y, t) -> float    the mean loss of a batch: the model's outputs y (N, K) against
                                  the targets t; keeps what the methods below need
        forward(y, t, total=B)    (for data parallelism, framework.parallel) y and t are some
                                  of the rows of a batch of B: this share's part of the batch's
                                  mean (its rows' losses over B), and backward and output_bias
                                  its part of theirs, so that the parts add up to the batch's
        backward() -> dy          dL/dy (N, K) for the batch of the last forward
        correct() -> int or None  how many examples of that batch the model got right (their
                                  largest output is at their target's class): the numerator of
                                  accuracy; None when the targets name no class
        output_bias() -> (K,) or None
                                  what the gradient of a bias added to y (the output layer's)
                                  must be for that batch, by this loss's own identity, in
                                  float64: the bias log compares the real db with it; None
                                  when the loss states no identity
    identity: that identity in words, as the bias log prints it.
    gradient: dL/dy in words, as the run's bias_sum.png states it.
    zero_sum: whether the identity makes the entries of the output bias's gradient add up to 0.
    """

    identity = None
    gradient = None
    zero_sum = False

    def forward(self, y, t, total=None):
        raise NotImplementedError

    def backward(self):
        raise NotImplementedError

    def correct(self):
        return None

    def output_bias(self):
        return None


# The losses a config can name, each listed by @register_loss (framework/registry.py).
LOSSES = Registry("loss", Loss, naming=snake_case)
register_loss = LOSSES.register


def checked_labels(loss, t, n, classes, outputs="outputs"):
    """Integer labels t when there is one for each of the n rows and each is a class index in
    [0, classes), else a ValueError naming the loss, and the label and its row."""
    if len(t) != n:
        raise ValueError(f"{loss}: {len(t)} labels for {n} rows of {outputs}")
    bad = np.flatnonzero((t < 0) | (t >= classes))
    if len(bad):
        raise ValueError(f"{loss}: label {t[bad[0]]} in row {bad[0]} is not a class index in "
                         f"[0, {classes})")
    return t


@register_loss
class MeanSquaredError(Loss):
    """L = 1/(N K) sum_n sum_k (y_nk - t_nk)^2: the mean over every entry, as PyTorch's mse_loss.

    Shapes: outputs y (N, K); targets t (N, K) numbers, or integer labels (N,) in [0, K),
    which stand for one-hot rows (the book's chapter 4 trains so). With r = y - t, the residual,
    backward returns
        dy = 2 r / (N K)      (N, K)
    and summed over the batch this gives the output bias's gradient, the mean residual:
        db_k = 2/K mean_n r_nk
    (N is `total` when y is a share of a batch of total rows: see Loss.) A row's class, for
    accuracy, is its label, or where its target row is largest; with one output (K = 1, a
    regression) there are no classes and no accuracy.
    """

    identity = "db_k = 2/K mean_n (y_nk - t_nk)"
    gradient = "dY = 2 (y - t) / (N K): each row's residual"

    def forward(self, y, t, total=None):
        y, t = np.asarray(y), np.asarray(t)
        if y.ndim != 2:
            raise ValueError(f"MeanSquaredError: outputs must have shape (N, K), got {y.shape}")
        if t.ndim == 1 and t.dtype.kind in "iu":
            self.labels = checked_labels("MeanSquaredError", t, *y.shape)
            self.r = y.copy()
            self.r[np.arange(len(y)), t] -= 1  # y minus the one-hot rows
        elif t.shape == y.shape and t.dtype.kind in "fiu":
            bad = np.argwhere(~np.isfinite(t))
            if len(bad):
                row, k = bad[0]
                raise ValueError(f"MeanSquaredError: target row {row} has {t[row, k]} at column "
                                 f"{k}; targets must be finite")
            self.r = y - t.astype(y.dtype, copy=False)
            self.labels = t.argmax(axis=1) if y.shape[1] > 1 else None
        else:
            raise ValueError(f"MeanSquaredError: targets of shape {t.shape} and dtype {t.dtype} "
                             f"do not fit outputs of shape {y.shape}: give targets of shape "
                             f"{y.shape}, or integer labels of shape ({len(y)},)")
        self.predicted = y.argmax(axis=1)
        self.entries = (len(y) if total is None else total) * y.shape[1]  # N K
        return float(np.square(self.r).sum() / self.entries)

    def backward(self):
        return self.r * self.r.dtype.type(2 / self.entries)

    def correct(self):
        if self.labels is None or self.r.shape[1] == 1:
            return None
        return int((self.predicted == self.labels).sum())

    def output_bias(self):
        return 2 / self.entries * self.r.sum(axis=0, dtype=np.float64)


@register_loss
class SoftmaxCrossEntropy(Loss):
    """L = -(1/N) sum_n sum_k t_nk log p_nk, with p = softmax(z) over classes.

    Shapes: logits z (N, C); targets t either integer labels (N,) in [0, C), or (N, C) rows of
    probabilities (non-negative, summing to 1: one-hot rows, or soft targets such as label
    smoothing), as in PyTorch's cross_entropy. forward returns the scalar mean loss. Backward
    (no argument: L is the end of the graph) returns
        dz = (p - t) / N      (N, C), t as probabilities (one-hot for labels)
    The 1/N is where the batch mean enters; it is why Affine's db = dY.sum(axis=0) is an
    average, not a total (N is `total` when z is a share of a batch of total rows: see Loss).
    Summed over the batch, dz gives the output bias's gradient
        db_k = mean_n p_nk - mean_n t_nk    (for labels: the fraction of the batch labelled k)
    so sum_k db_k = 0. Stable: log-sum-exp after subtracting each row's max, so logits
    of ±1e4 give finite losses and gradients. Targets that are neither are refused by value.
    A row's class, for accuracy, is its label, or its target row's most probable class.
    """

    identity = "db_k = mean p_nk - frac_k"
    gradient = "dY = (softmax - onehot) / N: the blue cell of each row is its label"
    zero_sum = True  # the rows of p and of t each add up to 1

    def forward(self, z, t, total=None):
        t = self.checked_targets(z, t)
        # Each row's max, taken column by column (C calls of np.maximum on N values): numpy's
        # z.max(axis=1) over a short last axis is slower.
        row_max = functools.reduce(np.maximum, z.T)
        shifted = z - row_max[:, None]
        e = np.exp(shifted)
        sum_e = e.sum(axis=1, keepdims=True)
        log_sum_e = np.log(sum_e)
        n = self.total = len(z) if total is None else total
        self.p, self.z = np.divide(e, sum_e, out=e), z
        if t.ndim == 1:
            self.labels, self.t = t, None
            # -log p_{n,t} = log sum_j exp(shifted_nj) - shifted_{n,t}: no log of a tiny p.
            return float((log_sum_e[:, 0] - shifted[np.arange(len(z)), t]).sum() / n)
        self.labels, self.t = t.argmax(axis=1), t
        return float((t * (log_sum_e - shifted)).sum(axis=1).sum() / n)

    def backward(self):
        n = self.total
        if self.t is None:
            dz = self.p.copy()
            dz[np.arange(len(dz)), self.labels] -= 1
        else:
            # d/dz of -sum_k t_k log p_k is p * sum_k t_k - t: p - t for rows that sum to 1.
            dz = self.p * self.t.sum(axis=1, keepdims=True)
            dz -= self.t
        dz /= n
        return dz

    def correct(self):
        return int((self.z.argmax(axis=1) == self.labels).sum())

    def output_bias(self):
        n, classes = self.total, self.p.shape[1]
        if self.t is None:
            target_sum = np.bincount(self.labels, minlength=classes)
        else:
            target_sum = self.t.sum(axis=0, dtype=np.float64)
        return self.p.sum(axis=0, dtype=np.float64) / n - target_sum / n

    @staticmethod
    def checked_targets(z, t):
        """t as given when it fits logits z, else a ValueError naming the offending value and
        row."""
        z, t = np.asarray(z), np.asarray(t)
        if z.ndim != 2 or z.shape[1] < 1:
            raise ValueError(f"SoftmaxCrossEntropy: logits must have shape (N, C), got {z.shape}")
        n, classes = z.shape
        if t.ndim == 1 and t.dtype.kind in "iu":
            return checked_labels("SoftmaxCrossEntropy", t, n, classes, "logits")
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
