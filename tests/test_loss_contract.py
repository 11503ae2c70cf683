"""The loss's contract: fit, evaluate and the bias log call forward, backward, correct and
output_bias and read nothing else; the config chooses the loss by its registered name."""
import numpy as np
import pytest
from test_fit import blobs
from test_train_cli import tiny_config
from user_classes import MeanAbsoluteError

import framework as F
from experiments import config as C
from experiments.cli import main


class OnlyTheContract(F.Loss):
    """SoftmaxCrossEntropy seen through the contract alone: reading anything else of it (labels,
    p, t) is an AttributeError."""

    identity = F.SoftmaxCrossEntropy.identity

    def __init__(self):
        inner = F.SoftmaxCrossEntropy()
        self.forward, self.backward = inner.forward, inner.backward
        self.correct, self.output_bias = inner.correct, inner.output_bias


def train(loss_fn, bias):
    rng = np.random.default_rng(0)
    x, t = blobs(np.random.default_rng(100), n=300)
    model = F.Sequential(F.Affine(8, 16, rng=rng), F.ReLU(), F.Affine(16, 3, rng=rng))
    history = F.fit(model, loss_fn, F.Adam(model.parameters(), lr=1e-2), (x[:200], t[:200]),
                    val=(x[200:250], t[200:250]), epochs=2, batch_size=32, rng=rng,
                    callbacks=[F.BiasLog(log=bias.extend),
                               F.Evaluate({"test": (x[250:], t[250:])})])
    return history


def test_fit_evaluate_and_the_bias_log_need_nothing_but_the_contract():
    bias, bias_through_contract = [], []
    history = train(F.SoftmaxCrossEntropy(), bias)
    through_contract = train(OnlyTheContract(), bias_through_contract)
    columns = ["train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"]
    assert through_contract[columns].equals(history[columns])
    assert bias_through_contract == bias
    assert bias[-1]["identity"] == "db_k = mean p_nk - frac_k" and bias[-1]["identity_check"] < 1e-6


def test_a_loss_without_accuracy_or_identity_trains_without_them(capsys):
    class Regression(F.Loss):
        """Squared error of a single output, which names no class."""

        def forward(self, y, t):
            self.r = y[:, 0] - t
            return float(np.mean(self.r ** 2))

        def backward(self):
            return (2 * self.r / len(self.r))[:, None]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    t = x @ np.array([1, -2, 0.5, 3], np.float32)
    model = F.Sequential(F.Affine(4, 1, rng=rng))
    bias = []
    history = F.fit(model, Regression(), F.SGD(model.parameters(), lr=0.05), (x, t), val=(x, t),
                    epochs=20, batch_size=16, rng=rng,
                    callbacks=[F.BiasLog(log=bias.extend), F.ProgressBar(bar=False)])
    assert "train_acc" not in history and "val_acc" not in history
    assert history.val_loss.iloc[-1] < 0.01 * history.val_loss.iloc[0]
    assert "identity" not in bias[0] and bias[0]["sum_check"] < 1e-6
    assert "acc" not in capsys.readouterr().out
    assert F.evaluate(model, Regression(), x, t)[1] is None
    with pytest.raises(ValueError, match="EarlyStopping watches val_acc, and Regression gives no"):
        F.fit(model, Regression(), F.SGD(model.parameters()), (x, t), val=(x, t), epochs=2,
              batch_size=16, rng=rng, callbacks=[F.EarlyStopping(1)])


def test_the_config_chooses_the_loss_by_its_registered_name(tmp_path):
    with pytest.raises(C.ConfigError, match=r"loss: the text 'softmax_crossentropy' is not "
                                            r"allowed \(did you mean 'softmax_cross_entropy'\?\)"):
        C.load(tiny_config(tmp_path), ["loss=softmax_crossentropy"])


def test_a_loss_of_ones_own_trains_from_a_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--set", "loss=mean_absolute_error",
                 "--set", "training.epochs=1"]) == 0
    printed = capsys.readouterr().out
    assert "output:" not in printed  # it states no identity for the output bias
    assert F.load(out / "checkpoint.npz")["config"]["loss"] == "mean_absolute_error"
    assert F.LOSSES["mean_absolute_error"] is MeanAbsoluteError


def test_help_lists_the_losses(capsys):
    assert main(["--help"]) == 0
    assert f"losses (loss): {', '.join(F.LOSSES)}" in capsys.readouterr().out
