"""Batch normalisation: each channel brought to mean 0 and variance 1, then scaled and shifted."""
import math
from typing import ClassVar

import numpy as np

from .broadcast import sum_to
from .checks import Integer, Real, checked
from .layers import Layer, register_layer
from .parameter import Parameter


@register_layer
class BatchNorm(Layer):
    """y = gamma * x_hat + beta,  x_hat = (x - mean) / sqrt(var + eps), for each channel c (axis 1).

    Shapes: x and y (N, C) or (N, C, H, W); gamma, beta, running_mean, running_var (C,). Each
    channel has n = N (or N*H*W) values in a batch, over which every mean and sum below runs.
    Training: mean and var of the batch, var biased (divided by n), and, as in PyTorch,
        running_mean <- (1 - momentum) * running_mean + momentum * mean
        running_var  <- (1 - momentum) * running_var  + momentum * var * n / (n - 1)
    (unbiased there). Evaluation (train=False): mean and var are the running ones.
    Backward, with s = gamma / sqrt(var + eps):
        dbeta  = sum of dy                        (C,): beta is broadcast over the n values
        dgamma = sum of dy * x_hat                (C,)
        dx     = s * (dy - (dbeta + x_hat * dgamma) / n)     in training
        dx     = s * dy                                      in evaluation
    In training mean and var depend on x too, which adds the terms divided by n; in evaluation
    they are constants and y is an affine map of x, channel by channel.
    Split over processes (self.comm, framework.comm): n, the sums for mean, then those for var
    (of each value's distance from the whole batch's mean, as one process computes it: no
    E[x²] - mean² cancellation), and in backward the sums dbeta and dgamma that dx needs are
    each added over the processes, so every process normalises with the whole batch's
    statistics. gamma.grad and beta.grad stay this process's shares, summed with the other
    gradients (framework.parallel.AllReduce).
    num_features: C; momentum in [0, 1]; eps > 0 keeps the division finite.
    """

    bias = "beta"
    from_input: ClassVar = {"num_features": lambda shape: shape[0]}
    nonnegative: ClassVar = ("running_var",)
    xc = None

    @checked
    def __init__(self, num_features: Integer(1), momentum: Real(0, 1) = 0.1,
                 eps: Real(0, low_open=True) = 1e-5, dtype=np.float32, name=None):
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        shapes = self.state_shapes(self.arguments)
        self.gamma = Parameter(np.ones(shapes["gamma"], dtype), "gamma")
        self.beta = Parameter(np.zeros(shapes["beta"], dtype), "beta")
        self.running_mean = np.zeros(shapes["running_mean"], dtype)
        self.running_var = np.ones(shapes["running_var"], dtype)
        self.name = name

    @classmethod
    def state_shapes(cls, arguments):
        channels = (arguments["num_features"],)
        return {"gamma": channels, "beta": channels, "running_mean": channels,
                "running_var": channels}

    def parameters(self):
        return [self.gamma, self.beta]

    def buffers(self):
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def output_shape(self, input_shape):
        if len(input_shape) not in (1, 3) or input_shape[0] != self.num_features:
            c = self.num_features
            raise ValueError(f"{self.name or 'BatchNorm'}: expects examples of shape ({c},) or "
                             f"({c}, H, W), got {tuple(input_shape)}")
        return input_shape

    def check_training_batch(self, batch, example_shape):
        """A variance needs two values per channel: a batch of one example of shape (C,) (or
        (C, 1, 1)) has one, and is refused; an image of more positions has enough alone."""
        values = batch * math.prod(example_shape[1:])
        if values < 2:
            raise ValueError(f"{self.name or 'BatchNorm'}: training takes each channel's variance "
                             f"over the batch, which needs at least 2 values per channel; a batch "
                             f"of {batch} example{'s' * (batch != 1)} of shape "
                             f"{tuple(example_shape)} has {values}")

    def channel_shape(self, x):
        """(1, C) or (1, C, 1, 1): a per-channel array broadcast against x."""
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            c = self.num_features
            raise ValueError(f"{self.name or 'BatchNorm'}: expects input (N, {c}) or "
                             f"(N, {c}, H, W), got {x.shape}")
        return (1, self.num_features) + (1,) * (x.ndim - 2)

    def forward(self, x, train=False):
        self.takes(x)
        shape = self.channel_shape(x)
        if train:
            # The whole batch, over the processes: its statistics are the batch's, not a share's.
            batch = int(self.comm.allreduce(np.array([len(x)]))[0])
            self.check_training_batch(batch, x.shape[1:])
            n = batch * math.prod(x.shape[2:])  # values per channel
            # np.array: for a batch of one row, sum_to(x) is a view of x, which a sum in place
            # over the processes would change.
            mean = self.comm.allreduce(np.array(sum_to(x, shape))) / n
            xc = x - mean
            var = self.comm.allreduce(channel_sum(xc, xc)) / n
            # In place: state_dict and a loaded checkpoint hold these very arrays.
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mean.reshape(-1)
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * n / (n - 1) * var
        else:
            xc = x - self.running_mean.reshape(shape)
            var = self.running_var
        inv_std = 1 / np.sqrt(var.reshape(shape) + self.eps)
        # x_hat = xc * inv_std is never made: y and the gradients fold inv_std into per-channel
        # factors, which saves passes over the data.
        self.xc, self.inv_std, self.train = xc, inv_std, train
        self.n = n if train else None
        y = xc * (self.gamma.data.reshape(shape) * inv_std)
        y += self.beta.data.reshape(shape)
        return y

    def backward(self, dy, need_dx=True):
        xc = self.needs(self.xc)
        shape = (1, self.num_features) + (1,) * (dy.ndim - 2)
        inv_std = self.inv_std
        dbeta = sum_to(dy, shape)  # beta is broadcast over the batch (and positions): a sum
        dgamma = channel_sum(dy, xc).reshape(shape) * inv_std  # sum of dy * x_hat
        self.beta.grad, self.gamma.grad = dbeta.reshape(-1), dgamma.reshape(-1)
        if not need_dx:
            return None
        s = self.gamma.data.reshape(shape) * inv_std
        if not self.train:
            return dy * s
        n = self.n
        if self.comm.size > 1:  # dx needs the whole batch's sums; the grads keep this share
            dbeta, dgamma = self.comm.allreduce(np.stack([dbeta, dgamma]))
        dx = xc * (inv_std * dgamma / n)  # x_hat * dgamma / n
        dx += dbeta / n
        np.subtract(dy, dx, out=dx)
        dx *= s
        return dx


def channel_sum(a, b):
    """sum of a * b over every axis but axis 1, the channels: (C,), with no a * b array made."""
    shape = (*a.shape[:2], math.prod(a.shape[2:]))  # not -1: numpy cannot infer it for N = 0
    return np.einsum("ncp,ncp->c", a.reshape(shape), b.reshape(shape))
