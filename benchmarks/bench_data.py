"""Benchmark load_mnist: cold (empty folder) and warm (cached) load time and peak memory.

Each measurement runs in a fresh Python subprocess so that imports, caches and
memory peaks of one run cannot flatter the next. Peak memory is the process's
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (whole-process resident set, so it
includes the interpreter and numpy); the "import only" row shows that baseline.

    python benchmarks/bench_data.py [--mirror DIR] [--runs 5] [--json FILE]

The four MNIST .gz files are copied from --mirror, else from where load_mnist finds them
($MNIST_DIR, the folders among $MNIST_MIRRORS, ~/.cache/npdl/mnist), else from
../shared/data/mnist beside this repository (this project's own machines).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from datasets import IDX_DATASETS
from datasets.mnist import holds, local_folders

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"

# Runs in the child. argv[1]: data folder, or "" to only import; argv[2]: mirror folder.
CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from datasets import load_mnist
import_seconds = time.perf_counter() - t0
seconds = 0.0
if sys.argv[1]:
    t0 = time.perf_counter()
    (x, t), (xt, tt) = load_mnist(sys.argv[1], mirrors=[sys.argv[2]], progress=False)
    seconds = time.perf_counter() - t0
    assert x.shape == (60000, 784) and tt.shape == (10000,)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# ru_maxrss is in bytes on macOS, KiB elsewhere
peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
print(json.dumps({"seconds": seconds, "import_seconds": import_seconds, "peak_mb": peak_mb}))
"""


def measure(root: str, mirror: Path) -> dict:
    """Run one load_mnist in a fresh interpreter and return its time and peak RSS."""
    out = subprocess.run([sys.executable, "-c", CHILD, root, str(mirror)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def places() -> list[Path]:
    """Where the MNIST files are looked for without --mirror: where load_mnist finds them, then
    ../shared/data/mnist."""
    return list(dict.fromkeys([*local_folders(IDX_DATASETS["mnist"]), SHARED]))


def main() -> None:
    """Parse arguments, run the measurements, print a table and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path,
                        help="local folder with the four MNIST .gz files (default: the first of "
                             "$MNIST_DIR, $MNIST_MIRRORS's folders, ~/.cache/npdl/mnist, "
                             "../shared/data/mnist that holds them)")
    parser.add_argument("--runs", type=int, default=5, help="warm runs; the median is reported")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    looked = [args.mirror] if args.mirror else places()
    args.mirror = next((place for place in looked if holds(place, IDX_DATASETS["mnist"])), None)
    if args.mirror is None:
        parser.error(f"no MNIST files (all four .gz at their published sizes) in "
                     f"{', '.join(map(str, looked))}; run `python train.py` once to download "
                     "them, or pass --mirror DIR")
    print(f"MNIST files from {args.mirror}")

    with tempfile.TemporaryDirectory(prefix="bench_mnist_") as root:
        baseline = measure("", args.mirror)
        cold = measure(root, args.mirror)
        warm = [measure(root, args.mirror) for _ in range(args.runs)]

    figures = {
        "import_seconds": baseline["import_seconds"],
        "import_only_peak_mb": baseline["peak_mb"],
        "cold_seconds": cold["seconds"],
        "cold_peak_mb": cold["peak_mb"],
        "warm_median_seconds": statistics.median(w["seconds"] for w in warm),
        "warm_peak_mb": max(w["peak_mb"] for w in warm),
        "warm_runs": args.runs,
        "memory_measure": "ru_maxrss of a fresh subprocess per measurement",
    }
    print(f"{'load_mnist()':<30}{'seconds':>10}{'peak RSS MB':>14}")
    print(f"{'import datasets (only)':<30}{baseline['import_seconds']:>10.3f}"
          f"{baseline['peak_mb']:>14.0f}")
    print(f"{'cold (verify+parse+cache)':<30}{cold['seconds']:>10.3f}{cold['peak_mb']:>14.0f}")
    print(f"{f'warm (median of {args.runs})':<30}{figures['warm_median_seconds']:>10.3f}"
          f"{figures['warm_peak_mb']:>14.0f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
