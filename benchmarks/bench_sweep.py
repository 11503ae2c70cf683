"""A sweep's throughput on this machine, and that each run's files are the same wherever it ran.

    python benchmarks/bench_sweep.py                          # configs/compare_optimizers.yaml
    python benchmarks/bench_sweep.py --set training.epochs=1  # shorter (any --set of train.py)
    python benchmarks/bench_sweep.py --dask --faults          # also on a local Dask cluster, and
                                                              # Ctrl-C / a killed worker + --resume

The same sweep (train.py CONFIG, each mode into a fresh folder) runs:

    jobs 1, 1 thread      --jobs 1 with OPENBLAS/OMP/MKL_NUM_THREADS=1: one run after another
    jobs 2, 1 thread      --jobs 2, same environment: two runs at once, one thread each
    jobs 1, default       --jobs 1 with the BLAS thread count left to the library (all cores)
    jobs 2, default       --jobs 2 without a thread setting: each worker sets its share (1 here)
    2 plain processes     no sweep: each run's config.yaml as a train.py of its own, two at a
                          time side by side with the library's default threads (what a user does
                          by hand to use both cores)

Each line gives the wall time, runs a minute, the speed-up over "jobs 1, 1 thread" and the peak
memory of all the sweep's processes together (sampled from /proc every 0.2 s: Linux only). Then
each run's files are compared between modes that use one BLAS thread per run: metrics.csv (less
its seconds), bias_grads.csv, steps.csv and the checkpoint's arrays, generator state and history
(less seconds) must be equal. --dask starts a scheduler and two single-threaded workers on
127.0.0.1 (`dask scheduler`, `dask worker`) and runs the sweep through --scheduler. --faults runs
--jobs 2 at 1 thread twice more: SIGINT to train.py once a run has checkpointed its first epoch,
and SIGKILL of the worker training the first run at that moment; each then `--resume`s.

Not a test (minutes). Writes into a temporary folder (--workdir to keep it); the data come from
where train.py finds them ($MNIST_DIR, $MNIST_MIRRORS, the user's cache).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
HANG_GUARD = 3600  # seconds any one sweep may take


def environment(one_thread):
    """This environment with this checkout importable, and one BLAS thread or none set."""
    env = {k: v for k, v in os.environ.items() if k not in THREADS}
    env["PYTHONPATH"] = str(REPO)
    if one_thread:
        env.update({key: "1" for key in THREADS})
    return env


def train_py(args, env):
    """train.py ARGS --quiet, started; stdout dropped, stderr kept."""
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *map(str, args), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


class PeakMemory:
    """The largest sum of resident memory over a process and all its descendants, sampled."""

    def __init__(self):
        self.peak, self.roots, self.stopping = 0, [], threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while not self.stopping.wait(0.2):
            self.peak = max(self.peak, sum(rss(pid) for pid in tree(self.roots)))

    def stop(self):
        self.stopping.set()
        self.thread.join()
        return self.peak


def tree(roots):
    """The pids of `roots` and of every process below them."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def rss(pid):
    """A process's resident memory in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def sweep(config, out, sets, env, *extra):
    """Runs the sweep into `out`; returns (seconds, peak bytes)."""
    memory = PeakMemory()
    started = time.perf_counter()
    p = train_py([config, "--out", out, *sets, *extra], env)
    memory.roots.append(p.pid)
    _, err = p.communicate(timeout=HANG_GUARD)
    seconds = time.perf_counter() - started
    if p.returncode != 0:
        sys.exit(f"{out}: train.py ended with {p.returncode}:\n{err}")
    return seconds, memory.stop()


def plain_processes(runs, out, env, at_once=2):
    """Each run's config.yaml (from `runs`, a sweep's folders) as a train.py of its own, at most
    `at_once` at a time; returns (seconds, peak bytes)."""
    memory = PeakMemory()
    started, pending, running = time.perf_counter(), list(runs), []
    while pending or running:
        while pending and len(running) < at_once:
            run = pending.pop(0)
            p = train_py([run / "config.yaml", "--out", out / run.name], env)
            memory.roots.append(p.pid)
            running.append(p)
        for p in list(running):
            if p.poll() is not None:
                if p.returncode != 0:
                    sys.exit(f"a plain train.py ended with {p.returncode}:\n{p.stderr.read()}")
                running.remove(p)
        time.sleep(0.1)
    return time.perf_counter() - started, memory.stop()


def run_folders(folder):
    return sorted(sub for sub in folder.iterdir() if (sub / "config.yaml").is_file())


def differences(a, b):
    """What differs between two run folders, timing aside ([] when nothing does)."""
    found = []

    def untimed(path):
        return [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]

    if untimed(a / "metrics.csv") != untimed(b / "metrics.csv"):
        found.append("metrics.csv")
    found += [name for name in ("bias_grads.csv", "steps.csv")
              if (a / name).read_bytes() != (b / name).read_bytes()]
    with np.load(a / "checkpoint.npz") as x, np.load(b / "checkpoint.npz") as y:
        if x.files != y.files:
            return found + ["checkpoint members"]
        for key in x.files:
            if key == "json/history":
                same = [[{k: v for k, v in r.items() if k != "seconds"}
                         for r in json.loads(str(z[key]))] for z in (x, y)]
                if same[0] != same[1]:
                    found.append(key)
            elif key != "extra/wall_seconds" and not np.array_equal(x[key], y[key]):
                found.append(f"checkpoint {key}")
    return found


def compare(name, a, b):
    """Prints whether every run of sweep folder b equals a's."""
    diffs = {run.name: differences(run, b / run.name) for run in run_folders(a)}
    bad = {run: d for run, d in diffs.items() if d}
    print(f"  {name}: " + ("every run's files identical" if not bad else "differ: " + "; ".join(
        f"{run}: {', '.join(d[:3])}{f' and {len(d) - 3} more' if len(d) > 3 else ''}"
        for run, d in bad.items())))
    return not bad


def epochs_done(run):
    """Epochs in a run's metrics.csv (0 while there is none)."""
    try:
        return max(0, len((run / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def faulted(config, out, sets, fault):
    """--jobs 2 at one thread, a fault once some run has a completed epoch, then --resume;
    returns a line saying what happened."""
    env = environment(one_thread=True)
    p = train_py([config, "--out", out, "--jobs", "2", *sets], env)
    while not any(epochs_done(run) >= 1 for run in out.glob("*/")):
        if p.poll() is not None:
            sys.exit(f"{out}: the sweep ended before any run completed an epoch")
        time.sleep(0.05)
    if fault == "SIGINT":
        p.send_signal(signal.SIGINT)
    else:  # the worker process holding the first run that has an epoch
        run = next(run for run in sorted(out.glob("*/")) if epochs_done(run) >= 1)
        os.kill(int((run / ".lock").read_text()), signal.SIGKILL)
    _, err = p.communicate(timeout=HANG_GUARD)
    said = " ".join(err.split())
    resumed = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(out),
                              "--quiet"], env=env, capture_output=True, text=True,
                             timeout=HANG_GUARD)
    return (f"{fault}: train.py exit {p.returncode} ({said[:160]}...); --resume exit "
            f"{resumed.returncode}")


def local_dask(folder):
    """A scheduler and two single-threaded workers on 127.0.0.1; returns (address, processes)."""
    env, dask = environment(one_thread=False), [sys.executable, "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": folder, "env": env}
    started = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--no-dashboard", "--scheduler-file", "scheduler.json"], **quiet)]
    while not (folder / "scheduler.json").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    address = json.loads((folder / "scheduler.json").read_text())["address"]
    for _ in range(2):
        started.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--host",
                                         "127.0.0.1", "--no-dashboard"], **quiet))
    from distributed import Client
    with Client(address) as client:
        client.wait_for_workers(2, timeout=300)
    return address, started


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "compare_optimizers.yaml"))
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.add_argument("--dask", action="store_true", help="also through a local Dask cluster")
    p.add_argument("--faults", action="store_true", help="also SIGINT and SIGKILL + --resume")
    p.add_argument("--workdir", help="keep the sweeps' folders here")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    sets = [f"--set={s}" for s in args.sets]
    print(f"{args.config} {' '.join(args.sets)}; {os.cpu_count()} cores; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; folders in {work}")

    # the data fetched and cached, and the files in the page cache, before anything is timed
    sweep(args.config, work / "warm-up", [*sets, "--set=training.max_steps=1"],
          environment(one_thread=False))
    rows = []
    for name, folder, one_thread, jobs in [("jobs 1, 1 thread", "jobs1-1t", True, 1),
                                           ("jobs 2, 1 thread", "jobs2-1t", True, 2),
                                           ("jobs 1, default", "jobs1", False, 1),
                                           ("jobs 2, default", "jobs2", False, 2)]:
        seconds, peak = sweep(args.config, work / folder, sets, environment(one_thread),
                              "--jobs", jobs)
        rows.append((name, seconds, peak))
        print(f"  {name:<18} {seconds:7.1f} s", flush=True)
    runs = run_folders(work / "jobs1")
    seconds, peak = plain_processes(runs, work / "plain", environment(one_thread=False))
    rows.append(("2 plain processes", seconds, peak))

    base = rows[0][1]
    print(f"\n{len(runs)} runs a sweep\n| mode | seconds | runs a minute | speed-up over jobs 1, "
          "1 thread | peak memory, all processes |\n| --- | --- | --- | --- | --- |")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.1f} | {60 * len(runs) / seconds:.2f} | {base / seconds:.2f} | "
              f"{peak / 1e9:.2f} GB |")

    print("\nfiles, timing aside:")
    compare("jobs 2, 1 thread against jobs 1, 1 thread", work / "jobs1-1t", work / "jobs2-1t")
    compare("jobs 2, default (1 thread a worker) against jobs 1, 1 thread", work / "jobs1-1t",
            work / "jobs2")
    compare("jobs 1, default (2 threads) against jobs 1, 1 thread", work / "jobs1-1t",
            work / "jobs1")
    if args.dask:
        address, started = local_dask(work)
        try:
            seconds, _ = sweep(args.config, work / "dask", sets, environment(False),
                               "--scheduler", address)
        finally:
            for process in started:
                process.terminate()
        print(f"  (a local Dask cluster, 2 workers of 1 thread: {seconds:.1f} s)")
        compare("--scheduler (local Dask) against jobs 1, 1 thread", work / "jobs1-1t",
                work / "dask")
    if args.faults:
        for fault in ("SIGINT", "SIGKILL"):
            print("  " + faulted(args.config, work / fault, sets, fault))
            compare(f"{fault} mid-sweep, then --resume, against jobs 1, 1 thread",
                    work / "jobs1-1t", work / fault)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
