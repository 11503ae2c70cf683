"""Every array the training step takes from np.empty is written in full before it is read: with
np.empty handing out memory full of junk (NaN, or the largest integer), training gives the same
bits as with whatever memory np.empty happens to return."""
import numpy as np
import pytest

import framework as F
from framework.parallel import AllReduce

REAL_EMPTY = np.empty


def junk_empty(shape, dtype=float, order="C", **kwargs):
    """np.empty, but full of junk: NaN for floats, the largest value for integers, True for
    booleans."""
    a = REAL_EMPTY(shape, dtype, order, **kwargs)
    kind = a.dtype.kind
    a.fill(np.nan if kind in "fc" else np.iinfo(a.dtype).max if kind in "iu" else True)
    return a


def trained(all_reduce):
    """Weights and history after 2 epochs of a small CNN: 10 examples in batches of 4 leave a last
    batch of 2, which fills only part of fit's reused batch array; MaxPool2D's windows cover
    their input exactly, the one geometry whose dx starts from np.empty."""
    rng = np.random.default_rng(0)
    model = F.Sequential(F.Conv2D(1, 3, 3, padding=1, rng=rng), F.BatchNorm(3), F.ReLU(),
                         F.MaxPool2D(2), F.Dropout(0.25, rng=rng), F.Flatten(),
                         F.Affine(48, 5, rng=rng), input_shape=(1, 8, 8))
    x = rng.standard_normal((10, 1, 8, 8)).astype(np.float32)
    t = rng.integers(0, 5, 10)
    optimizer = F.Adam(model.parameters(), lr=0.01)
    callbacks = [AllReduce()] if all_reduce else []  # one process: its sums are the values
    history = F.fit(model, F.SoftmaxCrossEntropy(), optimizer, (x, t), epochs=2, batch_size=4,
                    rng=rng, callbacks=callbacks)
    return model.state_dict(), history


@pytest.mark.parametrize("all_reduce", [False, True])
def test_training_gives_the_same_bits_when_np_empty_returns_junk(monkeypatch, all_reduce):
    weights, history = trained(all_reduce)
    monkeypatch.setattr(np, "empty", junk_empty)
    junk_weights, junk_history = trained(all_reduce)
    monkeypatch.undo()
    for name, array in weights.items():
        np.testing.assert_array_equal(junk_weights[name], array, err_msg=name)
    np.testing.assert_array_equal(junk_history["train_loss"], history["train_loss"])


def test_junk_empty_is_junk():
    """The test above could not fail if junk_empty left memory as it found it."""
    assert np.isnan(junk_empty((3,), np.float32)).all()
    assert (junk_empty((2,), np.int64) == np.iinfo(np.int64).max).all()
