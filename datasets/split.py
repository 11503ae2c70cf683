"""Reproducible train/validation split."""

from __future__ import annotations

import numpy as np


def split_validation(x: np.ndarray, t: np.ndarray, size: float, seed=0):
    """Split ``size`` random examples off ``(x, t)``.

    Returns ``((x_train, t_train), (x_val, t_val))``.

    ``size`` is a count, or a fraction when a float in (0, 1). The choice depends
    only on ``seed`` (anything ``np.random.default_rng`` accepts), never on global
    random state. Both parts keep the original order of the examples.
    """
    n = len(x)
    if len(t) != n:
        raise ValueError(f"x has {n} examples but t has {len(t)}")
    count = round(size * n) if isinstance(size, float) and 0 < size < 1 else size
    if not isinstance(count, (int, np.integer)) or not 0 <= count <= n:
        raise ValueError(f"size must be a count in [0, {n}] or a fraction in (0, 1), got {size!r}")
    order = np.random.default_rng(seed).permutation(n)
    # Sorted indices gather memory front to back, which is faster for big arrays.
    val, train = np.sort(order[:count]), np.sort(order[count:])
    return (x[train], t[train]), (x[val], t[val])
