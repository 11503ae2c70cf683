"""Config-driven experiments: YAML configs, run folders, resume, sweeps; `python train.py` is their CLI.

Kept free of numpy imports on purpose: train.py imports this package first, so that
BLAS settings can be made before numpy loads. The submodules import numpy themselves.
"""
