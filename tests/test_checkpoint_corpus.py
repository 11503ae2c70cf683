"""A corpus of crafted checkpoints, each made here from a real run's checkpoint: every one is a
CheckpointError from load_model naming the file and what is wrong, and exit 2 with that message
from --eval and --resume, never a traceback; none allocates more than a few MB.

The cases that would allocate gigabytes (or wait forever on a FIFO) if a check were missing run
in a child process limited to 1 GB of address space, with an alarm.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import framework as F
from experiments.cli import main
from experiments.config import resolve

REPO = Path(F.__file__).resolve().parents[1]  # the framework under test, for the child process
LIMIT = 1 << 30  # the child's address space: far below what any missing check would allocate

BASE_CONFIG = """\
name: base
data:
  dataset: synthetic
  validation: 20
  batch_size: 20
  train: 100
  test: 30
  features: 16
  classes: 3
model: [{affine: {out: 16}}, batchnorm, relu, {dropout: {p: 0.1}}, {affine: {out: 3}}]
optimizer: {name: adam, lr: 0.01}
training: {epochs: 1, seed: 1}
logging: {progress: false, plots: false}
"""


# ---- writing archives, members and headers by hand

@dataclass
class Entry:
    """One zip member as written: what its headers declare may differ from its data."""

    name: str
    data: bytes  # as stored in the archive (deflated when method is 8)
    crc: int
    usize: int  # the size it declares once inflated
    method: int = zipfile.ZIP_STORED
    flags: int = 0


def entry(name, raw, method=zipfile.ZIP_STORED, **declared):
    """An Entry holding `raw` (deflated with method 8), declaring what `declared` overrides."""
    data = raw
    if method == zipfile.ZIP_DEFLATED:
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = packer.compress(raw) + packer.flush()
    return Entry(name, data, zlib.crc32(raw), len(raw), method, **declared)


def archive(entries):
    """The bytes of a zip archive of `entries`, headers written by hand (so they can declare
    what no zip writer would)."""
    out, central = bytearray(), bytearray()
    for e in entries:
        name = e.name.encode("utf-8")
        fields = (e.flags, e.method, 0, 0x21, e.crc, len(e.data), e.usize, len(name))
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, *fields, 0, 0, 0, 0, 0,
                               len(out)) + name
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, *fields, 0) + name + e.data
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central),
                      len(out), 0)
    return bytes(out + central + end)


def npy(array):
    """An array as a .npy file's bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_header(header, data=b"", version=(1, 0)):
    """A .npy file's bytes with `header` (a dict literal, as text) written as is."""
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    length = struct.pack("<H", len(text)) if version == (1, 0) else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes(version) + length + text + data


def text(value):
    """A JSON member's .npy bytes."""
    return npy(np.asarray(json.dumps(value)))


class Base:
    """The members of a real run's checkpoint ({"model/affine1.W": .npy bytes, ...}) and its
    folder's config, from which each case is made."""

    def __init__(self, folder):
        with zipfile.ZipFile(folder / "checkpoint.npz") as z:
            self.members = {i.filename[:-len(".npy")]: z.read(i) for i in z.infolist()}
        self.config = (folder / "config.yaml").read_bytes()

    def array(self, key):
        return np.load(io.BytesIO(self.members[key]))

    def json(self, key):
        return json.loads(self.array(key).item())

    def entries(self, replace=None, remove=(), add=(), method=zipfile.ZIP_STORED):
        """Entries of the base's members with `replace` ({key: bytes}) swapped in, `remove` left
        out and the (name, bytes) pairs of `add` appended."""
        replace = replace or {}
        kept = [entry(f"{key}.npy", replace.get(key, raw), method)
                for key, raw in self.members.items() if key not in remove]
        return kept + [entry(name, raw) for name, raw in add]

    def file(self, replace=None, remove=(), add=()):
        return archive(self.entries(replace, remove, add))

    def architecture(self, change):
        """The json/architecture member with change(list of layer dicts) applied."""
        layers = self.json("json/architecture")
        change(layers)
        return {"json/architecture": text(layers)}

    def array_with(self, key, change):
        """{key: bytes} of a model member with change(array) applied."""
        value = self.array(key).copy()
        change(value)
        return {key: npy(value)}


def zip_bomb():
    """extra/blob: a float32 array of 2**29 zeros (2 GB) deflated to about 2 MB."""
    header = npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (536870912,), }")
    zeros = bytes(1 << 24)
    start, block = zlib.compressobj(9, zlib.DEFLATED, -15), zlib.compressobj(9, zlib.DEFLATED, -15)
    # full flushes make each piece stand alone, so one 16 MB block repeats 128 times
    data = (start.compress(header) + start.flush(zlib.Z_FULL_FLUSH)
            + (block.compress(zeros) + block.flush(zlib.Z_FULL_FLUSH)) * 128
            + zlib.compressobj(9, zlib.DEFLATED, -15).flush())
    crc = zlib.crc32(header)
    for _ in range(128):
        crc = zlib.crc32(zeros, crc)
    return Entry("extra/blob.npy", data, crc, len(header) + 128 * len(zeros), zipfile.ZIP_DEFLATED)


# ---- the cases: (class, name, what every message says, a function of the base giving the
# file's bytes, or a function that makes the file at a path)

def mkfifo(path):
    os.mkfifo(path)


def symlink_to_fifo(path):
    os.mkfifo(path.parent / "pipe")
    path.symlink_to(path.parent / "pipe")


def dev_zero(path):
    path.symlink_to("/dev/zero")


def folder(path):
    path.mkdir()


def dangling(path):
    path.symlink_to(path.parent / "gone.npz")


def layer(i, **change):
    """An architecture change: layer i's keys set (None: removed)."""
    def apply(layers):
        for key, value in change.items():
            if value is None:
                del layers[i][key]
            else:
                layers[i][key] = value
    return apply


def argument(i, **change):
    """An architecture change: layer i's arguments updated."""
    def apply(layers):
        layers[i]["arguments"].update(change)
    return apply


def nested(depth):
    value = 0
    for _ in range(depth):
        value = {"a": value}
    return value


def changed_entry(key, change):
    """A function of the base: its archive with member `key`'s Entry passed through change."""
    return lambda b: archive([change(e) if e.name == f"{key}.npy" else e for e in b.entries()])


def header_of(text, data=lambda b: b.array(W).tobytes(), version=(1, 0)):
    """A function of the base: its archive with the weight W's .npy header replaced by `text`."""
    return lambda b: b.file({W: npy_header(text, data(b) if callable(data) else data, version)})


W = "model/affine1.W"  # the base model: affine1, batchnorm1, relu1, dropout1, affine2
VAR = "model/batchnorm1.running_var"
W_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 16), }"
BIG = "{'descr': '<f4', 'fortran_order': False, 'shape': (30000, 30000), }"
ARCH = "json/architecture"

CASES = [
    # not a regular file, or not a zip archive at all
    ("file", "a FIFO", "named pipe", lambda b: mkfifo),
    ("file", "a link to a FIFO", "named pipe", lambda b: symlink_to_fifo),
    ("file", "a link to /dev/zero", "character device", lambda b: dev_zero),
    ("file", "a folder", "a folder", lambda b: folder),
    ("file", "a dangling link", "gone.npz, which does not exist", lambda b: dangling),
    ("file", "empty", "this file is empty", lambda b: b""),
    ("file", "a .npy file", "single array", lambda b: b.members[W]),
    ("file", "a YAML config", "this file starts with b'# resolved", lambda b: b.config),
    # the zip container
    ("zip", "cut in half", "truncated", lambda b: b.file()[:len(b.file()) // 2]),
    ("zip", "a flipped byte in a weight", f"{W}: damaged",
     changed_entry(W, lambda e: Entry(e.name, e.data[:-1] + bytes([e.data[-1] ^ 1]), e.crc,
                                      e.usize))),
    ("zip", "bzip2 declared", "zip method 12",
     lambda b: archive([Entry(e.name, e.data, e.crc, e.usize, method=12) for e in b.entries()])),
    ("zip", "encrypted", "encrypted",
     lambda b: archive([Entry(e.name, e.data, e.crc, e.usize, flags=1) for e in b.entries()])),
    ("zip", "a member twice", W, lambda b: b.file(add=[(f"{W}.npy", b.members[W])])),
    ("zip", "a stored member declaring more than it stores", W,
     changed_entry(W, lambda e: Entry(e.name, e.data, e.crc, e.usize + 4))),
    # member names
    ("name", "no group", "affine1.W.npy", lambda b: b.file(add=[("affine1.W.npy", b.members[W])])),
    ("name", "an unknown group", "weights/affine1.W",
     lambda b: b.file(add=[("weights/affine1.W.npy", b.members[W])])),
    ("name", "not .npy", "model/affine1.W.bin",
     lambda b: b.file(add=[("model/affine1.W.bin", b.members[W])])),
    ("name", "a control character", "model/affine1\\x07.W",
     lambda b: b.file(add=[("model/affine1\x07.W.npy", b.members[W])])),
    ("name", "an empty name", "model/.npy", lambda b: b.file(add=[("model/.npy", b.members[W])])),
    ("name", "an extra named model", "extra/model",
     lambda b: b.file(add=[("extra/model.npy", npy(np.float32(1)))])),
    ("name", "an extra and a JSON member of one name", "json/epoch",
     lambda b: b.file(add=[("json/epoch.npy", text(1))])),
    # .npy headers
    ("header", "not .npy data", W, lambda b: b.file({W: b"not an array at all" * 10})),
    ("header", "format version 3.0", W, header_of(W_HEADER, version=(3, 0))),
    ("header", "a header that is not a dict", W,
     header_of("{'descr': '<f4', 'fortran_order': False, 'shape': (16, 16)")),
    ("header", "a negative shape", f"{W}: its header declares the shape (-16, 16)",
     header_of("{'descr': '<f4', 'fortran_order': False, 'shape': (-16, 16), }")),
    ("header", "more data declared than held", W,
     header_of("{'descr': '<f4', 'fortran_order': False, 'shape': (16, 32), }")),
    ("header", "less data declared than held", W,
     header_of("{'descr': '<f4', 'fortran_order': False, 'shape': (8, 16), }")),
    ("header", "a header of 20,000 bytes", W,
     header_of(W_HEADER[:-1] + " " * 20_000 + "}", version=(2, 0))),
    ("header", "a descr nested 500 deep", W,
     header_of("{'descr': " + "[" * 500 + "]" * 500 + ", 'fortran_order': False, "
               "'shape': (16, 16), }", version=(2, 0))),
    # dtypes
    ("dtype", "object", W,
     header_of("{'descr': '|O', 'fortran_order': False, 'shape': (16, 16), }", bytes(16 * 16 * 8))),
    ("dtype", "structured", W,
     header_of("{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, "
               "'shape': (16, 8), }")),
    ("dtype", "complex", W, lambda b: b.file({W: npy(b.array(W).astype(np.complex64))})),
    ("dtype", "integers", W, lambda b: b.file({W: npy(b.array(W).astype(np.int32))})),
    ("dtype", "float64 for float32", W, lambda b: b.file({W: npy(b.array(W).astype(np.float64))})),
    ("dtype", "big-endian float32", W, lambda b: b.file({W: npy(b.array(W).astype(">f4"))})),
    ("dtype", "text in the model", W, lambda b: b.file({W: npy(np.array(["weights"] * 16))})),
    ("dtype", "bytes in the optimizer", "optimizer/M.0",
     lambda b: b.file({"optimizer/M.0": npy(np.array([b"x" * 8] * 4))})),
    ("dtype", "a date", "extra/epoch",
     lambda b: b.file({"extra/epoch": npy(np.datetime64(1, "s"))})),
    ("dtype", "a JSON member of numbers", "json/history",
     lambda b: b.file({"json/history": npy(np.zeros(3))})),
    ("dtype", "a JSON member of two texts",
     "json/history: holds <U2 (2,); a JSON member is one text",
     lambda b: b.file({"json/history": npy(np.array(["[]", "[]"]))})),
    # the model's arrays against the architecture
    ("shape", "another model's weight", f"{W}: float32 (16, 17) in the file, float32 (16, 16)",
     lambda b: b.file({W: npy(np.zeros((16, 17), np.float32))})),
    ("shape", "a bias left out", "model/affine1.b", lambda b: b.file(remove={"model/affine1.b"})),
    ("shape", "a running variance left out", VAR, lambda b: b.file(remove={VAR})),
    ("shape", "an array of no layer", "model/affine3.W",
     lambda b: b.file(add=[("model/affine3.W.npy", npy(np.zeros((3, 3), np.float32)))])),
    ("shape", "a number for a bias", "model/affine2.b",
     lambda b: b.file({"model/affine2.b": npy(np.float32(0))})),
    ("shape", "a transposed weight", "model/affine2.W",
     lambda b: b.file({"model/affine2.W": npy(b.array("model/affine2.W").T.copy())})),
    # the architecture
    ("architecture", "an unknown kind",
     f"{ARCH}: layer 2 (relu1): layer kind 'lstm' is not registered",
     lambda b: b.file(b.architecture(layer(2, kind="lstm")))),
    ("architecture", "a kind that is not a text",
     f"{ARCH}: layer 2 (relu1): layer kind a list is not registered",
     lambda b: b.file(b.architecture(layer(2, kind=[1])))),
    ("architecture", "a missing argument", f"{ARCH}: layer 0 (affine1): out_features: missing",
     lambda b: b.file(b.architecture(lambda layers: layers[0]["arguments"].pop("out_features")))),
    ("architecture", "an unknown argument", "unknown key 'bias'",
     lambda b: b.file(b.architecture(argument(0, bias=True)))),
    ("architecture", "an argument out of range", f"{ARCH}: layer 3 (dropout1): p: out of range",
     lambda b: b.file(b.architecture(argument(3, p=1.5)))),
    ("architecture", "an argument of the wrong type", "in_features: wrong type",
     lambda b: b.file(b.architecture(argument(0, in_features="16")))),
    ("architecture", "an argument that is NaN", "momentum: out of range",
     lambda b: b.file(b.architecture(argument(1, momentum=float("nan"))))),
    ("architecture", "an object dtype", "layer 0 (affine1): dtype 'object'",
     lambda b: b.file(b.architecture(layer(0, dtype="object")))),
    ("architecture", "a dtype for a layer without one",
     "layer 2 (relu1): dtype 'float32'; ReLU takes null",
     lambda b: b.file(b.architecture(layer(2, dtype="float32")))),
    ("architecture", "two layers of one name",
     f"{ARCH}: layer 2: the name 'affine1' is layer 0's",
     lambda b: b.file(b.architecture(layer(2, name="affine1")))),
    ("architecture", "a layer without a name", f"{ARCH}: layer 2: expected a mapping",
     lambda b: b.file(b.architecture(layer(2, name=None)))),
    ("architecture", "a mapping, not a list", f"{ARCH}: expected a list of layers",
     lambda b: b.file({ARCH: text({"affine": 1})})),
    ("architecture", "no layers", f"{ARCH}: expected a list of layers",
     lambda b: b.file({ARCH: text([])})),
    ("architecture", "layers that do not fit together", "affine2",
     lambda b: b.file({**b.architecture(argument(4, in_features=17)),
                       **{key: npy(np.zeros((17, 3), np.float32))
                          for key in ("model/affine2.W", "optimizer/M.4", "optimizer/V.4")}})),
    ("architecture", "a negative input shape", "json/input_shape",
     lambda b: b.file({"json/input_shape": text([-16])})),
    ("architecture", "none", "architecture", lambda b: b.file(remove={ARCH})),
    # JSON
    ("json", "nested 100,000 deep", "json/rng: JSON nested more than 32 deep",
     lambda b: b.file({"json/rng": npy(np.asarray("[" * 100_000 + "]" * 100_000))})),
    ("json", "an architecture nested 43 deep", f"{ARCH}: JSON nested more than 32 deep",
     lambda b: b.file(b.architecture(argument(0, init=nested(40))))),
    ("json", "not JSON", "json/history: not valid JSON",
     lambda b: b.file({"json/history": npy(np.asarray("{not"))})),
    ("json", "a number of 5,000 digits", "json/history: not valid JSON",
     lambda b: b.file({"json/history": npy(np.asarray("1" * 5000))})),
    ("json", "a text of 1.1 million characters", "json/history",
     lambda b: b.file({"json/history": text(["x" * 1_100_000])})),
    # values
    ("values", "NaN in a weight", W,
     lambda b: b.file(b.array_with(W, lambda a: a.__setitem__(3, np.nan)))),
    ("values", "infinity in a bias", "model/affine1.b",
     lambda b: b.file(b.array_with("model/affine1.b", lambda a: a.__setitem__(0, np.inf)))),
    ("values", "-infinity in a running mean", "model/batchnorm1.running_mean",
     lambda b: b.file(b.array_with("model/batchnorm1.running_mean",
                                   lambda a: a.__setitem__(0, -np.inf)))),
    ("values", "a negative running variance", f"{VAR}: negative in 1 of its 16 values",
     lambda b: b.file(b.array_with(VAR, lambda a: a.__setitem__(5, -0.5)))),
    ("values", "NaN in an optimizer moment", "optimizer/V.0",
     lambda b: b.file({"optimizer/V.0": npy(np.full((16, 16), np.nan, np.float32))})),
    ("values", "a NaN learning rate", "optimizer/lr",
     lambda b: b.file({"optimizer/lr": npy(np.float64(np.nan))})),
    # sizes that would allocate gigabytes unchecked
    ("huge", "the architecture's Affine(30000, 30000)", W,
     lambda b: b.file(b.architecture(argument(0, in_features=30000, out_features=30000)))),
    ("huge", "BatchNorm of 10^9 features", "model/batchnorm1",
     lambda b: b.file(b.architecture(argument(1, num_features=10**9)))),
    ("huge", "a header of 30000 x 30000 over 1 KB", W, header_of(BIG, bytes(1024))),
    ("huge", "a stored member declaring 3.6 GB", W,
     changed_entry(W, lambda e: Entry(e.name, npy_header(BIG), zlib.crc32(npy_header(BIG)),
                                      len(npy_header(BIG)) + 3_600_000_000))),
    ("huge", "a text member declaring 1.2 GB", "json/history",
     lambda b: b.file({"json/history": npy_header(
         "{'descr': '<U300000000', 'fortran_order': False, 'shape': (), }", b"[]")})),
    ("huge", "a 2 MB member inflating to 2 GB", "extra/blob",
     lambda b: archive(b.entries() + [zip_bomb()])),
]

# Run in a child process limited to LIMIT bytes with an alarm: without their checks they would
# allocate gigabytes, or wait forever for a FIFO's writer.
IN_CHILD = {name for kind, name, _, _ in CASES if kind == "huge"} | {"a FIFO", "a link to a FIFO"}


def case_id(case):
    return f"{case[0]}: {case[1]}"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A real run (one epoch of a model with BatchNorm, on synthetic data) to craft cases from."""
    root = tmp_path_factory.mktemp("base")
    (root / "base.yaml").write_text(BASE_CONFIG, encoding="utf-8")
    assert main([str(root / "base.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    return Base(root / "run")


def make_case(base, folder, case):
    """A run folder holding the base's config.yaml and the case's checkpoint.npz."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_bytes(base.config)
    path = folder / "checkpoint.npz"
    made = case[3](base)
    if callable(made):
        made(path)
    else:
        path.write_bytes(made)
    return folder


def flat(message):
    return " ".join(message.split())


CHILD = """
import contextlib, io, json, resource, signal, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
import framework as F
from experiments.cli import main

def alarm(*_):
    raise TimeoutError("still waiting after 20 s")

signal.signal(signal.SIGALRM, alarm)
results = {}
for name, folder in json.loads(sys.argv[2]).items():
    calls = {"load_model": lambda: F.load_model(folder + "/checkpoint.npz"),
             "eval": lambda: main(["--eval", folder + "/checkpoint.npz", "--quiet"]),
             "resume": lambda: main(["--resume", folder, "--quiet"])}
    for entry, call in calls.items():
        err = io.StringIO()
        signal.alarm(20)
        try:
            with contextlib.redirect_stderr(err):
                outcome = ["returned", repr(call())]
        except BaseException as e:
            outcome = [type(e).__name__, str(e)]
        finally:
            signal.alarm(0)
        results[f"{name}|{entry}"] = outcome + [err.getvalue()]
with open(sys.argv[3], "w") as f:
    json.dump(results, f)
"""


@pytest.fixture(scope="module")
def child_results(base, tmp_path_factory):
    """{"case|entry": [outcome, value, stderr]} of the IN_CHILD cases, all run in one child
    process under the memory limit."""
    root = tmp_path_factory.mktemp("child")
    folders = {case[1]: str(make_case(base, root / f"case{i}", case))
               for i, case in enumerate(CASES) if case[1] in IN_CHILD}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", CHILD, str(LIMIT), json.dumps(folders),
                    str(root / "results.json")], env=env, cwd=root, timeout=600, check=True,
                   capture_output=True)
    return json.loads((root / "results.json").read_text())


@pytest.mark.parametrize("case", [c for c in CASES if c[1] not in IN_CHILD], ids=case_id)
def test_a_crafted_checkpoint_is_refused_with_one_clear_message(case, base, tmp_path, capsys):
    folder = make_case(base, tmp_path / "run", case)
    path = folder / "checkpoint.npz"
    tracemalloc.start()
    try:
        with pytest.raises(F.CheckpointError) as refused:
            F.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value).startswith(f"{path}: ") and case[2] in flat(str(refused.value))
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MB allocated to refuse it"
    capsys.readouterr()
    assert main(["--eval", str(path), "--quiet"]) == 2
    assert case[2] in flat(capsys.readouterr().err)
    assert main(["--resume", str(folder), "--quiet"]) == 2
    assert case[2] in flat(capsys.readouterr().err)


@pytest.mark.parametrize("case", [c for c in CASES if c[1] in IN_CHILD], ids=case_id)
def test_a_crafted_checkpoint_is_refused_within_1_gb_and_without_waiting(case, child_results):
    outcome, message, _ = child_results[f"{case[1]}|load_model"]
    assert outcome == "CheckpointError" and case[2] in flat(message), (outcome, message)
    for entry in ("eval", "resume"):
        outcome, value, err = child_results[f"{case[1]}|{entry}"]
        assert [outcome, value] == ["returned", "2"] and case[2] in flat(err), (entry, outcome,
                                                                               value, err)


def test_the_base_of_the_corpus_is_a_checkpoint_every_entry_accepts(base, tmp_path):
    folder = make_case(base, tmp_path / "run", ("", "", "", lambda b: b.file()))
    model = F.load_model(folder / "checkpoint.npz")
    assert [layer.name for layer in model.layers] == ["affine1", "batchnorm1", "relu1", "dropout1",
                                                      "affine2"]
    assert main(["--eval", str(folder / "checkpoint.npz"), "--quiet"]) == 0
    assert main(["--resume", str(folder), "--quiet"]) == 0


# ---- checkpoints the library reads, which a run must still refuse

def test_eval_takes_its_data_from_the_users_place_never_from_the_file(tmp_path, monkeypatch,
                                                                      capsys):
    config = resolve({"model": [{"affine": {"out": 10}}],
                      "data": {"dir": str(tmp_path / "theirs"), "mirrors": ["http://127.0.0.1:9/"]}},
                     "test")
    F.save(tmp_path / "m.npz", F.Sequential(F.Affine(784, 10), input_shape=(1, 28, 28)),
           config=config, epoch=1)
    (tmp_path / "mirror").mkdir()  # the user's mirror: a folder, so failing takes no time
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("MNIST_MIRRORS", str(tmp_path / "mirror"))
    for given, place in ((None, "mine"), ("given", "given")):
        more = ["--data-dir", str(tmp_path / given)] if given else []
        assert main(["--eval", str(tmp_path / "m.npz"), "--quiet", *more]) == 2
        err = flat(capsys.readouterr().err)
        assert str(tmp_path / place) in err and str(tmp_path / "mirror") in err
        assert "theirs" not in err and "127.0.0.1:9" not in err
    assert not (tmp_path / "theirs").exists()


def test_eval_reads_a_file_dataset_from_the_path_the_user_gives(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, tests in (("theirs", 7), ("mine", 9)):
        np.savez(tmp_path / f"{name}.npz", x_train=rng.random((20, 4), dtype=np.float32),
                 t_train=np.arange(20) % 3, x_test=rng.random((tests, 4), dtype=np.float32),
                 t_test=np.arange(tests) % 3)
    config = resolve({"data": {"dataset": "file", "path": str(tmp_path / "theirs.npz"),
                               "validation": 0}, "model": [{"affine": {"out": 3}}]}, "test")
    F.save(tmp_path / "m.npz", F.Sequential(F.Affine(4, 3), input_shape=(4,)), config=config)
    assert main(["--eval", str(tmp_path / "m.npz"), "--quiet"]) == 2
    assert "never takes from a checkpoint (it could name any file): give yours, --set data.path=" \
        in flat(capsys.readouterr().err)
    assert main(["--eval", str(tmp_path / "m.npz"), "--set", "training.seed=3"]) == 2
    assert "with --eval, --set says only where the data are (data.path)" in flat(
        capsys.readouterr().err)
    assert main(["--eval", str(tmp_path / "m.npz"), "--set", f"data.path={tmp_path / 'mine.npz'}"]
                ) == 0
    assert "on 9 test examples" in capsys.readouterr().out  # mine.npz's


@pytest.mark.parametrize("change, says", [
    (lambda config: config["training"].update(seed=-1), "training.seed: out of range"),
    (lambda config: config["data"].update(evil=1), "data.evil: unknown key"),
    (lambda config: config.update(model=[]), "model: wrong type"),
], ids=["a negative seed", "an unknown key", "no layers"])
def test_eval_checks_the_config_inside_like_any_config(change, says, base, tmp_path, capsys):
    config = base.json("json/config")
    change(config)
    folder = make_case(base, tmp_path / "run", ("", "", "", lambda b: b.file(
        {"json/config": text(config)})))
    assert main(["--eval", str(folder / "checkpoint.npz"), "--quiet"]) == 2
    assert says in flat(capsys.readouterr().err)


def test_eval_checks_memory_before_it_makes_the_model(base, tmp_path, monkeypatch, capsys):
    folder = make_case(base, tmp_path / "run", ("", "", "", lambda b: b.file()))
    monkeypatch.setattr("experiments.memory.available_bytes", lambda: 1000)
    monkeypatch.setattr(F, "load_model", lambda *args: pytest.fail("the model was made"))
    assert main(["--eval", str(folder), "--quiet"]) == 2
    assert "needs about" in flat(capsys.readouterr().err)


def test_eval_refuses_a_model_of_other_data_than_its_config_names(base, tmp_path, capsys):
    config = base.json("json/config")
    config["data"]["features"] = 12
    folder = make_case(base, tmp_path / "run", ("", "", "", lambda b: b.file(
        {"json/config": text(config)})))
    assert main(["--eval", str(folder), "--quiet"]) == 2
    assert "the model does not fit the data its config names" in flat(capsys.readouterr().err)


def test_resume_refuses_another_models_checkpoint_before_loading_data(base, tmp_path,
                                                                       monkeypatch, capsys):
    rng = np.random.default_rng(0)
    other = F.Sequential(F.Affine(16, 17, rng=rng), F.BatchNorm(17), F.ReLU(), F.Dropout(0.1),
                         F.Affine(17, 3, rng=rng), input_shape=(16,))
    extras = {"epoch": 1, "wall_seconds": 1.0,
              **{key: base.json(f"json/{key}") for key in ("config", "history", "rng")}}
    F.save(tmp_path / "other.npz", other, F.Adam(other.parameters()), **extras)
    folder = make_case(base, tmp_path / "run", ("", "", "", lambda b: (
        tmp_path / "other.npz").read_bytes()))
    monkeypatch.setattr("experiments.run.load_data", lambda *a, **k: pytest.fail("data loaded"))
    assert main(["--resume", str(folder), "--quiet"]) == 2
    err = flat(capsys.readouterr().err)
    assert "affine1.W: float32 (16, 17) in state, float32 (16, 16) in model" in err
    assert "another run's checkpoint" in err


def test_resume_refuses_a_wall_time_that_is_not_a_number(base, tmp_path, capsys):
    folder = make_case(base, tmp_path / "run", ("", "", "", lambda b: b.file(
        {"extra/wall_seconds": npy(np.asarray("soon"))})))
    assert main(["--resume", str(folder), "--quiet"]) == 2
    assert "wall_seconds 'soon' is not a number of seconds" in flat(capsys.readouterr().err)
