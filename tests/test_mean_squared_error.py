"""MeanSquaredError: PyTorch's mse_loss (the mean over every entry), its gradient against
central differences, its identity for the output bias, its accuracy and refusals, from Python
and from a config."""
import numpy as np
import pytest
from test_fit import blobs
from test_train_cli import tiny_config

import framework as F
from experiments.cli import main
from framework.numeric import numeric_grad, relative_error

N, K = 5, 3  # distinct sizes, so a transposed or mis-summed gradient shows


def outputs_and_targets(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, K)), rng.standard_normal((N, K)), rng.integers(0, K, N)


def test_the_loss_is_the_mean_over_every_entry():
    y, t, labels = outputs_and_targets()
    loss_fn = F.MeanSquaredError()
    assert loss_fn.forward(y, t) == pytest.approx(np.sum((y - t) ** 2) / (N * K), rel=1e-12)
    assert loss_fn.forward(y, labels) == pytest.approx(
        np.sum((y - np.eye(K)[labels]) ** 2) / (N * K), rel=1e-12)


@pytest.mark.parametrize("targets", ["numbers", "labels"])
def test_backward_matches_central_differences(targets):
    y, t, labels = outputs_and_targets(1)
    t = t if targets == "numbers" else labels
    loss_fn = F.MeanSquaredError()
    loss_fn.forward(y, t)
    dy = loss_fn.backward()
    numeric = numeric_grad(lambda: loss_fn.forward(y, t), y, np.arange(y.size), 1e-6)
    assert dy.shape == y.shape and relative_error(dy.ravel(), numeric) < 1e-8


def test_gradcheck_of_a_model_trained_with_it():
    rng = np.random.default_rng(2)
    model = F.Sequential(F.Affine(4, 6, rng=rng), F.Tanh(), F.Affine(6, K, rng=rng))
    x = rng.standard_normal((N, 4))
    for t in (rng.standard_normal((N, K)), rng.integers(0, K, N)):
        errors = F.gradcheck(model, F.MeanSquaredError(), x, t)
        assert max(errors.values()) < 1e-7, errors


def test_float32_stays_float32():
    y, t, _ = outputs_and_targets(3)
    loss_fn = F.MeanSquaredError()
    loss_fn.forward(y.astype(np.float32), t)
    assert loss_fn.backward().dtype == np.float32


def test_same_as_pytorch_mse_loss():
    torch = pytest.importorskip("torch")
    y, t, labels = outputs_and_targets(4)
    for target in (t, labels):
        yt = torch.tensor(y, requires_grad=True)
        dense = np.eye(K)[target] if target.ndim == 1 else target
        expected = torch.nn.functional.mse_loss(yt, torch.tensor(dense))
        expected.backward()
        loss_fn = F.MeanSquaredError()
        assert loss_fn.forward(y, target) == pytest.approx(expected.item(), rel=1e-12)
        np.testing.assert_allclose(loss_fn.backward(), yt.grad.numpy(), rtol=1e-12)


def test_the_output_bias_gradient_is_the_mean_residual_summed_over_the_batch():
    rng = np.random.default_rng(5)
    model = F.Sequential(F.Affine(4, K, rng=rng))
    x, t = rng.standard_normal((N, 4)), rng.standard_normal((N, K))
    loss_fn = F.MeanSquaredError()
    y = model.forward(x)
    loss_fn.forward(y, t)
    model.backward(loss_fn.backward())
    db = model.layers[-1].b.grad
    np.testing.assert_allclose(db, 2 / K * (y - t).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(loss_fn.output_bias(), db, rtol=1e-12)


def test_shares_of_a_batch_add_up_to_the_batch():
    y, t, labels = outputs_and_targets(6)
    for target in (t, labels):
        whole, first, second = (F.MeanSquaredError() for _ in range(3))
        loss = whole.forward(y, target)
        parts = first.forward(y[:2], target[:2], total=N) + second.forward(y[2:], target[2:],
                                                                            total=N)
        assert parts == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(np.concatenate([first.backward(), second.backward()]),
                                   whole.backward(), rtol=1e-12)
        np.testing.assert_allclose(first.output_bias() + second.output_bias(),
                                   whole.output_bias(), rtol=1e-12)


def test_accuracy_counts_the_largest_output_at_the_target_class():
    y = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.0, 0.0, 1.0]])
    loss_fn = F.MeanSquaredError()
    loss_fn.forward(y, np.array([0, 1, 2, 2]))
    assert loss_fn.correct() == 3
    loss_fn.forward(y, np.eye(3)[[0, 0, 0, 2]])  # one-hot rows
    assert loss_fn.correct() == 3
    loss_fn.forward(y[:, :1], np.ones((4, 1)))  # one output: a regression, no classes
    assert loss_fn.correct() is None


@pytest.mark.parametrize("t, message", [
    (np.array([0, 1, 3, 0, 1]), r"label 3 in row 2 is not a class index in \[0, 3\)"),
    (np.array([0, 1]), r"2 labels for 5 rows of outputs"),
    (np.zeros(5), r"targets of shape \(5,\) and dtype float64 do not fit outputs of shape "
                  r"\(5, 3\)"),
    (np.where(np.eye(5, 3) > 0, np.nan, 0.0), r"target row 0 has nan at column 0"),
], ids=["label-out-of-range", "too-few-labels", "float-vector", "nan"])
def test_targets_that_do_not_fit_are_refused_by_value(t, message):
    y, _, _ = outputs_and_targets()
    with pytest.raises(ValueError, match="MeanSquaredError: " + message):
        F.MeanSquaredError().forward(y, t)


def test_trains_from_python_and_the_bias_log_checks_its_identity():
    rng = np.random.default_rng(0)
    x, t = blobs(np.random.default_rng(100))
    model = F.Sequential(F.Affine(8, 16, rng=rng), F.ReLU(), F.Affine(16, 3, rng=rng))
    bias = []
    history = F.fit(model, F.MeanSquaredError(), F.Adam(model.parameters(), lr=3e-2),
                    (x[:500], t[:500]), val=(x[500:], t[500:]), epochs=3, batch_size=32, rng=rng,
                    callbacks=[F.BiasLog(log=bias.extend)])
    assert history.val_acc.iloc[-1] > 0.95
    output = [r for r in bias if r["layer"] == "affine2.b"]
    assert output and all(r["identity_check"] < 1e-6 for r in output)
    assert "output: db_k = 2/K mean_n (y_nk - t_nk) (diff" in F.format_bias(output[0])


def test_trains_from_a_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--set", "loss=mean_squared_error",
                 "--set", "training.epochs=1"]) == 0
    assert "output: db_k = 2/K mean_n (y_nk - t_nk) (diff" in capsys.readouterr().out
    assert F.load(out / "checkpoint.npz")["config"]["loss"] == "mean_squared_error"
    assert F.LOSSES["mean_squared_error"] is F.MeanSquaredError
