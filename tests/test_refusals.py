"""The library refuses what it cannot handle, naming the value, instead of computing another."""
import re

import numpy as np
import pytest

import framework as F


def logits(n=4, c=10):
    return np.random.default_rng(0).standard_normal((n, c)).astype(np.float32)


@pytest.mark.parametrize("t, message", [
    (np.array([0, 1, -1, 2]), r"label -1 in row 2 is not a class index in \[0, 10\)"),
    (np.array([0, 1, 10, 2]), r"label 10 in row 2 is not a class index in \[0, 10\)"),
    (np.zeros((4, 1), np.int64),
     r"targets of shape \(4, 1\) .* do not fit logits of shape \(4, 10\)"),
    (np.array([3]), r"1 labels for 4 rows of logits"),
    (np.eye(9, dtype=np.float32)[[0, 1, 2, 3]], r"targets of shape \(4, 9\)"),
    (np.vstack([np.eye(10, dtype=np.float32)[:3], np.zeros((1, 10), np.float32)]),
     r"target row 3 sums to 0, not 1"),
    (np.full((4, 10), -0.1, np.float32), r"target row 0 has -0.1 at class 0"),
    (np.array([0.0, 1.0, 2.0, 3.0]), r"targets of shape \(4,\) and dtype float64 do not fit"),
])
def test_the_loss_refuses_targets_that_are_not_labels_or_probabilities(t, message):
    with pytest.raises(ValueError, match=message):
        F.SoftmaxCrossEntropy().forward(logits(), t)


def test_soft_targets_follow_pytorchs_cross_entropy():
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    t = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])  # label smoothing
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss_fn = F.SoftmaxCrossEntropy()
    assert loss_fn.forward(z, t) == pytest.approx(-(t * log_p).sum() / 2, rel=1e-14)
    np.testing.assert_allclose(loss_fn.backward(), (np.exp(log_p) - t) / 2, rtol=1e-12)


def test_soft_targets_match_torch_when_installed():
    torch = pytest.importorskip("torch", reason="PyTorch is not a dependency")
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal((5, 4)), rng.dirichlet(np.ones(4), size=5)
    tz = torch.tensor(z, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(tz, torch.tensor(t))
    expected.backward()
    loss_fn = F.SoftmaxCrossEntropy()
    assert loss_fn.forward(z, t) == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(loss_fn.backward(), tz.grad.numpy(), rtol=1e-10)


def test_an_optimizer_refuses_a_parameter_listed_twice():
    p = F.Parameter(np.zeros((2, 2)), name="affine1.W")
    with pytest.raises(ValueError, match=r"affine1\.W is listed twice \(positions 0 and 1\)"):
        F.SGD([p, p], lr=0.1)


@pytest.mark.parametrize("make, message", [
    (lambda p: F.SGD(p, lr=-1), r"SGD: lr: out of range: -1 is not > 0"),
    (lambda p: F.SGD(p, lr=float("nan")), r"SGD: lr: out of range: nan is not > 0"),
    (lambda p: F.Momentum(p, momentum=1.5), r"Momentum: momentum: out of range: 1.5"),
    (lambda p: F.RMSprop(p, alpha=2), r"RMSprop: alpha: out of range: 2"),
    (lambda p: F.Adam(p, eps=-1), r"Adam: eps: out of range: -1 is not > 0"),
    (lambda p: F.Adam(p, weight_decay=-0.1), r"Adam: weight_decay: out of range: -0.1 is not ≥ 0"),
    (lambda p: F.SGD(p, lr=10 ** 400), r"SGD: lr: out of range: a 401-digit integer"),
])
def test_optimizer_settings_out_of_range_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make([F.Parameter(np.zeros(3))])


@pytest.mark.parametrize("init", [-1.0, float("nan"), 0, "glorot"])
def test_affine_refuses_a_bad_init(init):
    with pytest.raises(ValueError,
                       match=r"Affine: init: .* is not allowed; expected one of he, xavier"):
        F.Affine(3, 2, init=init)


def test_backward_before_forward_says_so():
    model = F.Sequential(F.Affine(3, 2), F.ReLU())
    with pytest.raises(RuntimeError, match="relu1: backward called before forward"):
        model.backward(np.ones((1, 2), np.float32))


def test_a_wrong_input_width_names_the_layer_and_the_shapes():
    model = F.Sequential(F.Affine(784, 10))
    with pytest.raises(ValueError, match=r"affine1: expects a batch of 784 inputs each.*got an "
                                         r"array of shape \(2, 783\)"):
        model.forward(np.zeros((2, 783), np.float32))


def test_predict_refuses_unscaled_integer_pixels():
    model = F.Sequential(F.Affine(4, 2), input_shape=(4,))
    with pytest.raises(ValueError, match="floating-point inputs scaled as in training.*got uint8"):
        model.predict(np.zeros(4, np.uint8))


def test_predict_takes_one_example_or_a_batch():
    model = F.Sequential(F.Affine(4, 3, rng=np.random.default_rng(0)), input_shape=(4,))
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    assert isinstance(model.predict(x[0]), int) and model.predict(x[0]) == model.predict(x)[0]
    np.testing.assert_allclose(model.predict_proba(x).sum(axis=1), 1, rtol=1e-6)


def test_inference_does_not_run_dropout():
    model = F.Sequential(F.Affine(4, 3, rng=np.random.default_rng(0)), F.Dropout(0.9),
                         input_shape=(4,))
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(model.forward(x), model.forward(x))  # eval mode by default
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_proba(x))


def test_one_image_in_any_layout_is_one_example_for_an_image_model():
    rng = np.random.default_rng(2)
    model = F.Sequential(F.Flatten(), F.Affine(784, 3, rng=rng), input_shape=(1, 28, 28))
    x = rng.random((4, 1, 28, 28)).astype(np.float32)
    expected = model.predict(x)
    for image in (x[1], x[1].reshape(784), x[1].reshape(28, 28)):
        assert model.predict(image) == expected[1]
    np.testing.assert_array_equal(model.predict(x[1:2]), expected[1:2])  # a batch of one stays one


def test_predict_refuses_channels_last_instead_of_mixing_the_channels():
    rng = np.random.default_rng(3)
    model = F.Sequential(F.Conv2D(3, 2, 3, rng=rng), F.Flatten(), F.Affine(2 * 6 * 6, 4, rng=rng),
                         input_shape=(3, 8, 8))
    x = rng.random((2, 3, 8, 8)).astype(np.float32)
    for last in (x[0].transpose(1, 2, 0), x.transpose(0, 2, 3, 1)):
        with pytest.raises(ValueError, match=re.escape(f"x of shape {last.shape}")):
            model.predict(last)
    assert model.predict(x[0].reshape(-1)) == model.predict(x)[0]  # flat: the same order


def test_a_greyscale_image_is_one_example_for_a_model_of_flat_inputs():
    rng = np.random.default_rng(4)
    model = F.Sequential(F.Affine(784, 3, rng=rng), input_shape=(784,))
    x = rng.random((3, 784)).astype(np.float32)
    expected = model.predict(x)
    for image in (x[2].reshape(28, 28), x[2].reshape(28, 28, 1)):
        assert model.predict(image) == expected[2]
    np.testing.assert_array_equal(model.predict(x.reshape(3, 28, 28)), expected)
    with pytest.raises(ValueError, match=r"shape \(4, 14, 14\)"):
        model.predict(x[0].reshape(4, 14, 14))  # which flattening? not ours to guess


def test_predict_refuses_what_it_would_otherwise_call_class_0():
    model = F.Sequential(F.Affine(4, 3, rng=np.random.default_rng(0)))  # no input_shape
    x = np.ones((3, 4), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"outputs for 1 example\(s\) are NaN or infinite \(the "
                                         r"first: example 1\)"):
        model.predict(x)
    with pytest.raises(ValueError, match=r"x is one number \(shape \(\)\)"):
        model.predict(np.float32(1))
    for size in (0, -1, None, 2.5, True):
        with pytest.raises(ValueError, match=f"batch_size is a number of examples.*{size!r}"):
            model.predict(x, batch_size=size)


def test_fit_over_processes_refuses_a_second_allreduce():
    from framework.parallel import AllReduce

    class TwoProcesses:  # the refusal comes before fit asks the processes anything
        rank, size, local_size = 0, 2, 2

    model = F.Sequential(F.Affine(4, 3, rng=np.random.default_rng(0)))
    before = model.parameters()[0].data.copy()
    with pytest.raises(ValueError, match="callbacks hold an AllReduce.*summed twice"):
        F.fit(model, F.SoftmaxCrossEntropy(), F.SGD(model.parameters(), lr=0.1),
              (np.ones((4, 4), np.float32), np.zeros(4, np.int64)), epochs=1, batch_size=2,
              shuffle=False, callbacks=[AllReduce()], comm=TwoProcesses())
    np.testing.assert_array_equal(model.parameters()[0].data, before)


def test_load_state_dict_refuses_a_negative_running_variance_and_changes_nothing():
    model = F.Sequential(F.Affine(4, 3, rng=np.random.default_rng(0)), F.BatchNorm(3))
    state = {name: array.copy() for name, array in model.state_dict().items()}
    state["batchnorm1.running_var"][1] = -1.0
    state["affine1.W"][...] = 7.0
    with pytest.raises(ValueError, match="batchnorm1.running_var: negative in state"):
        model.load_state_dict(state)
    assert not (model.state_dict()["affine1.W"] == 7.0).any()
