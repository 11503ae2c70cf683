"""A small, fast, readable deep-learning framework on NumPy (imports in data-flow order)."""
from .parameter import Parameter
from .broadcast import sum_to
from .checks import Invalid
from .layers import (Layer, LAYERS, register_layer, ReLU, Sigmoid, Tanh, LeakyReLU, Softmax,
                     Dropout, Affine)
from .conv import Flatten, MaxPool2D, Conv2D
from .batchnorm import BatchNorm
from .losses import Loss, LOSSES, register_loss, MeanSquaredError, SoftmaxCrossEntropy
from .sequential import Sequential
from .optimizers import (Optimizer, OPTIMIZERS, register_optimizer, SGD, Momentum, Nesterov,
                         AdaGrad, RMSprop, Adam, AdamW)
from .schedules import Constant, StepDecay, Cosine, Warmup
from .numeric import gradcheck, numeric_grad
from .checkpoint import save, load, load_model, CheckpointError
from .evaluation import evaluate
from .bias_log import bias_report, format_bias, format_bias_step
from .callbacks import (Callback, NonFiniteError, LRSchedule, StopAfter, RandomShift, Evaluate,
                        EarlyStopping,
                        CheckFinite, ProgressBar, BiasLog, Checkpoint)
from .loop import fit, default_callbacks, steps_per_epoch, check_batches

__all__ = [
    "Parameter", "sum_to", "Invalid",
    "Layer", "LAYERS", "register_layer", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "Softmax",
    "Dropout", "Affine", "Flatten", "MaxPool2D", "Conv2D", "BatchNorm",
    "Loss", "LOSSES", "register_loss", "MeanSquaredError", "SoftmaxCrossEntropy",
    "Sequential",
    "Optimizer", "OPTIMIZERS", "register_optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad",
    "RMSprop", "Adam", "AdamW",
    "Constant", "StepDecay", "Cosine", "Warmup", "gradcheck", "numeric_grad", "save", "load",
    "load_model", "CheckpointError", "evaluate", "bias_report", "format_bias", "format_bias_step",
    "Callback", "NonFiniteError", "LRSchedule", "StopAfter", "RandomShift", "Evaluate",
    "EarlyStopping", "CheckFinite", "ProgressBar", "BiasLog", "Checkpoint", "fit",
    "default_callbacks", "steps_per_epoch", "check_batches",
]
