"""Train from a YAML experiment config: `python train.py --help` explains everything.

Thin on purpose: the work is in experiments/ (config, build, run, sweep, cli).
"""
import sys
from pathlib import Path

from experiments.cli import main

if __name__ == "__main__":
    sys.exit(main(default_config=Path(__file__).resolve().parent / "configs" / "mnist_mlp.yaml"))
