"""Conv2D, MaxPool2D and Flatten: backward against float64 central differences and PyTorch."""
import numpy as np
import pytest

import framework as F
from framework.numeric import layer_gradcheck

# N, C, out, H, W all different, and kernels, strides and paddings that differ between height
# and width, so that a mix-up of two axes changes a shape or a value.
N, C, OUT, H, W = 2, 3, 4, 7, 6
CONV_CASES = [  # kernel, stride, padding
    (3, 1, 0),
    (3, 2, 1),
    ((3, 2), (2, 1), (1, 0)),
    ((2, 3), (1, 2), (0, 2)),
    (1, 1, 0),
    (1, 2, 0),                # stride above the kernel: entries of x in no window
    ((2, 1), (3, 2), (1, 0)),  # the same with padding, down; across, the last column skipped
    (2, 3, 2),                # padded on both axes, windows apart
]
POOL_CASES = [  # kernel, stride
    (2, None),         # side by side
    (3, 2),            # overlapping
    ((2, 3), (1, 2)),  # overlapping down, side by side across
    ((1, 2), (2, 2)),  # one row a window, every other row skipped
    ((3, 1), (3, 1)),  # side by side, the last row of 7 in no window
]


def axis_geometry(size, kernel, stride):
    """The class of one axis: how stride compares with kernel, whether the last window ends at
    the last entry, and whether count * stride == size (with stride > kernel, the case where
    MaxPool2D once left the entries between windows uninitialised)."""
    count = (size - kernel) // stride + 1
    relation = "<" if stride < kernel else "=" if stride == kernel else ">"
    return relation, (size - kernel) % stride == 0, count * stride == size


# Every (kernel, stride) up to 3 and 4 on axes of 8 and 9: each axis class (stride below, at and
# above the kernel, with and without exact coverage) occurs, down and across, in both orders.
AXES = [(size, k, s) for k in (1, 2, 3) for s in (1, 2, 3, 4) for size in (8, 9)]
POOL_GEOMETRIES = [(AXES[i], AXES[(7 * i + 3) % len(AXES)]) for i in range(len(AXES))]


def conv(kernel, stride, padding, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    layer = F.Conv2D(C, OUT, kernel, stride=stride, padding=padding, rng=rng, dtype=dtype)
    layer.b.data = rng.standard_normal(OUT).astype(dtype)  # not zero, to be general
    return layer


@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES)
def test_conv_backward_matches_central_differences(kernel, stride, padding):
    x = np.random.default_rng(1).standard_normal((N, C, H, W))
    errors = layer_gradcheck(conv(kernel, stride, padding), x)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("kernel, stride", POOL_CASES)
def test_maxpool_backward_matches_central_differences(kernel, stride):
    x = np.random.default_rng(2).standard_normal((N, C, H, W))  # no ties: max is differentiable
    errors = layer_gradcheck(F.MaxPool2D(kernel, stride), x)
    assert errors["x"] < 1e-7, errors


def test_flatten_backward_matches_central_differences():
    x = np.random.default_rng(3).standard_normal((N, C, H, W))
    assert layer_gradcheck(F.Flatten(), x)["x"] < 1e-9


def test_a_small_cnn_passes_gradcheck():
    """The layers after a Conv2D receive its channels-last output: the chain must still be right."""
    rng = np.random.default_rng(4)
    model = F.Sequential(F.Conv2D(2, 3, 3, padding=1, rng=rng), F.BatchNorm(3), F.ReLU(),
                         F.MaxPool2D(3, 2), F.Conv2D(3, 5, 2, stride=2, rng=rng), F.Flatten(),
                         F.Affine(5, 4, rng=rng))
    x = rng.standard_normal((3, 2, 7, 7)).astype(np.float32)
    loss_fn = F.SoftmaxCrossEntropy()
    model.forward(x, train=True)  # running statistics that are not 0 and 1
    errors = F.gradcheck(model, loss_fn, x, np.array([0, 3, 1]))
    assert max(errors.values()) < 1e-6, errors


def test_conv_bias_gradient_is_dy_summed_over_batch_and_positions():
    layer = conv(3, 2, 1, dtype=np.float64)
    rng = np.random.default_rng(5)
    y = layer.forward(rng.standard_normal((N, C, H, W)))
    dy = rng.standard_normal(y.shape)
    layer.backward(dy)
    np.testing.assert_allclose(layer.b.grad, dy.sum(axis=(0, 2, 3)), rtol=1e-13)


@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_backward_is_the_same_for_either_memory_layout_of_dy(channels_last):
    layer = conv(3, 2, 1, dtype=np.float64)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((N, C, H, W))
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    expected = layer.backward(dy)
    W_grad = layer.W.grad.copy()
    if channels_last:
        dy = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    layer.forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2))
    np.testing.assert_allclose(layer.backward(dy), expected, rtol=1e-13)
    np.testing.assert_allclose(layer.W.grad, W_grad, rtol=1e-13)


@pytest.mark.parametrize("make", [lambda: conv(3, 2, 1), lambda: F.MaxPool2D(3, 2), F.Flatten])
def test_float32_stays_float32(make):
    layer = make()
    x = np.random.default_rng(7).standard_normal((N, C, H, W)).astype(np.float32)
    y = layer.forward(x, train=True)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(p.data.dtype == p.grad.dtype == np.float32 for p in layer.parameters())


@pytest.mark.parametrize("make", [lambda: conv(3, 1, 1), lambda: F.MaxPool2D(2), F.Flatten])
def test_backward_leaves_the_incoming_gradient_untouched_and_outputs_are_fresh(make):
    layer = make()
    rng = np.random.default_rng(8)
    y = layer.forward(rng.standard_normal((N, C, H, W)).astype(np.float32))
    kept = y.copy()
    dy = rng.standard_normal(y.shape).astype(np.float32)
    before = dy.copy()
    dx = layer.backward(dy)
    layer.forward(rng.standard_normal((N, C, H, W)).astype(np.float32))  # reuses work arrays
    layer.backward(rng.standard_normal(y.shape).astype(np.float32))
    np.testing.assert_array_equal(dy, before)
    np.testing.assert_array_equal(y, kept)
    assert dx is not None


def test_conv_need_dx_false_fills_grads_and_returns_none():
    layer = conv(3, 1, 1)
    y = layer.forward(np.ones((N, C, H, W), np.float32))
    assert layer.backward(np.ones_like(y), need_dx=False) is None
    np.testing.assert_array_equal(layer.b.grad, np.full(OUT, N * H * W, np.float32))


def test_maxpool_ties_go_to_the_first_max_row_by_row():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 0] = x[0, 0, 1, 2] = 5
    pool = F.MaxPool2D(3, 1)
    pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 2, 2), np.float32))
    # The two windows starting in column 0 hold both maxima and pick (1, 0), the first;
    # the two starting in column 1 hold only (1, 2).
    expected = np.zeros((4, 4), np.float32)
    expected[1, 0] = expected[1, 2] = 2
    np.testing.assert_array_equal(dx[0, 0], expected)
    zeros = np.zeros((1, 1, 3, 3), np.float32)
    pool.forward(zeros)  # all equal: the top-left entry of each window
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1), np.float32))[0, 0],
                                  [[1, 0, 0], [0, 0, 0], [0, 0, 0]])


def pool_by_windows(x, dy, kernel, stride):
    """MaxPool2D's y and dx the slow plain way: np.argmax over each window's entries, row by row,
    which returns the first max, and dy added to that entry of dx."""
    (kh, kw), (sh, sw) = kernel, stride
    y, dx = np.zeros(dy.shape), np.zeros(x.shape)
    for n, c, i, j in np.ndindex(*dy.shape):
        window = x[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
        a, b = np.unravel_index(np.argmax(window), window.shape)
        y[n, c, i, j] = window[a, b]
        dx[n, c, i * sh + a, j * sw + b] += dy[n, c, i, j]
    return y, dx


def test_the_pool_geometries_cover_every_class_down_and_across():
    wanted = {(relation, ends) for relation in "<=>" for ends in (False, True)}
    for axis in (0, 1):
        found = {axis_geometry(*geometry[axis]) for geometry in POOL_GEOMETRIES}
        assert {(relation, ends) for relation, ends, _ in found} == wanted, axis
        assert (">", False, True) in found, axis


@pytest.mark.parametrize("down, across", POOL_GEOMETRIES)
def test_maxpool_every_geometry_equals_a_window_by_window_argmax(down, across):
    (h, kh, sh), (w, kw, sw) = down, across
    rng = np.random.default_rng(h * 100 + w)
    x = rng.integers(0, 3, (2, 3, h, w)).astype(np.float32)  # many ties
    pool = F.MaxPool2D((kh, kw), (sh, sw))
    y = pool.forward(x)
    dy = rng.integers(1, 100, y.shape).astype(np.float32)  # integers: sums in any order agree
    dx = pool.backward(dy)
    y_expected, dx_expected = pool_by_windows(x, dy, pool.kernel_size, pool.stride)
    np.testing.assert_array_equal(y, y_expected)
    np.testing.assert_array_equal(dx, dx_expected)  # 0 wherever an entry is in no window


@pytest.mark.parametrize("down, across", POOL_GEOMETRIES)
def test_maxpool_every_geometry_matches_central_differences(down, across):
    (h, kh, sh), (w, kw, sw) = down, across
    x = np.random.default_rng(h * 100 + w).standard_normal((2, 3, h, w))  # no ties
    errors = layer_gradcheck(F.MaxPool2D((kh, kw), (sh, sw)), x)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("kernel, stride", POOL_CASES)
def test_maxpool_equals_a_window_by_window_argmax_ties_included(kernel, stride):
    rng = np.random.default_rng(12)
    x = rng.integers(0, 3, (N, C, H, W)).astype(np.float32)  # many ties
    pool = F.MaxPool2D(kernel, stride)
    y = pool.forward(x)
    dy = rng.integers(1, 100, y.shape).astype(np.float32)  # integers: sums in any order agree
    dx = pool.backward(dy)
    y_expected, dx_expected = pool_by_windows(x, dy, pool.kernel_size, pool.stride)
    np.testing.assert_array_equal(y, y_expected)
    np.testing.assert_array_equal(dx, dx_expected)


def test_maxpool_overlapping_windows_add_their_gradients():
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = 1  # the centre is the max of all four 3x3 windows (stride 2)
    pool = F.MaxPool2D(3, 2)
    np.testing.assert_array_equal(pool.forward(x), np.ones((1, 1, 2, 2)))
    dx = pool.backward(np.array([[[[1, 2], [3, 4]]]], np.float32))
    assert dx[0, 0, 2, 2] == 10 and dx.sum() == 10


@pytest.mark.parametrize("make, shape, expected", [
    (lambda: F.Conv2D(3, 8, 3, padding=1), (3, 28, 28), (8, 28, 28)),
    (lambda: F.Conv2D(3, 8, (3, 5), stride=2), (3, 28, 29), (8, 13, 13)),
    (lambda: F.MaxPool2D(2), (8, 28, 27), (8, 14, 13)),
    (lambda: F.MaxPool2D(3, 2), (8, 28, 28), (8, 13, 13)),
    (F.Flatten, (8, 7, 7), (392,)),
])
def test_output_shape_matches_forward(make, shape, expected):
    layer = make()
    assert layer.output_shape(shape) == expected
    assert layer.forward(np.zeros((2, *shape), np.float32)).shape == (2, *expected)


def test_conv_error_names_the_layer_and_the_shapes():
    model = F.Sequential(F.Conv2D(3, 4, 3))
    expected = r"conv2d1: expects input \(N, 3, H, W\), got \(8, 1, 28, 28\)"
    with pytest.raises(ValueError, match=expected):
        model.forward(np.zeros((8, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"expects input \(N, 3, H, W\), got \(8, 3, 28\)"):
        model.forward(np.zeros((8, 3, 28), np.float32))


@pytest.mark.parametrize("layer, message", [
    (F.Conv2D(1, 2, 5, padding=1), r"2x4 \(padded: 4x6\) is shorter than the 5x5 kernel"),
    (F.MaxPool2D(5), "2x4 is smaller than the 5x5 kernel"),
    (F.MaxPool2D((2, 5)), "2x4 is narrower than the 2x5 kernel"),
])
def test_an_input_smaller_than_the_kernel_is_refused(layer, message):
    with pytest.raises(ValueError, match=message):
        layer.forward(np.zeros((1, 1, 2, 4), np.float32))
    with pytest.raises(ValueError, match=message):
        layer.output_shape((1, 2, 4))


@pytest.mark.parametrize("layer", [F.Conv2D(1, 2, 3), F.MaxPool2D(2), F.Flatten()])
def test_backward_before_forward_is_refused(layer):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((1, 2, 3, 3), np.float32))


@pytest.mark.parametrize("init, std", [("he", np.sqrt(2 / 288)), ("xavier", np.sqrt(1 / 288)),
                                       (0.05, 0.05)])
def test_conv_init_uses_fan_in_of_channels_times_kernel_area(init, std):
    layer = F.Conv2D(32, 256, 3, init=init, rng=np.random.default_rng(9))
    assert layer.W.data.shape == (256, 32, 3, 3) and layer.W.data.dtype == np.float32
    assert abs(layer.W.data.std() / std - 1) < 0.02
    assert not layer.b.data.any()


def test_settings_and_config_names():
    assert F.LAYERS["conv2d"] is F.Conv2D and F.LAYERS["maxpool2d"] is F.MaxPool2D
    assert F.Conv2D.from_input["in_channels"]((3, 28, 28)) == 3
    with pytest.raises(ValueError, match="Conv2D: padding"):
        F.Conv2D(1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match="MaxPool2D: kernel_size"):
        F.MaxPool2D(0)


# --- against PyTorch -----------------------------------------------------------------------

@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES)
def test_conv_matches_torch(kernel, stride, padding):
    torch = pytest.importorskip("torch")
    layer = conv(kernel, stride, padding)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    Wt = torch.tensor(layer.W.data, requires_grad=True)
    bt = torch.tensor(layer.b.data, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, Wt, bt, stride=stride, padding=padding)
    yt.backward(torch.tensor(dy))
    for ours, theirs in [(y, yt), (dx, xt.grad), (layer.W.grad, Wt.grad), (layer.b.grad, bt.grad)]:
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("down, across", POOL_GEOMETRIES)
def test_maxpool_every_geometry_matches_torch(down, across):
    torch = pytest.importorskip("torch")
    (h, kh, sh), (w, kw, sw) = down, across
    x = np.random.default_rng(h * 100 + w).standard_normal((2, 3, h, w)).astype(np.float32)
    pool = F.MaxPool2D((kh, kw), (sh, sw))
    y = pool.forward(x)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx = pool.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, (kh, kw), (sh, sw))
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel, stride", POOL_CASES)
def test_maxpool_matches_torch_ties_included(kernel, stride):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, (N, C, H, W)).astype(np.float32)  # many ties
    pool = F.MaxPool2D(kernel, stride)
    y = pool.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = pool.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, kernel, stride)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-6, atol=1e-6)
