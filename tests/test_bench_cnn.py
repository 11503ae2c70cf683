"""benchmarks/bench_cnn.py on a network with a layer it has no PyTorch twin for: timed on our
side alone, saying so (it refused with a ValueError). Seconds: one tiny repetition."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_layer_without_a_pytorch_twin_is_timed_on_our_side_alone():
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_cnn.py"), "--set", "model.2=sigmoid",
         "--batch-sizes", "4", "--reps", "1", "--block", "0.01", "--warmup", "0.01",
         "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "no PyTorch twin here for Sigmoid: timing our side alone" in out
    rows = [line.split()[1] for line in out.splitlines() if line.split()[:1] == ["4"]]
    assert rows == ["floor", "framework"]
