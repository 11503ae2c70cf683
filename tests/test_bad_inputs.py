"""A generated corpus of bad configs and --set values: each must end with exit code 2, one
paragraph on stderr (no traceback), no run folder, within seconds.

The cases are built from the code's own catalogue of settings (experiments.config.SCHEMA,
framework.LAYERS, framework.OPTIMIZERS, their checks' types and bounds), so a new setting
joins the corpus without an edit here. test_corpus_size prints the size and the count per class.
Everything runs in-process through experiments.cli.main (milliseconds a case), except the
special files (/dev/zero, /dev/urandom), which also go through a real train.py subprocess.
"""
import collections
import math
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_train_cli import TINY

import framework as F
from datasets import DATASETS
from experiments import config as C
from experiments.cli import main
from framework.checks import Either, Integer, OneOf, Optional, Real, settings

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "configs" / "mnist_mlp.yaml"
SECONDS = 10  # a hang guard per case; a case takes milliseconds
BIG = 10 ** 400  # an integer beyond float range
SIZES = [10 ** k for k in (9, 12, 15, 18, 19)]  # cannot be allocated on any machine we run on


class Hang(BaseException):
    """Raised by the alarm: not an Exception, so no handler in the CLI can take it for an error."""


@contextmanager
def hang_guard(seconds=SECONDS):
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


Case = collections.namedtuple("Case", "kind name text sets")
CASES = []


def case(kind, name, text=None, sets=()):
    """A bad input: `text` replaces the tiny config's file (None: the tiny config), `sets` are
    --set arguments."""
    CASES.append(Case(kind, name, TINY if text is None else text, list(sets)))


def y(value):
    """A value as YAML flow text (integers written out in full, as a user would)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10 ** 6)
    return text.strip().removesuffix("...").strip()


def leaf_checks(schema=C.SCHEMA, path=()):
    """(key path, check) of every setting in SCHEMA (the data section's: those every dataset
    has)."""
    for key, spec in schema.items():
        if isinstance(spec, dict):
            yield from leaf_checks(spec, path + (key,))
        elif path + (key,) == ("data",):
            yield from leaf_checks(C.DATA, ("data",))
        else:
            yield path + (key,), spec[1]


def wrong_types(check):
    """Values of other types than `check` takes (those it refuses, from a fixed pool)."""
    pool = ["text", [1, 2], {"a": 1}, None, True, False, 3, 0.5, -7]
    bad = []
    for value in pool:
        try:
            check(value)
        except ValueError:
            bad.append(value)
    return bad


def out_of_range(check):
    """Values just past each bound of `check` (and NaN/inf for numbers)."""
    while isinstance(check, Optional):
        check = check.check
    if isinstance(check, Either):
        return [v for c in check.checks for v in out_of_range(c)]
    if isinstance(check, Integer):
        return [v for v in (check.low - 1 if check.low is not None else None,
                            check.high + 1 if check.high is not None else None) if v is not None]
    if isinstance(check, Real):
        values = [math.inf, -math.inf, math.nan, BIG, -BIG]
        if check.low is not None:
            values.append(check.low if check.low_open else check.low - 1e-9)
        if check.high is not None:
            values.append(check.high if check.high_open else check.high + 1e-9)
        return values
    if isinstance(check, OneOf):
        return [check.options[0].upper(), check.options[0] + "x", ""]
    return []


# ---- YAML alias bombs (billion laughs), in the file and in --set

def laughs(levels, width=9):
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


for levels in (2, 5, 9, 12):
    case("alias bomb", f"file-{levels}", laughs(levels))
    case("alias bomb", f"under-data-{levels}", "data:\n" + "".join(
        "  " + line + "\n" for line in laughs(levels).splitlines()))
case("alias bomb", "set-anchor-alias", sets=["model=[&x {affine: {out: 3}}, *x]"])
case("alias bomb", "set-alias", sets=["optimizer.lr=*a"])
case("alias bomb", "merge-key", TINY + "x: &x {a: 1}\ny: {<<: *x}\n")
case("alias bomb", "sweep-alias",
     TINY + "sweep: {grid: {training.seed: &s [1, 2]}, with: {x: *s}}\n")

# ---- huge sweep lists and grids

case("huge sweep", "1M-items-set",
     sets=["sweep={grid: {training.seed: [" + ",".join(map(str, range(10 ** 6))) + "]}}"])
case("huge sweep", "1001-items-set",
     sets=["sweep={grid: {training.seed: [" + ",".join(map(str, range(1001))) + "]}}"])
case("huge sweep", "9000-items-file",
     TINY + "sweep: {grid: {training.seed: [" + ",".join(map(str, range(9000))) + "]}}\n")
case("huge sweep", "product-of-lists",
     TINY + "sweep: {grid: {training.seed: [" + ",".join(map(str, range(100))) + "], "
     "optimizer.lr: [" + ",".join(str((i + 1) / 1000) for i in range(11)) + "]}}\n")
case("huge sweep", "file-over-64KB", TINY + "#" + "x" * (70 * 1024) + "\n")
case("huge sweep", "set-over-64KB", sets=["name=" + "x" * (70 * 1024)])

# ---- special files as the config (in-process; test_special_files_in_a_subprocess also runs them)

SPECIAL = {"dev-zero": "/dev/zero", "dev-urandom": "/dev/urandom", "a-folder": "/tmp"}

# ---- deep nesting

for depth in (21, 100, 3000):
    case("deep nesting", f"flow-lists-{depth}", f"x: {'[' * depth}{']' * depth}\n")
    case("deep nesting", f"flow-maps-{depth}", f"x: {'{a: ' * depth}1{'}' * depth}\n")
    case("deep nesting", f"set-{depth}", sets=["model.0=" + "[" * depth + "]" * depth])
case("deep nesting", "mixed-3000", "data: " + "[{a: " * 1500 + "1" + "}]" * 1500 + "\n")
case("deep nesting", "block-maps-25",
     "".join("  " * i + f"k{i}:\n" for i in range(25)) + "  " * 25 + "v\n")

# ---- unhashable keys

for text in ("? [a, b]\n: 1\n", "{a: 1}: 2\n", "? {a: 1}\n: 2\n", "data: {[1, 2]: 3}\n",
             "model: [{[affine]: {out: 3}}]\n", "optimizer: {? [lr]: 1}\n",
             "? !!set {a: null}\n: 1\n", "sweep: {grid: {[optimizer.lr]: [1]}}\n"):
    case("unhashable key", text.strip()[:30], text)
case("unhashable key", "set-value", sets=["data={[1, 2]: 3}"])
case("unhashable key", "set-nested", sets=["optimizer={{a: 1}: 2}"])

# ---- integers beyond float range, and sizes that cannot be allocated

for path, check in leaf_checks():
    inner = check.check if isinstance(check, Optional) else check
    if isinstance(inner, Real):
        case("beyond float", f"{'.'.join(path)}=10**400", sets=[f"{'.'.join(path)}={BIG}"])
        case("beyond float", f"{'.'.join(path)}=-10**400", sets=[f"{'.'.join(path)}=-{BIG}"])
for name, cls in F.OPTIMIZERS.items():
    for key, (_, check) in settings(cls).items():
        if isinstance(check, Real):
            case("beyond float", f"{name}.{key}=10**400",
                 sets=[f"optimizer={{name: {name}, {key}: {BIG}}}"])
case("beyond float", "lr-written-out", TINY.replace("lr: 0.01", f"lr: {BIG}"))
case("beyond float", "init-10**400", sets=[f"model.0.affine.init={BIG}"])
case("beyond float", "dropout-10**400", sets=[f"model.2.dropout.p={BIG}"])
case("beyond float", "gamma-10**400", sets=["schedule.name=step", f"schedule.gamma={BIG}"])
for size in SIZES + [BIG]:
    label = f"1e{len(str(size)) - 1}"
    case("unallocatable size", f"batch_size={label}", sets=[f"data.batch_size={size}"])
    case("unallocatable size", f"affine0.out={label}", sets=[f"model.0.affine.out={size}"])
    case("unallocatable size", f"affine3.out={label}", sets=[f"model.3.affine.out={size}"])
    case("unallocatable size", f"synthetic.train={label}", sets=[f"data.train={size}"])
    case("unallocatable size", f"synthetic.features={label}", sets=[f"data.features={size}"])
    case("unallocatable size", f"synthetic.test={label}", sets=[f"data.test={size}"])
    case("unallocatable size", f"classes={label}",
         sets=[f"data.classes={size}", f"model.5.affine.out={size}"])
for float_size in ("1e9", "1e19"):  # YAML floats where an integer goes: a wrong type
    case("unallocatable size", f"batch_size={float_size}-as-float",
         sets=[f"data.batch_size={float_size}"])

# ---- Unicode digits as list positions

for digit in ("²", "٣", "３", "①", "۰", "߁", "𝟘"):
    case("unicode digit", f"model.{digit}", sets=[f"model.{digit}=relu"])
    case("unicode digit", f"model.{digit}.affine.out", sets=[f"model.{digit}.affine.out=8"])
    case("unicode digit", f"value-{digit}", sets=[f"data.batch_size={digit}"])

# ---- control characters in names and paths (argv cannot hold NUL: in-process only)

for code in (0, 1, 7, 8, 9, 10, 13, 27, 31, 127, 0x85, 0x9F):
    char = chr(code)
    case("control character", f"set-name-{code:#x}", sets=[f"name=a{char}b"])
    case("control character", f"set-runs_dir-{code:#x}", sets=[f"logging.runs_dir=/tmp/a{char}b"])
    case("control character", f"yaml-name-{code:#x}",
         TINY.replace("name: tiny", f'name: "a\\x{code:02x}b"'))
    case("control character", f"yaml-data-dir-{code:#x}",
         TINY.replace("dataset: synthetic", f'dataset: synthetic\n  dir: "/d\\x{code:02x}"'))
for surrogate in ("\\ud800", "\\udcff"):
    case("control character", f"yaml-name-{surrogate}",
         TINY.replace("name: tiny", f'name: "{surrogate}"'))

# ---- path traversal in the run's name (test_path_traversal_creates_nothing_outside... checks
# the disk)

TRAVERSALS = ["../../../escaped", "..", ".", "a/b", "/abs", "a\\b", "../x", "./x", "x/..", "~/x"]
for name in TRAVERSALS:
    case("path traversal", name, sets=[f"name={name!r}".replace("'", '"')])

# ---- sweep values that would share a folder or a run

for values in ("[0.01, 0.01]", "[0.1, 0.10, 1e-1]", "[1, 1.0]", "[sgd, sgd]", "[3, 0x3]"):
    key = ("optimizer.name" if "sgd" in values else "optimizer.lr" if "." in values
           else "training.seed")
    case("sweep duplicate", f"{key}: {values}", TINY + f"sweep: {{grid: {{{key}: {values}}}}}\n")
case("sweep duplicate", "set", sets=["sweep={grid: {training.seed: [2, 2]}}"])

# ---- wrong types and out-of-range values for every setting

for path, check in leaf_checks():
    for value in wrong_types(check):
        case("wrong type", f"{'.'.join(path)}={y(value)}", sets=[f"{'.'.join(path)}={y(value)}"])
    for value in out_of_range(check):
        if value in (BIG, -BIG):
            continue  # in "beyond float"
        case("out of range", f"{'.'.join(path)}={value!r}", sets=[f"{'.'.join(path)}={y(value)}"])
for section in ("data", "schedule", "training", "logging"):
    for value in ("text", [1], 5, True):
        case("wrong type", f"{section}={y(value)}", sets=[f"{section}={y(value)}"])
for kind, cls in F.LAYERS.items():
    for key, (_, check) in C.layer_settings(cls).items():
        full = {"out": 8} if kind == "affine" and key != "out" else {}
        for label, values in (("wrong type", wrong_types(check)),
                              ("out of range", out_of_range(check))):
            for value in values:
                layer = y({kind: {**full, key: value}})
                case(label, f"{kind}.{key}={y(value)}", sets=[f"model.1={layer}"])
for name, cls in F.OPTIMIZERS.items():
    for key, (_, check) in settings(cls).items():
        for label, values in (("wrong type", wrong_types(check)),
                              ("out of range", out_of_range(check))):
            for value in values:
                if value is None or value in (BIG, -BIG):  # null: the optimizer's default
                    continue
                case(label, f"{name}.{key}={y(value)}",
                     sets=[f"optimizer={y({'name': name, key: value})}"])
for value in ("text", [1], 5, True, {"name": "nope"}):
    case("wrong type", f"optimizer={y(value)}", sets=[f"optimizer={y(value)}"])
for name, cls in DATASETS.items():
    for key, (_, check) in settings(cls).items():
        for label, values in (("wrong type", wrong_types(check)),
                              ("out of range", out_of_range(check))):
            for value in values:
                if value is None:  # null: the dataset's default
                    continue
                case(label, f"{name}.{key}={y(value)}",
                     sets=[f"data={y({'dataset': name, key: value})}"])
case("unknown key", "mnist-with-a-synthetic-setting", sets=["data={dataset: mnist, train: 10}"])
case("unknown key", "data-dir-for-synthetic", sets=["data.dir=/tmp"])
for value in ("relu", 5, {"a": 1}, [], [5], [[1]], [{"affine": {"out": 3}, "relu": None}]):
    case("wrong type", f"model={y(value)}", sets=[f"model={y(value)}"])
for key in ("validation=400", "validation=1000", "subset=301", "batch_size=0"):  # 400 examples
    case("out of range", f"data.{key}", sets=[f"data.{key}"])
case("out of range", "patience-without-validation",
     sets=["data.validation=0", "training.patience=2"])
case("out of range", "output-layer-vs-classes", sets=["model.5.affine.out=4"])
case("out of range", "last-layer-not-affine", sets=["model=[{affine: {out: 3}}, relu]"])
case("out of range", "last-softmax", sets=["model=[{affine: {out: 3}}, softmax]"])
case("out of range", "epochs-zero", sets=["training.epochs=0"])

# ---- unknown keys at every level

for path in ("", "data.", "schedule.", "training.", "logging.", "optimizer.", "sweep."):
    for key in ("typo", "nmae", "Epochs", "LR"):
        case("unknown key", f"{path}{key}", sets=[f"{path}{key}=1"])
for kind in F.LAYERS:
    case("unknown key", f"{kind}.bogus", sets=[f"model.1={{{kind}: {{bogus: 1}}}}"])
case("unknown key", "sgd.momentum", sets=["optimizer={name: sgd, momentum: 0.9}"])
case("unknown key", "sweep.with-never", TINY + "sweep: {grid: {training.seed: [1, 2]}, "
     "with: {training.seed=3: {optimizer.lr: 0.1}}}\n")
case("unknown key", "sweep-grid-key", TINY + "sweep: {grid: {training.sed: [1, 2]}}\n")
case("unknown key", "set-into-a-number", sets=["optimizer.lr.x=1"])
case("unknown key", "set-list-position-too-far", sets=["model.60.affine.out=3"])


# ---- the tests

def run(tmp_path, monkeypatch, capsys, text, sets, extra=()):
    """Runs the CLI in-process on `text` with `sets`; returns (code, stderr)."""
    (tmp_path / "no_mirror").mkdir(exist_ok=True)
    monkeypatch.setenv("MNIST_MIRRORS", str(tmp_path / "no_mirror"))  # never the network
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "no_data"))
    config = tmp_path / "bad.yaml"
    config.write_text(text, encoding="utf-8")
    with hang_guard():
        code = main([str(config), "--quiet", *extra, *[a for s in sets for a in ("--set", s)]])
    return code, capsys.readouterr().err


def assert_refused(code, err):
    assert code == 2, err
    assert err.strip() and "Traceback" not in err
    assert "\n\n" not in err.strip()  # one paragraph


@pytest.mark.parametrize("bad", CASES, ids=[f"{c.kind}: {c.name}" for c in CASES])
def test_bad_input_is_refused_with_one_paragraph(tmp_path, monkeypatch, capsys, bad):
    out = tmp_path / "out"
    code, err = run(tmp_path, monkeypatch, capsys, bad.text, bad.sets, ["--out", str(out)])
    assert_refused(code, err)
    assert not out.exists()  # refused before any folder is made


@pytest.mark.parametrize("path", SPECIAL.values(), ids=SPECIAL.keys())
def test_special_file_as_config_in_process(tmp_path, capsys, path):
    with hang_guard():
        code = main([path, "--out", str(tmp_path / "out"), "--quiet"])
    assert_refused(code, capsys.readouterr().err)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_special_files_in_a_subprocess(tmp_path, path):
    done = subprocess.run([sys.executable, str(REPO / "train.py"), path, "--out",
                           str(tmp_path / "o")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert_refused(done.returncode, done.stderr)


def test_path_traversal_creates_nothing_outside_the_runs_folder(tmp_path, monkeypatch, capsys):
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    for name in TRAVERSALS:
        code, err = run(deep, monkeypatch, capsys, TINY,
                        [f'name="{name}"', f"logging.runs_dir={deep / 'runs'}"])
        assert_refused(code, err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "bad.yaml", "c", "no_mirror"]


def test_huge_step_gamma_stops_as_a_divergence_not_a_crash(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code, err = run(tmp_path, monkeypatch, capsys, TINY,
                    ["optimizer.name=sgd", "optimizer.lr=1e-300", "schedule.name=step",
                     "schedule.gamma=1e300", "training.epochs=4"], ["--out", str(out)])
    assert code == 3, err
    assert "the learning-rate schedule gives lr inf" in " ".join(err.split())
    assert F.load(out / "checkpoint.npz")["epoch"] == 2  # lr 1e-300, then 1, then inf


# The default config holds out data.validation: 5000, and the synthetic set has 1000 training
# examples by default: switching to it needs data.train > 5000 as well (or a smaller
# validation). Each override alone is refused; together they are one valid config.
TOGETHER = ["data.dataset=synthetic", "data.train=6000", "model.6.affine.out=3"]


@pytest.mark.parametrize("sets", [TOGETHER, TOGETHER[::-1], TOGETHER[1:] + TOGETHER[:1]],
                         ids=["dataset-first", "out-first", "train-first"])
def test_overrides_valid_only_together_are_accepted(sets):
    config = C.load(DEFAULT, sets)
    assert config["data"]["dataset"] == "synthetic" and config["model"][6]["affine"]["out"] == 3


@pytest.mark.parametrize("alone", TOGETHER)  # train alone: MNIST does not use it
def test_dataset_or_output_size_alone_is_refused(alone):
    with pytest.raises(C.ConfigError):
        C.load(DEFAULT, [alone])


@pytest.mark.parametrize("sets, check", [
    (["data.classes=5", "model.5.affine.out=5"], lambda c: c["data"]["classes"] == 5),
    (["data.validation=0", "training.patience=null"], lambda c: c["training"]["patience"] is None),
    (["optimizer.name=sgd", "optimizer.beta1=null"], lambda c: c["optimizer"]["name"] == "sgd"),
    (["optimizer.name=momentum", "optimizer.momentum=0.5"],
     lambda c: c["optimizer"]["momentum"] == 0.5),
], ids=["classes-and-out", "no-validation-no-patience", "sgd-nulls-adam-setting", "momentum"])
def test_more_overrides_valid_together_on_the_tiny_config(tmp_path, sets, check):
    (tmp_path / "tiny.yaml").write_text(TINY, encoding="utf-8")
    assert check(C.load(tmp_path / "tiny.yaml", sets))


def test_overrides_valid_only_together_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code, err = run(tmp_path, monkeypatch, capsys, DEFAULT.read_text(), [
        *TOGETHER, "model.0.affine.out=8", "model.3.affine.out=8", "training.epochs=1",
        "logging.plots=false", "logging.progress=false"], ["--out", str(out)])
    assert code == 0, err
    assert F.load(out / "checkpoint.npz")["epoch"] == 1


@pytest.mark.parametrize("grid, expected", [
    ("name: [α, β]", 2), ('logging.runs_dir: [a/b, "a b", a_b]', 3),
    ("name: [a b, a_b, a-b]", 3),
])
def test_sweep_values_that_sanitize_alike_get_their_own_folders(tmp_path, monkeypatch, capsys,
                                                                grid, expected):
    out = tmp_path / "out"
    text = TINY.replace("epochs: 3", "epochs: 1") + f"sweep: {{grid: {{{grid}}}}}\n"
    code, err = run(tmp_path, monkeypatch, capsys, text, [], ["--out", str(out)])
    assert code == 0, err
    folders = pd.read_csv(out / "comparison.csv")["folder"]
    assert len(folders) == expected and folders.is_unique
    assert all((out / f / "checkpoint.npz").exists() for f in folders)


def test_corpus_size():
    counts = collections.Counter(c.kind for c in CASES)
    counts["special file"] = len(SPECIAL) + 2
    total = sum(counts.values())
    summary = f"{total} bad inputs: " + ", ".join(f"{k} {n}" for k, n in counts.most_common())
    print(summary)
    assert total >= 200, summary
    assert all(n >= 3 for n in counts.values()), summary
