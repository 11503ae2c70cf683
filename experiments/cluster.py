"""--scheduler ADDRESS: a sweep's runs on the workers of a Dask distributed cluster (`dask
scheduler` and `dask worker`s, or dask-jobqueue's SLURMCluster on an HPC system).

Dask schedules; each run is the job workers.run_job, which the workers import from this project
(installed or on their PYTHONPATH, the same version). Workers write each run into the sweep's
folder, so it must be on a filesystem they share with this process, under the same path: that,
and that every worker can read the data, is checked before any run starts. Dask's workers start
with one BLAS thread each (its nanny sets OMP_NUM_THREADS and the rest), as `--jobs N` gives
each run; a killed worker's run is started again by Dask on another worker, from its checkpoint.
"""
import os
import socket
from pathlib import Path

from .yamlfile import ConfigError

TIMEOUT = 20  # seconds to reach the scheduler
PROJECT = Path(__file__).resolve().parents[1]


class Cluster:
    """The executor of a sweep on a Dask cluster: every run is handed to the scheduler at once
    (an adaptive cluster grows with them), and Dask decides where and when each runs."""

    def __init__(self, address, log):
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError(f"--scheduler {address}: Dask's distributed is not installed here: "
                              "python -m pip install -e \".[cluster]\"") from None
        try:
            self.client = Client(address, timeout=TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise ConfigError(f"--scheduler {address}: no Dask scheduler answered there ({e}). "
                              "Start one with `dask scheduler` and workers with `dask worker "
                              "ADDRESS`, and give the address it prints.") from None
        self.executor = self.client.get_executor(pure=False)  # each job runs, even alike ones
        self.address, self.log = address, log
        self.at_once = None  # all: Dask queues them

    def check(self, folder, datas):
        """Asks every worker now connected whether it can write into `folder` and load each of
        `datas` (the runs' data settings); refuses with what a worker lacks."""
        workers = self.client.scheduler_info()["workers"]
        if not workers:
            self.log(f"Dask scheduler {self.address}: no workers yet; the runs wait for them")
            return
        try:  # one task through the scheduler, which unpickles what it hands out
            self.client.submit(probe, str(folder), [], pure=False).result(timeout=TIMEOUT * 3)
        except Exception as e:  # a scheduler or worker that cannot import this project
            raise ConfigError(f"--scheduler {self.address}: a task could not run there "
                              f"({' '.join(str(e).split())}). The scheduler and every worker need "
                              "this project importable, the same version: `python -m pip install "
                              f"-e .` in their environment, or PYTHONPATH={PROJECT}.") from None
        answers = self.client.run(probe, str(folder), datas)
        wrong = {worker: answer for worker, answer in answers.items() if answer is not None}
        if wrong:
            worker, answer = next(iter(wrong.items()))
            raise ConfigError(f"--scheduler {self.address}: worker {worker} {answer}"
                              + (f" (and {len(wrong) - 1} more workers)" if len(wrong) > 1 else "")
                              + ". The workers need the sweep's folder on a filesystem they "
                                "share with this machine, under the same path, and the data "
                                "(--data-dir) where they can read it.")
        threads = sum(worker["nthreads"] for worker in workers.values())
        self.log(f"Dask scheduler {self.address}: {len(workers)} workers, {threads} runs at once "
                 "(a run a worker thread); each can write the sweep's folder and read the data")

    def submit(self, fn, job):
        return self.executor.submit(fn, job)

    def close(self):
        self.executor.shutdown(wait=False)
        self.client.close()


def probe(folder, datas):
    """On a worker: None when it can write into `folder` and load each dataset of `datas`, else
    what it cannot do."""
    import numpy as np

    from .config import dataset
    try:
        path = Path(folder) / f".probe-{socket.gethostname()}-{os.getpid()}"
        path.write_text("ok", encoding="ascii")
        path.unlink()
    except OSError as e:
        return f"cannot write into {folder}: {e.strerror or e}"
    for data in datas:
        try:
            dataset(data).load(np.random.default_rng(0), log=lambda message: None)
        except Exception as e:  # whatever stops it stops the runs there: say it now
            return f"cannot load the data ({data['dataset']}): {e}"
    return None
