"""Train from a YAML experiment config: `python train.py --help` explains everything.

Thin on purpose: the work is in experiments/ (config, build, run, sweep, cli).
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    try:  # numpy, pandas and the rest take a moment to import: Ctrl-C then is no error
        from experiments.cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(main(default_config=Path(__file__).resolve().parent / "configs" / "mnist_mlp.yaml"))
