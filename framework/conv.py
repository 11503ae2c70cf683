"""Layers for images: Flatten, MaxPool2D and Conv2D, on batches of shape (N, C, H, W).

Conv2D works channels-last inside: a padded copy of the input of shape (N, H, W, C) makes each
window's kh*kw*C numbers kh runs of kw*C contiguous ones, cheap to copy into the rows of im2col's
matrix. Its output and input gradient are ordinary C-contiguous (N, C, H, W) arrays: the layers
after it (BatchNorm, ReLU, MaxPool2D) then see one memory layout, which numpy is fastest on.
"""
import math
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .broadcast import reuse, sum_to
from .checks import Either, Integer, OneOf, Optional, Real, Size, checked
from .layers import Layer, register_layer
from .parameter import Parameter


def output_size(size, kernel, stride, padding):
    """How many windows of `kernel` fit along an axis of `size` plus `padding` on both sides."""
    return (size + 2 * padding - kernel) // stride + 1


def checked_images(layer, x, channels=None):
    """x when it is a batch of images (N, C, H, W) with `channels` channels, else a ValueError."""
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        c = "C" if channels is None else channels
        raise ValueError(f"{layer.name or type(layer).__name__}: expects input (N, {c}, H, W), "
                         f"got {x.shape}")
    return x


def image_shape(layer, input_shape):
    """(C, H, W): one example's shape when it is an image, else a ValueError naming the layer."""
    if len(input_shape) != 3:
        raise ValueError(f"{layer.name or type(layer).__name__}: expects images (C, H, W), got "
                         f"examples of shape {tuple(input_shape)}")
    return input_shape


def window_grid(layer, image, kernel, stride, padding=(0, 0)):
    """(H', W'): how many windows fit down and across an (H, W) image; ValueError if none does."""
    out = tuple(map(output_size, image, kernel, stride, padding))
    if min(out) < 1:
        (h, w), (kh, kw), (ph, pw) = image, kernel, padding
        padded = f" (padded: {h + 2 * ph}x{w + 2 * pw})" if ph or pw else ""
        too = {(True, True): "smaller", (True, False): "shorter", (False, True): "narrower"}
        raise ValueError(f"{layer.name or type(layer).__name__}: an input of {h}x{w}{padded} is "
                         f"{too[out[0] < 1, out[1] < 1]} than the {kh}x{kw} kernel")
    return out


def strided(offset, stride, count):
    """The slice of an axis that `count` windows `stride` apart meet at kernel offset `offset`."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


@register_layer
class Flatten(Layer):
    """y = x.reshape(N, -1): (N, C, H, W) -> (N, C*H*W) in (C, H, W) order; dx = dy.reshape(x.shape)

    The step from images to an Affine layer (which flattens too; this says so in a config).
    """

    x_shape = None

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, train=False):
        self.takes(x)
        self.x_shape = x.shape
        return x.reshape(len(x), math.prod(x.shape[1:]))  # not -1: numpy cannot infer it for N = 0

    def backward(self, dy, need_dx=True):
        x_shape = self.needs(self.x_shape)
        return dy.reshape(x_shape) if need_dx else None


def running_max(x, axis, kernel, stride, count):
    """(y, greater): y the max of each of `count` windows of `kernel` entries `stride` apart along
    `axis` of x; greater[k - 1] marks the windows whose entry at offset k beats every earlier one
    (strictly, so a tie stays with the first max). Backward needs only these masks."""
    at = [(slice(None),) * axis + (strided(k, stride, count),) for k in range(kernel)]
    y, greater = x[at[0]], []
    for index in at[1:]:
        greater.append(x[index] > y)
        y = np.maximum(y, x[index], out=y if len(greater) > 1 else None)  # the first makes y
    return (y if greater else y.copy()), greater


def running_max_backward(dy, greater, x_shape, axis, kernel, stride):
    """dx for running_max: each window's dy goes to its argmax, the last offset whose mask is set.
    Walking the offsets backwards, that one takes all of dy and leaves dy - dy = 0 to the rest."""
    count = dy.shape[axis]
    at = [(slice(None),) * axis + (strided(k, stride, count),) for k in range(kernel)]
    overlapping = stride < kernel
    # Only windows side by side (stride == kernel) that reach the end leave no entry of x in no
    # window; a larger stride skips entries between windows, and those must be 0, not memory.
    covered = stride == kernel and count * stride == x_shape[axis]
    dx = (np.empty if covered else np.zeros)(x_shape, dy.dtype)
    rest = dy
    for k in range(kernel - 1, 0, -1):
        if overlapping:  # windows can share an argmax: their gradients add up there
            share = rest * greater[k - 1]
            dx[at[k]] += share
        else:  # each entry of dx is written once: straight into it
            share = np.multiply(rest, greater[k - 1], out=dx[at[k]])
        rest = np.subtract(rest, share, out=dx[at[0]] if k == 1 and not overlapping else None)
    if overlapping:
        dx[at[0]] += rest
    elif kernel == 1:
        dx[at[0]] = rest
    return dx


@register_layer
class MaxPool2D(Layer):
    """y[n, c, i, j] = max of x[n, c] over the kh x kw window at (i*sh, j*sw); dx: dy to its argmax.

    Shapes: x (N, C, H, W), y (N, C, H', W') with H' = (H - kh) // sh + 1, W' likewise.
    The stride defaults to the kernel size (windows side by side); a smaller stride makes
    windows overlap, and an entry of x that is the max of several windows receives the sum of
    their gradients. Ties go to the first max in the window, row by row, as in PyTorch.

    A window's max is taken in two steps: across, the max of each row's kw entries (the first
    max wins a tie), then down, the max of those kh row maxima (the topmost wins). Each step
    reads the data once per kernel offset, and the second reads whole rows.
    """

    short_names: ClassVar = {"kernel_size": "kernel"}
    greater_across = None

    @checked
    def __init__(self, kernel_size: Size(), stride: Optional(Size()) = None, name=None):
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.name = name

    def output_shape(self, input_shape):
        c, h, w = image_shape(self, input_shape)
        return (c, *window_grid(self, (h, w), self.kernel_size, self.stride))

    def forward(self, x, train=False):
        self.takes(x)
        checked_images(self, x)
        oh, ow = window_grid(self, x.shape[2:], self.kernel_size, self.stride)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        rows, self.greater_across = running_max(x, 3, kw, sw, ow)  # (N, C, H, W')
        y, self.greater_down = running_max(rows, 2, kh, sh, oh)
        self.x_shape, self.rows_shape = x.shape, rows.shape
        return y

    def backward(self, dy, need_dx=True):
        greater_across = self.needs(self.greater_across)
        if not need_dx:
            return None
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        drows = running_max_backward(dy, self.greater_down, self.rows_shape, 2, kh, sh)
        return running_max_backward(drows, greater_across, self.x_shape, 3, kw, sw)


@register_layer
class Conv2D(Layer):
    """y[n, o] = b[o] + sum over c, i, j of W[o, c, i, j] * xpad[n, c, i + s*h', j + s*w'].

    Shapes: x (N, C, H, W); W (out, C, kh, kw) (PyTorch's layout); b (out,); y (N, out, H', W')
    with H' = (H + 2 ph - kh) // sh + 1, W' likewise; xpad is x with ph rows and pw columns of
    zeros on each side. As matrices: each window of xpad, read as a row of kh*kw*C numbers, is
    one row of X (N*H'*W', kh*kw*C) (im2col), W is Wm (out, kh*kw*C) with columns in the same
    order, and with dY (N*H'*W', out) the rows of dy:
        y  = X @ Wm.T + b
        dW = dY.T @ X                     (out, kh*kw*C), back to (out, C, kh, kw)
        db = dY.sum(axis=0)               (out,): dy.sum(axis=(0, 2, 3))
        dX = dY @ Wm, then col2im: each row of dX added back to the window it came from.

    kernel_size, stride, padding: a number or a pair (height, width) (in configs `kernel`,
    `pad`); out_channels in configs `out`. init: "he" (std sqrt(2/fan_in), fan_in = C*kh*kw,
    for ReLU), "xavier" (std sqrt(1/fan_in)) or a number, the weights' std; b starts at zero.
    """

    bias = "b"
    from_input: ClassVar = {"in_channels": lambda shape: shape[0]}
    short_names: ClassVar = {"out_channels": "out", "kernel_size": "kernel", "padding": "pad"}
    cols = xpad = YT = dYT = dX = dxpad = None

    @checked
    def __init__(self, in_channels: Integer(1), out_channels: Integer(1), kernel_size: Size(),
                 stride: Size() = 1, padding: Size(0) = 0,
                 init: Either(OneOf("he", "xavier"), Real(0, low_open=True)) = "he",
                 rng=None, dtype=np.float32, name=None):
        kh, kw = kernel_size
        fan_in = in_channels * kh * kw
        std = {"he": math.sqrt(2 / fan_in), "xavier": math.sqrt(1 / fan_in)}.get(init, init)
        rng = rng if rng is not None else np.random.default_rng()
        dtype = np.dtype(dtype).type
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        shapes = self.state_shapes(self.arguments)
        self.W = Parameter(rng.standard_normal(shapes["W"], dtype=dtype) * dtype(std), "W")
        self.b = Parameter(np.zeros(shapes["b"], dtype=dtype), "b")
        self.name = name

    @classmethod
    def state_shapes(cls, arguments):
        out = arguments["out_channels"]
        return {"W": (out, arguments["in_channels"], *arguments["kernel_size"]), "b": (out,)}

    def parameters(self):
        return [self.W, self.b]

    def output_shape(self, input_shape):
        c, h, w = image_shape(self, input_shape)
        if c != self.in_channels:
            raise ValueError(f"{self.name or 'Conv2D'}: expects {self.in_channels} input channels, "
                             f"got input of shape {tuple(input_shape)}")
        return (self.out_channels, *window_grid(self, (h, w), self.kernel_size, self.stride,
                                                self.padding))

    def forward(self, x, train=False):
        self.takes(x)
        n, c, h, w = checked_images(self, x, self.in_channels).shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh, ow = window_grid(self, (h, w), self.kernel_size, self.stride, self.padding)
        # The padded input, channels last. Only its interior is written: a kept one's border is 0.
        xpad = reuse(self.xpad, (n, h + 2 * ph, w + 2 * pw, c), x.dtype)
        if xpad is not self.xpad:
            xpad[...] = 0
        xpad[:, ph:ph + h, pw:pw + w, :] = x.transpose(0, 2, 3, 1)
        # im2col: window (h', w') of image n is row (n, h', w') of X, in (i, j, c) order, so that
        # each row copies kh runs of kw*C contiguous numbers.
        windows = sliding_window_view(xpad, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
        cols = reuse(self.cols, (n, oh, ow, kh, kw, c), x.dtype)
        np.copyto(cols, windows.transpose(0, 1, 2, 4, 5, 3))
        self.Wm = self.W.data.transpose(0, 2, 3, 1).reshape(self.out_channels, -1)
        self.cols, self.xpad, self.x_shape = cols, xpad, x.shape
        X = cols.reshape(n * oh * ow, kh * kw * c)  # not -1: numpy cannot infer it for N = 0
        # Y.T = Wm @ X.T: one row per channel, which the copy into y below reads in long runs.
        YT = np.matmul(self.Wm, X.T, out=reuse(self.YT, (self.out_channels, len(X)), X.dtype))
        self.YT = YT
        y = np.empty((n, self.out_channels, oh, ow), YT.dtype)
        YT_nchw = YT.reshape(self.out_channels, n, oh, ow).transpose(1, 0, 2, 3)
        np.add(YT_nchw, self.b.data[:, None, None], out=y)  # the same b at every example, position
        return y

    def backward(self, dy, need_dx=True):
        cols = self.needs(self.cols)
        n, oh, ow, kh, kw, c = cols.shape
        out = self.out_channels
        X = cols.reshape(n * oh * ow, kh * kw * c)
        # dY.T, (out, N*H'*W'), contiguous: dy's channels first, copied in runs of H'*W' numbers.
        self.dYT = reuse(self.dYT, (out, n, oh, ow), dy.dtype)  # kept as made, so it is reused
        np.copyto(self.dYT, dy.transpose(1, 0, 2, 3))
        dYT = self.dYT.reshape(out, len(X))
        dW = (dYT @ X).reshape(out, kh, kw, c).transpose(0, 3, 1, 2)
        # Into the array W.grad already is, when it fits (see Parameter).
        self.W.grad = reuse(self.W.grad, self.W.data.shape, dW.dtype)
        self.W.grad[...] = dW
        # The conv bias is broadcast over the batch and every position,
        # so db = dY.sum(axis=(0, 2, 3)).
        db = sum_to(dy, (1, out, 1, 1)).reshape(out)
        self.b.grad = db
        if not need_dx:
            return None
        # dX's columns for kernel offset (i, j) are dY @ W[:, :, i, j]: made as kh*kw products
        # into one (kh, kw, N*H'*W', C) array, so that col2im below adds contiguous blocks.
        Wk = np.ascontiguousarray(self.W.data.transpose(2, 3, 0, 1))  # (kh, kw, out, C)
        dX = np.matmul(dYT.T, Wk, out=reuse(self.dX, (kh, kw, len(X), c), X.dtype))
        self.dX = dX
        # col2im: each kernel offset (i, j) met one strided slice of xpad; its columns of dX go
        # back there, for all images and channels at once. Overlapping windows add up.
        (sh, sw), (ph, pw), (_, _, h, w) = self.stride, self.padding, self.x_shape
        dxpad = reuse(self.dxpad, self.xpad.shape, dX.dtype)
        self.dxpad = dxpad
        dxpad[...] = 0
        dX = dX.reshape(kh, kw, n, oh, ow, c)
        for i in range(kh):
            for j in range(kw):
                dxpad[:, strided(i, sh, oh), strided(j, sw, ow), :] += dX[i, j]
        # A copy always (not ascontiguousarray, which returns dxpad itself when it is already in
        # NCHW order, as with one channel and no padding): dxpad is reused by the next backward.
        return dxpad[:, ph:ph + h, pw:pw + w, :].transpose(0, 3, 1, 2).copy()
