"""Soak test: SIGKILL train.py at random moments, resume, and compare with an uninterrupted run.

    python benchmarks/kill_and_resume.py              # 30 kills, seed 0
    python benchmarks/kill_and_resume.py -n 100 --seed 7 --rekill 0.3

A small synthetic experiment (several epochs, a few seconds) is trained once without
interruption. Then, N times: `train.py --out DIR` starts in a subprocess and is killed with
SIGKILL after a random delay (seeded) somewhere between its start and its expected end; then
`train.py --resume DIR` runs, itself killed again with probability --rekill (at most --max-kills
kills in all), until it ends. Each trial ends in one of:

    identical   resume finished (exit 0) and metrics.csv (less the seconds column),
                bias_grads.csv and summary.json's figures equal the uninterrupted run's
    refused     resume exited 2 with a message and no traceback (e.g. killed before the first
                checkpoint was written, or before the folder existed)
    MISMATCH    resume finished but a file differs
    CRASH       any other exit code, or a traceback on stderr

Not a test (it takes minutes); prints a table and a summary line, exits 1 on any MISMATCH or
CRASH. Everything is written into a temporary folder (--workdir to keep it).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import framework as F  # noqa: E402  (this worktree's framework, for reading checkpoints)

HANG_GUARD = 600  # seconds a resume may take before it counts as hung

CONFIG = """\
name: soak
data:
  dataset: synthetic
  validation: 500
  batch_size: 50
  train: 8000
  test: 500
  features: 64
  classes: 4
model: [{affine: {out: 64}}, relu, {dropout: {p: 0.1}}, {affine: {out: 32}}, relu,
        {affine: {out: 4}}]
optimizer: {name: adam, lr: 0.003}
training: {epochs: 10, seed: 3, bias_every: 7}
logging: {progress: false, plots: false}
"""
SUMMARY_KEYS = ("status", "epochs", "test_accuracy", "final_train_loss", "best_val_accuracy",
                "best_val_epoch", "test_accuracy_at_best_val", "parameters")


def train_py(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_killed_after(args, delay):
    """Runs train.py ARGS; SIGKILLs it after `delay` seconds unless it ends first.
    Returns (exit code, stderr); a kill is exit code -9."""
    p = train_py(*args)
    try:
        _, err = p.communicate(timeout=delay)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return p.returncode, err


def fingerprint(folder):
    """What must repeat exactly: metrics less the wall-clock column, the bias log, the summary."""
    metrics = [line.rsplit(",", 1)[0] for line in (folder / "metrics.csv").read_text().splitlines()]
    summary = json.loads((folder / "summary.json").read_text())
    return {"metrics.csv": metrics, "bias_grads.csv": (folder / "bias_grads.csv").read_bytes(),
            "summary.json": {k: summary.get(k) for k in SUMMARY_KEYS}}


def checkpoint_epoch(folder):
    """The epoch in folder/checkpoint.npz, or None when there is none (or it is damaged)."""
    try:
        return F.load(folder / "checkpoint.npz")["epoch"]
    except F.CheckpointError:
        return None


def trial(config, folder, baseline, duration, rng, rekill, max_kills):
    """One kill-and-resume trial; returns a row for the table."""
    delay = rng.uniform(0.0, duration)
    code, err = run_killed_after([config, "--out", str(folder)], delay)
    kills, events = int(code == -9), [f"{delay:.2f}s" if code == -9 else f"(ended {code})"]
    at_kill = checkpoint_epoch(folder) if code == -9 else None
    codes, hung = [], False
    while code == -9 and not hung:
        if kills < max_kills and rng.random() < rekill:
            delay = rng.uniform(0.0, duration)
            code, err = run_killed_after(["--resume", str(folder)], delay)
            kills += code == -9
            events.append(f"{delay:.2f}s" if code == -9 else "(ended)")
        else:
            code, err = run_killed_after(["--resume", str(folder)], HANG_GUARD)
            hung = code == -9
        codes.append(code)
    message = " ".join(err.split())
    if hung:
        outcome, detail = "CRASH", f"resume did not end within {HANG_GUARD} s"
    elif "Traceback" in err or code not in (0, 2):
        outcome, detail = "CRASH", f"exit {code}: {message[-150:]}"
    elif code == 2:
        outcome, detail = "refused", message[:150]
    else:
        got = fingerprint(folder)
        differs = [name for name in got if got[name] != baseline[name]]
        outcome = "MISMATCH" if differs else "identical"
        detail = f"differs: {', '.join(differs)}" if differs else ""
    return {"kills": kills, "events": " ".join(events),
            "epoch at kill": "-" if at_kill is None else at_kill,
            "resume exits": " ".join(map(str, codes)) or "-", "outcome": outcome, "detail": detail}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=30, help="trials (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill moments (default 0)")
    p.add_argument("--rekill", type=float, default=0.3,
                   help="probability of killing a resume too (default 0.3)")
    p.add_argument("--max-kills", type=int, default=3, help="kills per trial at most (default 3)")
    p.add_argument("--workdir", help="keep everything here (default: a temporary folder)")
    args = p.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="kill_and_resume-"))
    work.mkdir(parents=True, exist_ok=True)
    config = work / "soak.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    started = time.perf_counter()
    code, err = run_killed_after([str(config), "--out", str(work / "baseline")], HANG_GUARD)
    duration = time.perf_counter() - started
    if code != 0:
        sys.exit(f"the uninterrupted run failed (exit {code}):\n{err}")
    baseline = fingerprint(work / "baseline")
    print(f"uninterrupted run: {duration:.2f} s (start to exit), "
          f"{len(baseline['metrics.csv']) - 1} epochs; kills drawn from [0, {duration:.2f}] s")

    rng = random.Random(args.seed)
    rows = []
    print(f"{'#':>3}  {'kills at (s after start)':<26} {'ckpt@kill':>9}  {'resume exits':<14} "
          f"{'outcome':<10} detail")
    for i in range(1, args.n + 1):
        row = trial(str(config), work / f"run{i:03d}", baseline, duration, rng, args.rekill,
                    args.max_kills)
        rows.append(row)
        print(f"{i:>3}  {row['events']:<26} {row['epoch at kill']!s:>9}  {row['resume exits']:<14} "
              f"{row['outcome']:<10} {row['detail']}", flush=True)

    counts = {k: sum(r["outcome"] == k for r in rows)
              for k in ("identical", "refused", "MISMATCH", "CRASH")}
    print(f"summary: {args.n} trials (seed {args.seed}), {sum(r['kills'] for r in rows)} SIGKILLs: "
          + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if counts["MISMATCH"] or counts["CRASH"] else 0


if __name__ == "__main__":
    sys.exit(main())
