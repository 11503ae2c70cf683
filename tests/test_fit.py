"""The training loop on small synthetic data: learning, determinism, faults, logging."""
import numpy as np
import pytest

from framework import (
    SGD,
    Adam,
    Affine,
    BatchNorm,
    BiasLog,
    Callback,
    CheckFinite,
    Dropout,
    NonFiniteError,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
    fit,
)


def blobs(rng, n=600, classes=3, dim=8):
    """Separable Gaussian blobs: a problem a small MLP must solve."""
    centers = rng.standard_normal((classes, dim)) * 3
    t = rng.integers(0, classes, n)
    return (centers[t] + rng.standard_normal((n, dim))).astype(np.float32), t


def run(seed=0, epochs=3, lr=1e-2, opt=Adam, callbacks=None):
    if callbacks is None:
        callbacks = (CheckFinite(),)
    rng = np.random.default_rng(seed)
    x, t = blobs(np.random.default_rng(100))
    model = Sequential(Affine(8, 16, rng=rng), ReLU(), Dropout(0.1, rng=rng),
                       Affine(16, 3, rng=rng))
    history = fit(model, SoftmaxCrossEntropy(), opt(model.parameters(), lr=lr), (x[:500], t[:500]),
                  val=(x[500:], t[500:]), epochs=epochs, batch_size=32, rng=rng,
                  callbacks=callbacks)
    return history, model


def test_learns_a_separable_problem():
    history, _ = run()
    assert history.val_acc.iloc[-1] > 0.95
    assert history.train_loss.iloc[-1] < history.train_loss.iloc[0]


def test_same_seed_same_metrics_bit_for_bit():
    a, _ = run(seed=3)
    b, _ = run(seed=3)
    cols = ["train_loss", "train_acc", "val_loss", "val_acc"]
    assert a[cols].equals(b[cols])
    c, _ = run(seed=4)
    assert not a[cols].equals(c[cols])


def test_bias_log_reports_the_first_batch_of_each_epoch():
    bias = []
    history, _ = run(epochs=2, callbacks=[BiasLog(log=bias.extend)])
    assert list(history.epoch) == [1, 2]
    assert [(r["step"], r["layer"]) for r in bias] == [(1, "affine1.b"), (1, "affine2.b"),
                                                       (17, "affine1.b"), (17, "affine2.b")]
    for r in bias:
        assert r["sum_check"] < 1e-6 and r["ones_check"] < 1e-6 and r["numeric_rel_err"] < 1e-5
    assert abs(bias[1]["db_sum"]) < 1e-6 and bias[1]["identity_check"] < 1e-6


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_a_diverging_run_stops_naming_the_step_and_the_layer():
    with pytest.raises(NonFiniteError, match=r"step \d+ \(epoch 1\).*affine2\.b"):
        run(lr=1e30, opt=SGD)


@pytest.mark.parametrize("given", [{}, {"rng": None}, {"rng": 0}])
def test_shuffling_without_a_generator_says_what_to_write(given):
    rng = np.random.default_rng(0)
    x, t = blobs(rng)
    model = Sequential(Affine(8, 3, rng=rng))
    with pytest.raises(TypeError, match=r"shuffling needs rng.*default_rng\(seed\).*"
                                        r"shuffle=False keeps the data's order"):
        fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, t), epochs=1,
            batch_size=32, callbacks=[], **given)
    assert not model.layers[0].W.grad.any()  # refused before the first step


class Batches(Callback):
    """Records the size of every training batch."""

    def __init__(self):
        self.sizes = []

    def on_step_end(self, state):
        self.sizes.append(len(state.x))


def batchnorm_mlp(rng):
    return Sequential(Affine(8, 5, rng=rng), BatchNorm(5), ReLU(), Affine(5, 3, rng=rng))


@pytest.mark.parametrize("drop_last, sizes", [(False, [4, 4, 2] * 2), (True, [4, 4] * 2)])
def test_drop_last_leaves_out_each_epochs_incomplete_batch(drop_last, sizes):
    rng = np.random.default_rng(0)
    x, t = blobs(rng, n=10)
    model, batches = Sequential(Affine(8, 3, rng=rng)), Batches()
    history = fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, t), epochs=2,
                  batch_size=4, rng=rng, drop_last=drop_last, callbacks=[batches])
    assert batches.sizes == sizes
    assert list(history.step) == [len(sizes) // 2, len(sizes)]


def test_batchnorm_and_a_last_batch_of_one_are_refused_before_training():
    rng = np.random.default_rng(0)
    x, t = blobs(rng, n=9)
    model = batchnorm_mlp(rng)
    with pytest.raises(ValueError, match=r"batchnorm1: .*at least 2 values per channel.* 9 "
                                         r"training examples in batches of 4 leave a last batch "
                                         r"of 1 each epoch: set drop_last=True to leave it out, "
                                         r"or use a batch_size .* such as 3"):
        fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, t), epochs=1,
            batch_size=4, rng=rng, callbacks=[])
    assert not model.layers[0].W.grad.any()  # refused before the first step
    history = fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, t), epochs=1,
                  batch_size=4, rng=rng, drop_last=True, callbacks=[])
    assert list(history.step) == [2]


def test_drop_last_with_no_full_batch_is_refused():
    rng = np.random.default_rng(0)
    x, t = blobs(rng, n=3)
    model = Sequential(Affine(8, 3, rng=rng))
    with pytest.raises(ValueError, match="3 training examples make no full batch of 4"):
        fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, t), epochs=1,
            batch_size=4, rng=rng, drop_last=True, callbacks=[])
