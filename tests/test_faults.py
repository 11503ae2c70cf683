"""Run-folder faults: concurrent writers, paths, torn logs, damaged or changed checkpoints and
configs, divergence, a full disk, Ctrl-C at awkward moments, file modes, failed starts.

Each test builds one fault on a tiny synthetic run (tests/test_train_cli.py's config, well under
a second in-process) and checks what train.py does: the exit code, the message and the folder.
"""
import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_train_cli import metrics_without_time, tiny_config

import experiments.summary
import framework as F
import framework.files
from datasets import Synthetic
from experiments.cli import main

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD = 120  # seconds: a generous bound on any one subprocess, only against hangs


def train_py(*args, cwd, env=None, **kwargs):
    """Starts `python train.py ARGS` from this worktree in a subprocess, stdout and stderr piped."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@contextlib.contextmanager
def training(config, folder, until, *args):
    """`python train.py CONFIG --out FOLDER` training for 100,000 epochs in a subprocess, from
    the moment FOLDER/`until` exists (its lock is then held) to the end of the block, where it
    is killed; yields the process."""
    running = train_py(config, "--out", str(folder), "--quiet", "--set", "training.epochs=100000",
                       *args, cwd=folder.parent)
    try:
        deadline = time.monotonic() + HANG_GUARD
        while not (folder / until).exists():
            assert running.poll() is None and time.monotonic() < deadline, running.stderr.read()
            time.sleep(0.05)
        yield running
    finally:
        running.kill()
        running.communicate(timeout=HANG_GUARD)


def err_of(capsys):
    """What the CLI printed on stderr, with its line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture
def done_run(tmp_path, capsys):
    """A finished 3-epoch tiny run in tmp_path/run (a resume restores epoch 3, trains no more)."""
    folder = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(folder), "--quiet"]) == 0
    capsys.readouterr()
    return folder


def rewrite_checkpoint(path, drop=(), **replace):
    """Rewrites the .npz at `path` without the members `drop` and with `replace`d ones."""
    with np.load(path, allow_pickle=False) as f:
        members = {key: f[key] for key in f.files if key not in drop}
    members.update({key: np.asarray(value) for key, value in replace.items()})
    with open(path, "wb") as f:
        np.savez(f, **members)


# ---- one writer per folder

def test_two_runs_into_one_folder_one_wins_the_other_names_it(tmp_path):
    config = tiny_config(tmp_path)
    args = (config, "--out", str(tmp_path / "same"), "--quiet", "--set", "training.epochs=100")
    runs = [train_py(*args, cwd=tmp_path) for _ in range(2)]
    results = [(p.pid, p.wait(HANG_GUARD), p.stderr.read()) for p in runs]
    for p in runs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for _, code, _ in results) == [0, 2], results
    winner = next(pid for pid, code, _ in results if code == 0)
    loser_err = " ".join(next(err for _, code, err in results if code == 2).split())
    assert f"process {winner}" in loser_err and "Traceback" not in loser_err


def test_resume_of_a_folder_being_trained_names_the_holder(tmp_path, capsys):
    folder = tmp_path / "run"
    with training(tiny_config(tmp_path), folder, "metrics.csv") as running:
        assert main(["--resume", str(folder), "--quiet"]) == 2
        err = err_of(capsys)
        assert f"process {running.pid}" in err and "Traceback" not in err


def test_a_run_a_live_sweep_is_training_refuses_a_second_writer(tmp_path, capsys, monkeypatch):
    sweep = tiny_config(tmp_path, "sweep: {grid: {training.seed: [1, 2]}}\n")
    folder = tmp_path / "sweep"
    run = folder / "training.seed=1"
    running = train_py(sweep, "--out", str(folder), "--quiet", "--set", "training.epochs=100000",
                       cwd=tmp_path)
    # A second writer must be refused before it trains: one that trains fails here at once.
    monkeypatch.setattr("experiments.run.train", lambda *args, **kwargs: pytest.fail("trained"))
    try:
        deadline = time.monotonic() + HANG_GUARD
        while not (run / "checkpoint.npz").exists():  # the sweep trains its first run
            assert running.poll() is None and time.monotonic() < deadline, running.stderr.read()
            time.sleep(0.05)
        for argv in (["--resume", str(run)], [tiny_config(tmp_path), "--out", str(run)]):
            assert main([*argv, "--quiet"]) == 2
            err = err_of(capsys)
            assert f"process {running.pid}" in err and "Traceback" not in err, argv
    finally:
        running.kill()
        running.communicate(timeout=HANG_GUARD)


# ---- paths

def test_out_with_a_tilde_after_equals_goes_under_home(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    p = train_py(tiny_config(tmp_path), "--out=~/x", "--quiet", "--set", "training.epochs=1",
                 cwd=work, env={"HOME": str(home)})
    out, err = p.communicate(timeout=HANG_GUARD)
    assert p.returncode == 0, err
    assert {"config.yaml", "log.txt", "metrics.csv", "bias_grads.csv", "checkpoint.npz",
            "summary.json"} <= {q.name for q in (home / "x").iterdir()}
    assert list(work.iterdir()) == []  # no ./~ (nor anything else) in the working folder


# ---- torn and damaged files on resume

def test_torn_last_row_of_bias_csv_is_dropped_and_trained_again(tmp_path, ctrl_c_in_epoch_3):
    config = tiny_config(tmp_path)
    assert main([config, "--out", str(tmp_path / "straight"), "--quiet"]) == 0
    run = tmp_path / "run"
    with ctrl_c_in_epoch_3():
        assert main([config, "--out", str(run), "--quiet"]) == 130
    csv = run / "bias_grads.csv"
    text = csv.read_bytes()
    last_row = text.rstrip(b"\n").rsplit(b"\n", 1)[1]
    csv.write_bytes(text[:len(text) - 1 - len(last_row) // 2])  # a kill in the middle of a row
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert csv.read_bytes() == (tmp_path / "straight" / "bias_grads.csv").read_bytes()
    assert metrics_without_time(run) == metrics_without_time(tmp_path / "straight")


@pytest.mark.parametrize("edit, differs", [
    (("optimizer: {name: adam, lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1.0e-08, "
      "weight_decay: 0.0}", "optimizer: {name: sgd, lr: 0.01}"), "optimizer.name: 'adam' -> 'sgd'"),
    (("- affine: {out: 16, init: he}", "- affine: {out: 32, init: he}"),
     "model: [{'affine': {'out': 16, 'init': 'he'}}, "),
    (("validation: 100", "validation: 50"), "data.validation: 100 -> 50"),
], ids=["optimizer", "model", "validation"])
def test_resume_refuses_an_edited_config_yaml(done_run, capsys, edit, differs):
    config = done_run / "config.yaml"
    text = config.read_text()
    assert edit[0] in text
    config.write_text(text.replace(edit[0], edit[1], 1))
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    err = err_of(capsys)
    assert "differs from the config this run was trained with" in err and differs in err
    assert "Traceback" not in err


def test_resume_refuses_more_epochs_by_set(done_run, capsys):
    assert main(["--resume", str(done_run), "--quiet", "--set", "training.epochs=5"]) == 2
    err = err_of(capsys)
    assert "training.epochs: 3 -> 5" in err and "Traceback" not in err


def test_resume_refuses_a_truncated_config_yaml_before_touching_data(done_run, tmp_path, capsys,
                                                                    monkeypatch):
    # A few bytes of config.yaml read as an empty config: all defaults, MNIST among them. The
    # checkpoint holds the config the run was trained with, so this must be refused, and before
    # any data is fetched (no mirror here has MNIST; fetching would fail with another message).
    (tmp_path / "no_mirror").mkdir()
    monkeypatch.setenv("MNIST_MIRRORS", str(tmp_path / "no_mirror"))
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "no_data"))
    config = done_run / "config.yaml"
    config.write_bytes(config.read_bytes()[:9])
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    err = err_of(capsys)
    assert "differs from the config this run was trained with" in err
    assert "data.dataset: 'synthetic' -> 'mnist'" in err
    assert not (tmp_path / "no_data").exists()


def test_a_run_from_before_a_setting_existed_resumes_with_its_default(done_run, capsys):
    config = done_run / "config.yaml"
    config.write_text(config.read_text().replace("  drop_last: false\n", ""))
    with np.load(done_run / "checkpoint.npz") as f:
        saved = json.loads(f["json/config"].item())
    del saved["data"]["drop_last"]
    rewrite_checkpoint(done_run / "checkpoint.npz", **{"json/config": json.dumps(saved)})
    assert main(["--resume", str(done_run), "--quiet", "--set", "data.drop_last=true"]) == 2
    assert "data.drop_last: None -> True" in err_of(capsys)  # not at its default: another run
    assert main(["--resume", str(done_run), "--quiet"]) == 0


def test_resume_refuses_a_npy_in_place_of_the_checkpoint(done_run, capsys):
    with open(done_run / "checkpoint.npz", "wb") as f:
        np.save(f, np.arange(10.0))
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    err = err_of(capsys)
    assert "checkpoint.npz" in err and "Traceback" not in err


@pytest.mark.parametrize("member", ["json/rng", "extra/epoch", "json/history"])
def test_resume_refuses_a_checkpoint_missing_a_member(done_run, capsys, member):
    rewrite_checkpoint(done_run / "checkpoint.npz", drop=[member])
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    err = err_of(capsys)
    assert f"lacks {member.split('/')[1]}" in err and "Traceback" not in err


def test_resume_refuses_a_negative_epoch(done_run, capsys):
    rewrite_checkpoint(done_run / "checkpoint.npz", **{"extra/epoch": -5})
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    assert "the checkpoint's epoch -5 is not in [0, 3]" in err_of(capsys)


def test_resume_refuses_another_kind_of_generator_state(done_run, capsys):
    state = np.random.PCG64DXSM(0).state
    rewrite_checkpoint(done_run / "checkpoint.npz", **{"json/rng": json.dumps(state)})
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    err = err_of(capsys)
    assert "generator state is not a PCG64 state" in err and "Traceback" not in err


def test_resume_refuses_a_generator_state_out_of_range(done_run, capsys):
    # numpy raises OverflowError (not ValueError) for a state integer outside uint64
    state = {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1},
             "has_uint32": 0, "uinteger": 0}
    rewrite_checkpoint(done_run / "checkpoint.npz", **{"json/rng": json.dumps(state)})
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    err = err_of(capsys)
    assert "does not fit the configured model or optimizer" in err and "Traceback" not in err


@pytest.mark.parametrize("member, value, named", [
    ("optimizer/beta1", 5.0, "optimizer beta1: out of range"),
    ("optimizer/eps", -1.0, "optimizer eps: out of range"),
    ("optimizer/lr", True, "optimizer lr: wrong type"),
    ("optimizer/t", 2.7, "optimizer t: wrong type"),
    ("optimizer/t", -3, "optimizer t: out of range"),
    ("optimizer/weight_decay", 0.5, "optimizer/weight_decay is 0.5 in the file, 0.0 in the config"),
])
def test_resume_checks_the_optimizers_settings_in_the_file(done_run, capsys, member, value,
                                                           named):
    """They were set as they came (t = 2.7 became 2, beta1 = 5 trained on): each passes its
    constructor's check and, but for the scheduled lr, equals the configured one."""
    assert F.load(done_run / "checkpoint.npz")["config"]["optimizer"]["name"] == "adam"
    rewrite_checkpoint(done_run / "checkpoint.npz", **{member: value})
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    err = err_of(capsys)
    assert named in err and "Traceback" not in err


@pytest.mark.parametrize("change, named", [
    (lambda r: r.pop("seconds"), "'seconds' is missing"),
    (lambda r: r.update(val_acc="high"), "'val_acc' is missing or not a number"),
    (lambda r: r.update(train_loss=True), "'train_loss' is missing or not a number"),
])
def test_resume_refuses_a_history_record_it_could_not_summarise(done_run, capsys, change, named):
    """Each was a traceback (KeyError, TypeError) after the resumed epochs had trained."""
    history = F.load(done_run / "checkpoint.npz")["history"]
    change(history[0])
    rewrite_checkpoint(done_run / "checkpoint.npz", **{"json/history": json.dumps(history)})
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    assert f"history of epoch 1: {named}" in err_of(capsys)


@pytest.mark.parametrize("processes", [0, -2, 1.5])
def test_resume_refuses_a_number_of_processes_that_cannot_be(done_run, capsys, processes):
    """0 was answered with the advice to run mpiexec -n 0."""
    rewrite_checkpoint(done_run / "checkpoint.npz", **{"extra/processes": processes})
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    err = err_of(capsys)
    assert "number of processes" in err and "mpiexec" not in err


def test_resume_refuses_a_negative_sum_of_squared_gradients(done_run, capsys):
    """Adam's V is a sum of squares: negative, its square root was NaN, blamed on the lr."""
    V = F.load(done_run / "checkpoint.npz")["optimizer"]["V.1"]
    rewrite_checkpoint(done_run / "checkpoint.npz", **{"optimizer/V.1": -np.abs(V) - 1})
    assert main(["--resume", str(done_run), "--quiet"]) == 2
    assert "optimizer V.1: a sum of squared gradients holds a negative value" in err_of(capsys)


def test_leftover_temporary_is_removed_on_resume(done_run):
    stale = done_run / ".checkpoint.npz.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main(["--resume", str(done_run), "--quiet"]) == 0
    assert not stale.exists()


# ---- divergence and bad data

def test_divergence_in_epoch_1_keeps_the_finite_epoch_0_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = main([tiny_config(tmp_path), "--out", str(out), "--quiet", "--set", "optimizer.name=sgd",
                 "--set", "optimizer.lr=1e30", "--set", "schedule.name=none"])
    assert code == 3
    assert "(epoch 1)" in err_of(capsys)
    state = F.load(out / "checkpoint.npz")
    assert state["epoch"] == 0
    assert all(np.isfinite(w).all() for w in state["model"].values())


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # the float32 weights: inf
def test_weights_infinite_from_the_start_leave_no_checkpoint_claimed(tmp_path, capsys):
    out = tmp_path / "run"
    code = main([tiny_config(tmp_path), "--out", str(out), "--quiet",
                 "--set", "model.0.affine.init=1e300"])  # inf in float32
    assert code == 3
    err = err_of(capsys)
    assert "NaN or infinite" in err and "is kept in" not in err
    assert not (out / "checkpoint.npz").exists()


def test_nan_in_the_input_data_is_blamed_on_the_data(tmp_path, monkeypatch, capsys):
    load = Synthetic.load

    def with_a_nan(self, rng, progress=None, log=print):
        (x, t), test = load(self, rng, progress, log)
        x[7, 3] = np.nan
        return (x, t), test

    monkeypatch.setattr(Synthetic, "load", with_a_nan)
    assert main([tiny_config(tmp_path), "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "data.validation=0"]) == 3
    err = err_of(capsys)
    assert "the input batch holds NaN or inf" in err
    assert "the data, not the model, is at fault" in err


# ---- a full disk, Ctrl-C in the middle of writing

def fd_path(fd):
    return os.readlink(f"/proc/self/fd/{fd}")


def test_full_disk_at_an_epoch_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    real_fsync, saves = os.fsync, []

    def fsync(fd):
        if ".checkpoint.npz." in fd_path(fd):
            saves.append(fd)
            if len(saves) == 3:  # epoch 0 (the start), epoch 1, then epoch 2's save
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as the kernel says it
        real_fsync(fd)

    monkeypatch.setattr(framework.files.os, "fsync", fsync)
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 2
    monkeypatch.undo()
    err = err_of(capsys)
    assert "No space left on device" in err and str(out / "checkpoint.npz") in err
    assert f"--resume {out}" in err and "Traceback" not in err
    assert F.load(out / "checkpoint.npz")["epoch"] == 1
    assert not list(out.glob(".*.tmp"))


def test_full_disk_at_the_first_checkpoint_does_not_offer_a_resume(tmp_path, monkeypatch, capsys):
    real_fsync = os.fsync

    def fsync(fd):
        if ".checkpoint.npz." in fd_path(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(framework.files.os, "fsync", fsync)
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 2
    err = err_of(capsys)
    assert "No space left on device" in err and "--resume" not in err
    assert not out.exists()  # nothing to resume: the run never started


def test_ctrl_c_in_the_checkpoint_rename_survives_and_leaves_no_temporary(tmp_path, monkeypatch,
                                                                          capsys):
    real_replace, renames = os.replace, []

    def replace(src, dst):
        if str(dst).endswith("checkpoint.npz"):
            renames.append(dst)
            if len(renames) == 3:  # epoch 2's save
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(framework.files.os, "replace", replace)
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 130
    monkeypatch.undo()
    err = err_of(capsys)
    assert f"--resume {out}" in err and "Traceback" not in err
    assert not list(out.glob(".*.tmp"))
    assert F.load(out / "checkpoint.npz")["epoch"] == 2  # saved again once the run stopped


def test_ctrl_c_while_the_summary_is_written_says_training_is_complete(tmp_path, monkeypatch,
                                                                        capsys):
    real = experiments.summary.atomic_write

    @contextlib.contextmanager
    def interrupted(path, *args, **kwargs):
        with real(path, *args, **kwargs) as f:
            yield f
            raise KeyboardInterrupt

    monkeypatch.setattr(experiments.summary, "atomic_write", interrupted)
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 130
    err = err_of(capsys)
    assert "after training was complete" in err and "all 3 epochs are saved" in err
    assert F.load(out / "checkpoint.npz")["epoch"] == 3
    assert err.endswith(f"may not have been written. Write them with: python train.py --resume "
                        f"{out}")
    monkeypatch.undo()
    assert not (out / "summary.json").exists()
    assert main(["--resume", str(out), "--quiet"]) == 0  # what the message says to do
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3


def test_output_piped_into_head_ends_quietly_and_the_run_completes(tmp_path):
    out = tmp_path / "run"  # `python train.py CONFIG | head -3`: the reader goes after 3 lines
    running = train_py(tiny_config(tmp_path), "--out", str(out), cwd=tmp_path)
    lines = [running.stdout.readline() for _ in range(3)]
    running.stdout.close()
    assert running.wait(HANG_GUARD) == 0, running.stderr.read()
    err = running.stderr.read()
    running.stderr.close()
    assert lines[0] == f"run: {out}\n" and err == ""
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert "evaluate it: python train.py --eval" in (out / "log.txt").read_text()


def test_explain_bias_piped_into_head_ends_quietly(tmp_path):
    running = train_py("--explain-bias", cwd=tmp_path)
    running.stdout.readline()
    running.stdout.close()
    assert running.wait(HANG_GUARD) == 0
    assert running.stderr.read() == ""
    running.stderr.close()


# ---- modes, failed starts, foreign folders

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_run_files_get_the_umasks_mode(tmp_path, umask, mode):
    out = tmp_path / "run"
    p = train_py(tiny_config(tmp_path), "--out", str(out), "--quiet", "--set", "training.epochs=1",
                 cwd=tmp_path, preexec_fn=lambda: os.umask(umask))
    _, err = p.communicate(timeout=HANG_GUARD)
    assert p.returncode == 0, err
    modes = {f.name: oct(f.stat().st_mode & 0o777) for f in out.iterdir()}
    assert {"checkpoint.npz", "config.yaml", "summary.json", "metrics.csv"} <= set(modes)
    assert set(modes.values()) == {oct(mode)}, modes


def test_a_run_that_cannot_get_its_data_leaves_no_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty_mirror").mkdir()
    (tmp_path / "empty_data").mkdir()
    monkeypatch.setenv("MNIST_MIRRORS", str(tmp_path / "empty_mirror"))
    runs = tmp_path / "runs"
    code = main([tiny_config(tmp_path), "--quiet", "--data-dir", str(tmp_path / "empty_data"),
                 "--set", f"logging.runs_dir={runs}", "--set", "data={dataset: mnist}",
                 "--set", "model.5.affine.out=10"])
    assert code == 2
    assert "Cannot get the data" in err_of(capsys)
    assert not runs.exists() or list(runs.iterdir()) == []


def test_out_folder_with_other_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert main([tiny_config(tmp_path), "--out", str(mine), "--quiet"]) == 2
    assert "holds other files (thesis.tex)" in err_of(capsys)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
