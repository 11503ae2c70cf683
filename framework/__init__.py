"""A small, fast, readable deep-learning framework on NumPy."""
from .parameter import Parameter
from .layers import Layer, Affine, ReLU, Sigmoid, Softmax, Dropout
from .losses import SoftmaxCrossEntropy
from .sequential import Sequential
from .optimizers import Optimizer, SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam
from .schedules import Constant, StepDecay, Cosine, Warmup
from .gradcheck import gradcheck
from .checkpoint import save, load, CheckpointError
from .bias_log import bias_report, format_bias
from .fit import fit, evaluate, NonFiniteError

__all__ = [
    "Parameter", "Layer", "Affine", "ReLU", "Sigmoid", "Softmax", "Dropout", "SoftmaxCrossEntropy",
    "Sequential", "Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam",
    "Constant", "StepDecay", "Cosine", "Warmup", "gradcheck", "save", "load", "CheckpointError",
    "bias_report", "format_bias", "fit", "evaluate", "NonFiniteError",
]
