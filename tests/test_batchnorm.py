"""BatchNorm: backward against float64 central differences, running statistics, saving, PyTorch."""
import numpy as np
import pytest

import framework as F
from framework.numeric import layer_gradcheck

C = 3
SHAPES = [(5, C), (2, C, 4, 5)]  # (N, C) and (N, C, H, W), no two sizes alike


def batchnorm(seed=0, momentum=0.1):
    """A BatchNorm with gamma and beta away from 1 and 0, and running statistics away from 0, 1."""
    rng = np.random.default_rng(seed)
    layer = F.BatchNorm(C, momentum=momentum)
    layer.gamma.data = rng.uniform(0.5, 2, C).astype(np.float32)
    layer.beta.data = rng.standard_normal(C).astype(np.float32)
    layer.running_mean[...] = rng.standard_normal(C)
    layer.running_var[...] = rng.uniform(0.5, 2, C)
    return layer


def channel_axes(shape):
    return (0,) if len(shape) == 2 else (0, 2, 3)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_central_differences(shape, train):
    x = np.random.default_rng(1).standard_normal(shape) * 3 + 2
    errors = layer_gradcheck(batchnorm(), x, train)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("shape", SHAPES)
def test_dbeta_and_dgamma_are_sums_over_every_axis_but_the_channel(shape):
    layer = batchnorm()
    rng = np.random.default_rng(2)
    layer.forward(rng.standard_normal(shape), train=True)
    dy = rng.standard_normal(shape)
    layer.backward(dy)
    axes = channel_axes(shape)
    np.testing.assert_allclose(layer.beta.grad, dy.sum(axis=axes), rtol=1e-12)
    x_hat = layer.xc * layer.inv_std
    np.testing.assert_allclose(layer.gamma.grad, (dy * x_hat).sum(axis=axes), rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_normalises_each_channel_with_the_batch_statistics(shape):
    layer = F.BatchNorm(C)
    x = np.random.default_rng(3).standard_normal(shape) * 4 - 1
    y = layer.forward(x, train=True)
    axes = channel_axes(shape)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-12)
    n = x.size // C
    np.testing.assert_allclose(y.var(axis=axes), 1 / (1 + 1e-5 / x.var(axis=axes)), rtol=1e-12)
    assert n > 1


@pytest.mark.parametrize("shape", SHAPES)
def test_running_statistics_after_two_training_batches_by_hand(shape):
    momentum = 0.25
    layer = F.BatchNorm(C, momentum=momentum)
    mean_buffer, var_buffer = layer.running_mean, layer.running_var
    rng = np.random.default_rng(4)
    batches = [rng.standard_normal(shape) * 3 + 1 for _ in range(2)]
    axes = channel_axes(shape)
    n = batches[0].size // C
    mean, var = np.zeros(C), np.ones(C)
    for x in batches:
        layer.forward(x.astype(np.float32), train=True)
        mean = 0.75 * mean + 0.25 * x.mean(axis=axes)
        var = 0.75 * var + 0.25 * x.var(axis=axes) * n / (n - 1)  # unbiased: divided by n - 1
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-5)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-5)
    # Written into the very arrays buffers() and state_dict() hand out, still float32.
    assert layer.running_mean is mean_buffer and layer.running_var is var_buffer
    assert layer.buffers()["running_var"] is var_buffer and var_buffer.dtype == np.float32


@pytest.mark.parametrize("shape", SHAPES)
def test_evaluation_uses_the_running_statistics_and_changes_none(shape):
    layer = batchnorm()
    before = {k: v.copy() for k, v in layer.buffers().items()}
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    y = layer.forward(x, train=False)
    c = (1, C) + (1,) * (len(shape) - 2)
    expected = ((x - layer.running_mean.reshape(c)) / np.sqrt(layer.running_var.reshape(c) + 1e-5)
                * layer.gamma.data.reshape(c) + layer.beta.data.reshape(c))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    for k, v in layer.buffers().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_float32_stays_float32(shape, train):
    layer = batchnorm()
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    y = layer.forward(x, train=train)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(p.data.dtype == p.grad.dtype == np.float32 for p in layer.parameters())
    assert all(b.dtype == np.float32 for b in layer.buffers().values())


def test_wrong_input_and_backward_before_forward_are_refused():
    model = F.Sequential(F.BatchNorm(3))
    with pytest.raises(ValueError, match=r"batchnorm1: expects input \(N, 3\) or \(N, 3, H, W\), "
                                         r"got \(8, 4, 5, 5\)"):
        model.forward(np.zeros((8, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"got \(8, 3, 5\)"):
        model.forward(np.zeros((8, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"at least 2 values per channel; a batch of 1 example of "
                                         r"shape \(3,\) has 1"):
        model.forward(np.zeros((1, 3), np.float32), train=True)
    with pytest.raises(RuntimeError, match="batchnorm1: backward called before forward"):
        model.backward(np.zeros((8, 3), np.float32))


@pytest.mark.parametrize("kwargs, name", [
    ({"momentum": 1.5}, "momentum"), ({"momentum": -0.1}, "momentum"), ({"eps": 0}, "eps"),
    ({"num_features": 0}, "num_features"),
])
def test_settings_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=f"BatchNorm: {name}"):
        F.BatchNorm(**{"num_features": 3, **kwargs})


def test_a_saved_and_loaded_model_gives_bit_identical_eval_outputs(tmp_path):
    def model(seed):
        rng = np.random.default_rng(seed)
        return F.Sequential(F.Affine(6, 5, rng=rng), F.BatchNorm(5), F.ReLU(),
                            F.Affine(5, 4, rng=rng))

    rng = np.random.default_rng(7)
    x, t = rng.standard_normal((16, 6)).astype(np.float32), rng.integers(0, 4, 16)
    trained, loss_fn = model(0), F.SoftmaxCrossEntropy()
    optimizer = F.Adam(trained.parameters(), lr=1e-2)
    for _ in range(5):
        loss_fn.forward(trained.forward(x, train=True), t)
        trained.backward(loss_fn.backward())
        optimizer.step()
    state = trained.state_dict()
    assert {"batchnorm1.running_mean", "batchnorm1.running_var"} <= state.keys()
    assert state["batchnorm1.running_mean"].any()
    F.save(tmp_path / "model.npz", trained)
    loaded = model(1)
    loaded.load_state_dict(F.load(tmp_path / "model.npz")["model"])
    np.testing.assert_array_equal(loaded.forward(x), trained.forward(x))
    np.testing.assert_array_equal(loaded.layers[1].running_var, trained.layers[1].running_var)


# --- against PyTorch -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch_in_training_running_statistics_and_evaluation(shape):
    torch = pytest.importorskip("torch")
    ours = batchnorm(momentum=0.3)
    theirs = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(C, momentum=0.3)
    with torch.no_grad():
        theirs.weight[...] = torch.tensor(ours.gamma.data)
        theirs.bias[...] = torch.tensor(ours.beta.data)
        theirs.running_mean[...] = torch.tensor(ours.running_mean)
        theirs.running_var[...] = torch.tensor(ours.running_var)
    rng = np.random.default_rng(8)
    for train in (True, True, False):
        theirs.train(train)
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        y, xt = ours.forward(x, train=train), torch.tensor(x, requires_grad=True)
        dx = ours.backward(dy)
        theirs.zero_grad()
        yt = theirs(xt)
        yt.backward(torch.tensor(dy))
        pairs = [(y, yt), (dx, xt.grad), (ours.gamma.grad, theirs.weight.grad),
                 (ours.beta.grad, theirs.bias.grad), (ours.running_mean, theirs.running_mean),
                 (ours.running_var, theirs.running_var)]
        for a, b in pairs:
            np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-5, atol=1e-5)
