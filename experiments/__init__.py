"""Config-driven experiments: YAML configs, run folders, resume, sweeps; `python train.py` is
their CLI."""
