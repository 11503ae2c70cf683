"""What a person follows of a sweep: a line per finished run, with its result and folder, and on a
terminal one progress line beneath them (runs done of all, running now, elapsed, estimate).

A run's own messages (its model, its bias checks, its epochs) go to its log.txt only; these lines
go to the sweep's log.txt too.
"""
from tqdm import tqdm


class SweepConsole:
    """The sweep's lines, through the sweep's Log; `labels` {run index: short name}, `total`
    runs, of which `done` were done before (a resumed sweep); progress: None for a progress line
    only on a terminal, or True / False."""

    def __init__(self, log, labels, total, done, progress):
        self.log, self.labels, self.total, self.done = log, labels, total, done
        self.running = {}
        self.bar = tqdm(total=total, initial=done, leave=False, unit="run",
                        disable=None if progress is None else not progress or not log.screen,
                        bar_format="sweep: {n}/{total} runs done{postfix} [{elapsed} elapsed, "
                                   "about {remaining} left]")
        self.show()

    def started(self, job):
        self.running[job["index"]] = job
        self.show()

    def finished(self, job, summary):
        """The run's line: `done 3/6  lr=0.01  test 97.85%  best val 97.90% (epoch 4)  52.1 s
        runs/sweep/optimizer.lr=0.01` (or why it has no result)."""
        self.running.pop(job["index"], None)
        status, label = summary["status"], self.labels[job["index"]]
        if status in ("interrupted", "not started"):  # the sweep says once what Ctrl-C left
            self.show()
            return
        self.done += 1
        counted = f"{self.done}/{self.total}"
        if status in ("failed", "diverged"):
            self.log(f"{status} {counted}  {label}: {summary['error']}  ({job['shown']})")
        else:
            best = (f"  best val {summary['best_val_accuracy']:.2%} (epoch "
                    f"{summary['best_val_epoch']})" if summary["best_val_accuracy"] is not None
                    else "")
            test = (f"  test {summary['test_accuracy']:.2%}" if summary["test_accuracy"]
                    is not None else "")
            note = "" if status == "finished" else f"  ({status})"
            self.log(f"done {counted}  {label}{test}{best}  {summary['train_seconds']:.1f} s"
                     f"{note}  {job['shown']}")
        self.bar.update(1)
        self.show()

    def tick(self):
        """Every half second while runs go on: the elapsed time moves."""
        self.bar.refresh()

    def show(self):
        names = ", ".join(self.labels[i] for i in sorted(self.running))
        self.bar.set_postfix_str(f"{len(self.running)} running" + (f" ({names})" if names else ""),
                                 refresh=True)

    def close(self):
        self.bar.close()
