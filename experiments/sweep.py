"""Sweeps: every combination of a config's `sweep.grid`, or configurations drawn at random, each
run in its own sub-folder (at once in worker processes or on a cluster: workers.py), then ranked.

    sweep:
      grid:                                  # key path -> values; all combinations run
        optimizer.name: [sgd, adam]
      with:                                  # settings that go with one value
        optimizer.name=adam: {optimizer.lr: 0.001}

    sweep:
      random:                                # `runs` configurations drawn with `seed`
        runs: 20
        seed: 0
        space:
          optimizer.lr: {log_uniform: [1.0e-4, 1.0e-1]}
          optimizer.momentum: {uniform: [0.8, 0.99]}
          optimizer.name: {choice: [sgd, momentum]}
"""
import copy
import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from framework.files import atomic_write

from .config import ConfigError, dump, key_path, parse_yaml, resolve, set_path
from .console import SweepConsole
from .folder import Log, save_config
from .plots import plot_comparison
from .run import Interrupted, blas_line
from .workers import STOP_FILE, executor_for, run_all


def combinations(config, user, source, folder=None):
    """[(label, chosen values, resolved config)] for every run of the sweep, all checked up front:
    every combination of sweep.grid, or the configurations sweep.random draws (those written in
    `folder`, a sweep being resumed, when it holds them).

    Each run's values are set into the user's own mapping (`user`, --set overrides applied) and
    resolved from there, as if the user had written them: switching optimizer.name then brings
    that optimizer's defaults, not the settings resolved for another one.
    """
    sweep = config["sweep"]
    if sweep["random"] is not None:
        search = sweep["random"]
        drawn = (read_draws(folder, search) if folder is not None and (folder / DRAWS).exists()
                 else random_draws(search))
        width = len(str(len(drawn)))
        labels = [",".join([f"{i:0{width}d}"] + [f"{key}={shown(value)}"
                                                 for key, value in draw.items()])
                  for i, draw in enumerate(drawn, 1)]
        values_of = {key: spec["choice"] for key, spec in search["space"].items()
                     if "choice" in spec}
        where_values = "sweep.random.space's choices"
    else:
        grid = values_of = sweep["grid"]
        where_values = "sweep.grid"
        for key, values in grid.items():
            repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
            if repeated is not None:
                raise ConfigError(f"{source}: sweep.grid.{key}: lists {repeated!r} more than once "
                                  "(as written or as the same number); each combination runs "
                                  "once.")
        count = 1
        for values in grid.values():
            count *= len(values)
        if count > MAX_RUNS:
            raise ConfigError(f"{source}: sweep.grid: {count:,} combinations; "
                              f"a sweep runs at most {MAX_RUNS}.")
        drawn = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
        labels = [",".join(f"{key}={value}" for key, value in chosen.items()) for chosen in drawn]

    matches = []
    for key, settings in sweep["with"].items():
        path, _, text = key.partition("=")
        value = parse_yaml(text, f"{source}: sweep.with")
        if path not in values_of or value not in values_of[path]:
            raise ConfigError(f"{source}: sweep.with: '{key}' never happens: {where_values} has "
                              + (f"{path}: {values_of[path]}" if path in values_of
                                 else f"no key '{path}' (it has {', '.join(values_of) or 'none'})")
                              + ".")
        matches.append((path, value, settings))
    runs, mistakes = [], {}  # each mistake once, with the first combination that makes it
    for label, chosen in zip(labels, drawn):
        settings = dict(chosen)
        for path, value, more in matches:
            if chosen[path] == value:
                settings.update(more)
        combined = copy.deepcopy(user)
        combined["sweep"] = None
        where = f"{source}: sweep combination {label}"
        try:
            for path, value in settings.items():
                set_path(combined, key_path(path), value, where)
            runs.append((label, chosen, resolve(combined, where)))
        except ConfigError as e:
            for line in str(e).split("\n"):
                mistakes.setdefault(line.removeprefix(f"{where}: "), line)
    if mistakes:
        raise ConfigError("\n".join(mistakes.values()))
    return runs


def shown(value):
    """A value as a run's label or the table shows it: a float to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else value


def random_draws(search):
    """sweep.random's configurations: `runs` mappings {key path: value}, drawn run by run, key by
    key, from a generator of their own seeded with `seed` (apart from the runs' training.seed)."""
    rng = np.random.default_rng(search["seed"])
    drawn = []
    for _ in range(search["runs"]):
        draw = {}
        for key, spec in search["space"].items():
            (kind, values), = spec.items()
            if kind == "choice":
                draw[key] = values[int(rng.integers(len(values)))]
            elif kind == "uniform":
                draw[key] = float(rng.uniform(*values))
            else:  # log_uniform; exp(log(high)) may round past high
                low, high = values
                draw[key] = min(max(math.exp(rng.uniform(math.log(low), math.log(high))), low),
                                high)
        drawn.append(draw)
    return drawn


DRAWS = "draws.yaml"  # in a random sweep's folder: its draws, written before any run starts
MAX_DRAWS_BYTES = 4 * 1024 * 1024  # 1000 runs of a few settings each take a few hundred kB


def write_draws(folder, search, drawn):
    """folder/draws.yaml: sweep.random and what it drew, so that --resume runs the same runs."""
    with atomic_write(folder / DRAWS, "w", encoding="utf-8") as f:
        f.write(f"# what sweep.random drew (seed {search['seed']}), before any run started; "
                "--resume runs these\n" + dump({"random": search, "draws": drawn}))


def read_draws(folder, search):
    """The draws in folder/draws.yaml, checked (an untrusted file): made by this sweep.random,
    one mapping of its keys a run, every value one it could draw."""
    path = folder / DRAWS
    where = f"--resume {folder}: {path}"
    with open(path, "rb") as f:
        data = f.read(MAX_DRAWS_BYTES + 1)
    if len(data) > MAX_DRAWS_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_DRAWS_BYTES // 1024 ** 2} MB; it is not the "
                          "file a sweep wrote.")
    try:
        saved = parse_yaml(data.decode("utf-8"), str(path))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; it is not the file a sweep wrote.") from None
    if not isinstance(saved, dict) or saved.get("random") != search:
        raise ConfigError(f"{where}: these draws were made by another sweep.random than the one "
                          "in the sweep's config.yaml (or --set); resuming would run other "
                          "configurations: undo the change, or start a new sweep.")
    drawn = saved.get("draws")
    if not isinstance(drawn, list) or len(drawn) != search["runs"]:
        raise ConfigError(f"{where}: 'draws' is not a list of {search['runs']} draws.")
    for i, draw in enumerate(drawn, 1):
        if not isinstance(draw, dict) or list(draw) != list(search["space"]) or not all(
                could_draw(search["space"][key], value) for key, value in draw.items()):
            raise ConfigError(f"{where}: draw {i} is not one sweep.random.space could make: "
                              f"{draw!r:.200}.")
    return drawn


def could_draw(spec, value):
    """Whether `value` is one that `spec` ({kind: values}) draws."""
    (kind, values), = spec.items()
    if kind == "choice":
        return value in values
    return isinstance(value, float) and values[0] <= value <= values[1]


MAX_RUNS = 1000


def folder_name(label):
    """A label made safe as a folder name: one path component, never '.' or '..', at most 120
    characters."""
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", label).strip(".")[:120]
    return name or "run"


def folder_names(labels):
    """A distinct folder name for each label: labels that make the same name (α and β both make
    '_') get -2, -3 ... in order."""
    names, taken = [], set()
    for label in labels:
        name, n = folder_name(label), 1
        while name in taken:
            n += 1
            name = f"{folder_name(label)}-{n}"
        taken.add(name)
        names.append(name)
    return names


def read_summary(sub):
    """A finished run's summary.json, or None when it is missing or damaged (the run is then
    continued from its checkpoint, or run again)."""
    try:
        summary = json.loads((sub / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and isinstance(summary.get("status"), str) else None


def run_sweep(config, user, folder, source, runs, origin, console, resume=False):
    """Runs every combination of `runs` (skipping finished ones when resuming), each as a job
    of run_one in its own sub-folder; writes and returns the ranked table.

    The sweep's folder has its own log.txt and config.yaml (the user's, as given: written when
    `origin`, where it came from, is given); its lock is the caller's."""
    log = Log(folder / "log.txt", console)
    try:
        log.detail(blas_line())
        log(f"{'resuming' if resume else 'run'}: {folder}")
        if origin is not None:
            log(f"config: {origin}")
            save_config(user, folder, f"sweep config {origin}{', resumed' if resume else ''}, "
                                      "as given")
        if config["sweep"]["random"] is not None and not (folder / DRAWS).exists():
            write_draws(folder, config["sweep"]["random"], [chosen for _, chosen, _ in runs])
        log.detail(f"--- resolved config\n{dump(config).rstrip()}\n---")
        return sweep_runs(config, folder, source, runs, resume, log)
    except BaseException as e:  # the console hears it from the caller; the log keeps it too
        log(f"stopped: {type(e).__name__}: {e}".rstrip(": "), screen=False)
        raise
    finally:
        log.close()


def sweep_runs(config, folder, source, runs, resume, log):
    """Every run not yet done, each a job on the configured executor (at most sweep.jobs at
    once), then the table. A run that diverges or fails is a row with its reason; Ctrl-C stops
    every run (each saves its last completed epoch) and raises Interrupted."""
    log(f"sweep: {len(runs)} runs, each in a folder of its own in {folder} (its log.txt has all "
        "it did)")
    log("runs: " + "; ".join(label for label, _, _ in runs), screen=False)
    names = folder_names([label for label, _, _ in runs])
    differing = settings_that_differ([run_config for _, _, run_config in runs])
    labels = dict(enumerate(run_labels(differing, [label for label, _, _ in runs]), 1))
    stop = folder / STOP_FILE
    stop.unlink(missing_ok=True)  # a stop asked of an earlier session of this sweep
    summaries, jobs = {}, []
    for i, ((label, _chosen, run_config), name) in enumerate(zip(runs, names), 1):
        sub = folder / name
        done = read_summary(sub) if resume else None
        if done is not None:
            summaries[i] = done
            log(f"already done  {labels[i]}: {done['status']}  {sub}")
        else:
            jobs.append({"index": i, "which": f"{i}/{len(runs)} ({label})", "config": run_config,
                         # absolute: a worker elsewhere starts in a folder of its own
                         "folder": str(sub.absolute()), "origin": f"sweep run {label} of {source}",
                         "stop": str(stop.absolute()), "shown": str(sub)})

    def finished(job, summary):
        summaries[job["index"]] = summary
        if "traceback" in summary:
            log(summary.pop("traceback"), screen=False)
        console.finished(job, summary)

    executor = executor_for(config["sweep"], len(jobs), log)
    try:
        datas = {json.dumps(job["config"]["data"], sort_keys=True) for job in jobs}
        executor.check(folder.absolute(), [json.loads(data) for data in sorted(datas)])
        console = SweepConsole(log, labels, len(runs), len(summaries),
                               config["logging"]["progress"])
        try:
            run_all(executor, jobs, stop, console.started, finished, console.tick)
        finally:
            console.close()
    finally:
        executor.close()
        stop.unlink(missing_ok=True)
    status = {job["index"]: summaries.get(job["index"], {}).get("status") for job in jobs}
    stopped = [job for job in jobs if status[job["index"]] == "interrupted"]
    left = [job for job in jobs if status[job["index"]] in (None, "not started")]
    if stopped or left:
        raise interrupted(stopped, left, summaries, folder)
    rows = [{"run": label, **differing[i - 1], **summaries[i], "folder": name}
            for i, ((label, _, _), name) in enumerate(zip(runs, names), 1)]
    try:
        table = rank(rows)
        table.to_csv(folder / "comparison.csv", index=False)
        ranked = [labels[names.index(name) + 1] for name in table["folder"]]
        log("\n" + narrow(table, ranked).to_string(index=False))
        for (_, row), label in zip(table.iterrows(), ranked):
            if row["status"] in ("diverged", "failed"):
                log(f"  {row['rank']}. {label}: {row['status']}: {row['error']}")
        log(f"(every column in {folder / 'comparison.csv'})")
        if config["logging"]["plots"]:
            plot_comparison(folder, table, ranked, log)
        log(f"sweep done: {len(table)} runs, best {ranked[0]}; table in "
            f"{folder / 'comparison.csv'}", always=True)
    except KeyboardInterrupt:
        raise Interrupted(folder, None, complete=True,
                          unwritten="comparison.csv and comparison.png") from None
    return table


def interrupted(stopped, waiting, summaries, folder):
    """The Interrupted of a sweep whose runs `stopped` were stopped by Ctrl-C, and of which the
    runs `waiting` had not started: the first stopped one's checkpoint is named, then the
    others."""
    if not stopped:
        done = sum(s.get("status") not in ("interrupted", "not started")
                   for s in summaries.values())
        return Interrupted(folder, None, resume=folder, waiting=[job["which"] for job in waiting],
                           done=done)
    first = stopped[0]
    summary = summaries[first["index"]]
    return Interrupted(folder / Path(first["folder"]).name, summary.get("last_good_epoch"),
                       complete=bool(summary.get("unwritten")), unwritten=summary.get("unwritten"),
                       resume=folder, run=first["which"],
                       others=[job["which"] for job in stopped[1:]],
                       waiting=[job["which"] for job in waiting])


def flatten(config, prefix=""):
    """{"optimizer.lr": 0.01, ...} for a resolved config (lists, such as the model, as one
    value)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def settings_that_differ(configs):
    """Per run, {key path: value} of every setting whose value is not the same in all runs."""
    flat = [flatten(config) for config in configs]
    keys = [k for k in flat[0] if any(f.get(k) != flat[0][k] for f in flat)]
    keys += [k for f in flat for k in f if k not in flat[0] and k not in keys]
    return [{k: f.get(k) for k in keys} for f in flat]


def run_labels(differing, names):
    """A short name per run from its settings that differ (settings_that_differ): those every
    run has, as name=value (`lr=0.01` for optimizer.lr, `optimizer=adam` for optimizer.name);
    the run's name in `names` when there are none."""
    shared = [k for k in differing[0] if all(d[k] is not None for d in differing)
              # not lists or dicts: a model list is too long
              and not any(isinstance(d[k], (list, dict)) for d in differing)]
    short = {k: k.split(".")[-2] if k.endswith(".name") else k.rsplit(".", 1)[-1] for k in shared}
    return [", ".join(f"{short[k]}={shown(d[k])}" for k in shared) or name
            for d, name in zip(differing, names)]


def narrow(table, labels):
    """The columns a console has room for: rank, the run's differing settings, its results."""
    columns = {"best_val_accuracy": "best val", "test_accuracy": "test", "epochs": "epochs",
               "train_seconds": "seconds", "status": "status"}
    out = pd.DataFrame({"rank": table["rank"], "run": labels})
    for column, title in columns.items():
        if column in table:
            values = table[column]
            accuracy = column.endswith("accuracy")
            out[title] = [("-" if v is None or v != v else f"{v:.2%}") if accuracy else v
                          for v in values]
    return out


def rank(rows):
    """The runs best first: by best validation accuracy when there is one, else test accuracy."""
    table = pd.DataFrame(rows)
    key = "best_val_accuracy" if table["best_val_accuracy"].notna().any() else "test_accuracy"
    table = table.sort_values(key, ascending=False, na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.drop(columns=["last_good_epoch", "unwritten"], errors="ignore")
