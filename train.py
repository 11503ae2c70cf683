"""Train from a YAML experiment config: `python train.py --help` explains everything.

Thin on purpose: the work is in experiments/ (config, build, run, sweep, cli).
"""
import sys

# OpenBLAS reads OPENBLAS_CORETYPE once, when numpy is first imported, so this comes first:
# experiments/__init__.py and experiments/blas.py import no numpy; everything below does.
from experiments.blas import choose_openblas_coretype

BLAS_MESSAGE = choose_openblas_coretype()

from pathlib import Path  # noqa: E402  (after the BLAS choice, like every import below)

from experiments.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(default_config=Path(__file__).resolve().parent / "configs" / "mnist_mlp.yaml",
                  preamble=[BLAS_MESSAGE]))
