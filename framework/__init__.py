"""A small, fast, readable deep-learning framework on NumPy."""
from .bias_log import bias_report, format_bias, format_bias_step
from .broadcast import sum_to
from .callbacks import (
                        BiasLog,
                        Callback,
                        CheckFinite,
                        Checkpoint,
                        EarlyStopping,
                        Evaluate,
                        LRSchedule,
                        NonFiniteError,
                        ProgressBar,
)
from .checkpoint import CheckpointError, load, load_model, save
from .checks import Invalid
from .evaluate import evaluate
from .fit import default_callbacks, fit
from .layers import Affine, Dropout, Layer, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .losses import SoftmaxCrossEntropy
from .numeric import gradcheck, numeric_grad
from .optimizers import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, Optimizer, RMSprop
from .parameter import Parameter
from .registry import layers, optimizers
from .schedules import Constant, Cosine, StepDecay, Warmup
from .sequential import Sequential

__all__ = [
    "Parameter", "sum_to", "Invalid", "Layer", "Affine", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
    "Softmax", "Dropout",
    "SoftmaxCrossEntropy", "Sequential", "Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad",
    "RMSprop", "Adam", "AdamW", "Constant", "StepDecay", "Cosine", "Warmup", "gradcheck", "numeric_grad",
    "save", "load", "load_model", "CheckpointError", "evaluate", "bias_report", "format_bias", "format_bias_step", "Callback",
    "NonFiniteError", "LRSchedule", "Evaluate", "EarlyStopping", "CheckFinite", "ProgressBar",
    "BiasLog", "Checkpoint", "fit", "default_callbacks", "layers", "optimizers",
]
