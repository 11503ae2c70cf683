"""Where a sweep's runs run: here, one after another (--jobs 1); in worker processes on this
machine, up to N at once (--jobs N); or on the workers of a Dask cluster (--scheduler ADDRESS).

Each run is one job, run_job(job) -> its summary, with plain data in and out, so every place
runs it the same way. This module imports nothing heavy at the top: a worker process imports
it first and sets its BLAS thread count before numpy loads.
"""
import _thread
import os
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

# What BLAS libraries read for their thread count when they load (OpenBLAS, an OpenMP build,
# MKL): a worker sets them in its own environment; a user's own setting is kept everywhere.
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
STOP_FILE = ".stop"  # in a sweep's folder: each run there ends at its next step (Ctrl-C)


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def users_blas_threads():
    """{variable: value} of the BLAS thread settings in the user's environment."""
    return {key: os.environ[key] for key in BLAS_VARIABLES if key in os.environ}


def blas_plan(jobs):
    """(threads per run to set in each worker, or None to leave the environment as it is; a
    sentence saying which for the sweep's log)."""
    given = users_blas_threads()
    if given:
        settings = ", ".join(f"{key}={value}" for key, value in given.items())
        return None, f"BLAS threads: {settings}, from your environment (kept in every worker)"
    if jobs == 1:
        return None, f"BLAS threads: the library's default ({cores()} cores)"
    threads = max(1, cores() // jobs)
    return threads, (f"BLAS threads: {threads} per run ({jobs} runs at once on {cores()} cores; "
                     f"each worker sets {'/'.join(BLAS_VARIABLES)} for itself)")


def start_worker(threads, sweep):
    """The first thing a worker process runs, before numpy is imported there: its BLAS thread
    count (unless the user set one). Ctrl-C is ignored until a run starts (run_job), so it
    never breaks the worker between runs; and a watcher stops the run if the sweep's process
    dies, so a sweep killed outright leaves no runs training on. `sweep` is the sweep's process id,
    given by the sweep itself: one killed while this worker started is already gone here, and
    getppid() would name the process that adopted the worker."""
    global in_worker
    in_worker = True
    if threads is not None and not users_blas_threads():
        for key in BLAS_VARIABLES:
            os.environ[key] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=watch_parent, args=(sweep,), daemon=True).start()


in_worker = False  # True in a worker process (start_worker)
in_run = threading.Event()  # set while a worker runs a job


def watch_parent(parent):
    """Once this worker's parent, the sweep, is gone: stops the run as Ctrl-C would (it saves
    its last completed epoch), then ends the worker, which would otherwise wait for its next
    job forever."""
    while os.getppid() == parent:
        time.sleep(1)
    _thread.interrupt_main()  # a SIGINT: does nothing between runs, where it is ignored
    while in_run.is_set():
        time.sleep(0.1)
    os._exit(1)


def interrupt_once(signum, frame):
    """Ctrl-C in a worker's run: the run stops and saves (KeyboardInterrupt); another Ctrl-C
    while it saves is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_job(job):
    """One sweep run, wherever it runs: continued from its checkpoint when it has one; returns
    its summary, or for a run that could not finish one with status "failed" or "interrupted"
    and the reason."""
    from .run import Interrupted, run_one  # numpy loads here: after start_worker in a worker
    from .summary import summarize

    folder = Path(job["folder"])
    if os.path.exists(job["stop"]):  # queued (on a cluster) when the sweep was stopped
        return {**summarize([], "not started")}
    try:
        if in_worker:  # Ctrl-C on the terminal reaches the workers too: each run saves and stops
            signal.signal(signal.SIGINT, interrupt_once)
            in_run.set()
        return run_one(job["config"], folder, (folder / "checkpoint.npz").exists(), job["origin"],
                       stop=job["stop"])
    except Interrupted as e:
        return {**summarize([], "interrupted"), "last_good_epoch": e.epoch,
                "unwritten": e.unwritten if e.complete else None}
    except KeyboardInterrupt:  # before the run's first checkpoint (loading its data, say)
        return {**summarize([], "interrupted"), "last_good_epoch": None, "unwritten": None}
    except Exception as e:  # a failed run is a result: the sweep goes on
        return failed(e)
    finally:
        if in_worker:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            in_run.clear()


def failed(error):
    """The summary of a run that an error stopped: its reason in one paragraph, and for an
    unexpected error (a bug) the traceback, which the sweep's log keeps."""
    from datasets import DownloadError, IDXError

    from .summary import summarize
    from .yamlfile import ConfigError
    summary = summarize([], "failed")
    if isinstance(error, ConfigError):
        return {**summary, "error": str(error)}
    if isinstance(error, (DownloadError, IDXError)):
        return {**summary, "error": f"cannot get the data: {error}"}
    if isinstance(error, MemoryError):
        return {**summary, "error": "out of memory: the run needed more than the machine gave"}
    if isinstance(error, OSError):
        return {**summary, "error": f"{error.strerror or error}: {error.filename}"
                if error.filename else str(error)}
    return {**summary, "error": f"{type(error).__name__}: {error} (a bug: the traceback is in the "
                                "sweep's log.txt; please report it)",
            "traceback": "".join(traceback.format_exception(error))}


class Here:
    """--jobs 1: each run in this process, one after another (submit runs it at once)."""

    at_once = 1

    def check(self, folder, datas):
        pass  # each run loads its data here, one after another

    def submit(self, fn, job):
        future = Future()
        future.set_result(fn(job))  # run_job returns whatever happened, Ctrl-C included
        return future

    def close(self):
        pass


class Processes:
    """--jobs N: the runs in N worker processes, each taking one run after another.

    Each worker is a pool of its own, so a worker that dies (killed, out of memory) fails only
    the run it had, and a new worker takes its place; one pool shared by all would break as a
    whole and take the other runs with it. A worker keeps nothing of one run for the next (each
    run's arrays are its own, its seed is in its config): a worker that ran others before gives
    a run the files a fresh one gives. Workers are spawned, not forked, so numpy loads in each
    after start_worker has set its thread count; they start while this process checks the data,
    and load the modules every run needs meanwhile (warm_up).
    """

    def __init__(self, jobs, threads):
        self.at_once, self.threads = jobs, threads
        self.workers = []  # [pool, the future of its last job, whether that job is a run]

    def check(self, folder, datas):
        """Each dataset of `datas` loaded once here (downloaded when missing, parsed into its
        cache), so that N workers starting together find it ready rather than all fetch it."""
        import numpy as np

        from .config import dataset
        for _ in range(self.at_once):
            self.start_worker(warm_up, None, run=False)
        for data in datas:
            dataset(data).load(np.random.default_rng(0), log=lambda message: None)

    def submit(self, fn, job):
        for worker in [w for w in self.workers if not w[2] or w[1].done()]:
            try:
                worker[1:] = worker[0].submit(fn, job), True
                return worker[1]
            except BrokenProcessPool:  # it died (killed, out of memory): a new one takes its place
                worker[0].shutdown()
                self.workers.remove(worker)
        return self.start_worker(fn, job)

    def start_worker(self, fn, job, run=True):
        """A new worker process, given its first job; the job's future."""
        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=start_worker,
                                   initargs=(self.threads, os.getpid()))
        self.workers.append([pool, pool.submit(fn, job), run])
        return self.workers[-1][1]

    def close(self):
        """Ends the workers (their runs are over), waiting for each to exit. A pool still ending
        when the interpreter exits races with concurrent.futures' exit hook, which may write to
        the pipe the pool is closing: an OSError traceback after the sweep's last words."""
        ending = [threading.Thread(target=pool.shutdown) for pool, _, _ in self.workers]
        for thread in ending:  # all at once: each waits for a process to exit
            thread.start()
        for thread in ending:
            thread.join()
        self.workers = []


def warm_up(_):
    """A new worker's first job: the modules of a run, imported while nothing else waits."""
    from . import plots, run  # noqa: F401
    plots.pyplot(None)


def run_all(executor, jobs, stop_file, on_start, on_done, tick):
    """Runs every job on `executor`, at most executor.at_once at a time, in order; calls
    on_start(job) and on_done(job, summary) as they go, and tick() every half second. Ctrl-C
    (here, or in a run of this process) stops them all: the stop file asks every running run to
    end at its next step and save, no new run starts, and every run is waited for. Returns the
    jobs never started."""
    pending, running, stopping = list(jobs), {}, False
    at_once = executor.at_once or len(jobs)  # None: all of them (a cluster queues them)
    while running or (pending and not stopping):
        try:
            while pending and not stopping and len(running) < at_once:
                on_start(pending[0])
                future = executor.submit(run_job, pending[0])
                running[future] = pending.pop(0)
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            tick()
        except KeyboardInterrupt:
            stopping = ask_to_stop(stop_file, stopping)
            continue
        for future in done:
            job = running.pop(future)
            summary = outcome(future)
            if summary["status"] == "interrupted":  # a run stopped alone: the others stop too
                stopping = ask_to_stop(stop_file, stopping)
            on_done(job, summary)
    return pending


def ask_to_stop(stop_file, already):
    """Writes the stop file (once); returns True."""
    if not already:
        Path(stop_file).touch()
    return True


def outcome(future):
    """A finished job's summary; a worker that died without one fails its run, saying so."""
    from .summary import summarize
    try:
        return future.result()
    except BrokenProcessPool:
        return {**summarize([], "failed"),
                "error": "its worker process died (killed by a signal such as SIGKILL, or out "
                         "of memory); --resume runs it again, from its last checkpoint if it "
                         "saved one"}
    except Exception as e:  # e.g. a Dask worker lost with the run
        reason = " ".join(str(e).split())  # one paragraph: Dask's messages span lines
        return {**summarize([], "failed"), "error": f"{type(e).__name__}: {reason}"}



def executor_for(sweep, runs, log):
    """Where the `runs` runs left of a sweep (its resolved `sweep:` settings) run: a Dask
    cluster when sweep.scheduler names one, else here (jobs 1) or in worker processes, no more
    of them than runs (each with the BLAS threads of sweep.jobs, whatever is left to run)."""
    if sweep["scheduler"]:
        from .cluster import Cluster  # distributed is an optional extra
        return Cluster(sweep["scheduler"], log)
    threads, note = blas_plan(sweep["jobs"])
    log(note)
    return Here() if sweep["jobs"] == 1 else Processes(min(sweep["jobs"], runs), threads)
