"""save/load: bit-for-bit round trips, atomic writes, clear errors."""
import os

import numpy as np
import pytest

import framework.archive as archive
import framework.checkpoint as checkpoint
from framework import (
    LAYERS,
    Adam,
    Affine,
    CheckpointError,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
    load,
    load_model,
    save,
)


def model_and_optimizer(seed):
    rng = np.random.default_rng(seed)
    model = Sequential(Affine(6, 5, rng=rng), ReLU(), Affine(5, 3, rng=rng))
    return model, Adam(model.parameters(), lr=0.01)


def train_steps(model, opt, steps, seed=0):
    rng = np.random.default_rng(seed)
    loss_fn = SoftmaxCrossEntropy()
    for _ in range(steps):
        loss_fn.forward(model.forward(rng.standard_normal((4, 6)).astype(np.float32)),
                        rng.integers(0, 3, 4))
        model.backward(loss_fn.backward())
        opt.step()


def test_round_trip_reproduces_outputs_bit_for_bit(tmp_path):
    a, opt = model_and_optimizer(0)
    train_steps(a, opt, 3)
    save(tmp_path / "ckpt.npz", a, opt)
    b, _ = model_and_optimizer(1)
    b.load_state_dict(load(tmp_path / "ckpt.npz")["model"])
    x = np.random.default_rng(5).standard_normal((7, 6)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_optimizer_state_round_trip_continues_identically(tmp_path):
    a, opt_a = model_and_optimizer(0)
    train_steps(a, opt_a, 3)
    save(tmp_path / "ckpt.npz", a, opt_a)
    b, opt_b = model_and_optimizer(1)
    ckpt = load(tmp_path / "ckpt.npz")
    b.load_state_dict(ckpt["model"])
    opt_b.load_state_dict(ckpt["optimizer"])
    train_steps(a, opt_a, 2, seed=9)
    train_steps(b, opt_b, 2, seed=9)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_extras_round_trip_including_a_generator_state(tmp_path):
    model, _ = model_and_optimizer(0)
    rng = np.random.default_rng(42)
    rng.random(3)
    save(tmp_path / "c.npz", model, epoch=3, note="hello", rng=rng.bit_generator.state,
         history=[{"epoch": 1, "acc": 0.5}])
    ckpt = load(tmp_path / "c.npz")
    assert ckpt["epoch"] == 3 and ckpt["note"] == "hello"
    assert ckpt["history"] == [{"epoch": 1, "acc": 0.5}]
    restored = np.random.default_rng()
    restored.bit_generator.state = ckpt["rng"]
    assert restored.random() == rng.random()


def test_file_loads_without_pickle(tmp_path):
    model, opt = model_and_optimizer(0)
    save(tmp_path / "c.npz", model, opt, rng={"nested": [1, 2]})
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:
        assert "model/affine1.W" in f.files and "optimizer/M.0" in f.files
        [f[k] for k in f.files]  # raises if any member needed pickle


def test_truncated_file_gives_a_clear_error(tmp_path):
    model, opt = model_and_optimizer(0)
    path = tmp_path / "c.npz"
    save(path, model, opt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load(path)


def test_missing_file_gives_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load(tmp_path / "nope.npz")


def test_save_replaces_atomically_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    model, _ = model_and_optimizer(0)
    path = tmp_path / "c.npz"
    save(path, model)
    good = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        save(path, model)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["c.npz"]


def test_model_save_is_save_with_the_model_in_place(tmp_path):
    model, opt = model_and_optimizer(0)
    model.save(tmp_path / "m.npz", opt, epoch=4)
    state = load(tmp_path / "m.npz")
    assert state["epoch"] == 4 and "optimizer" in state
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz").forward(x), model.forward(x))


def test_save_in_torch_order_says_what_to_write(tmp_path):
    model, _ = model_and_optimizer(0)
    with pytest.raises(TypeError, match=r"the path comes first .* F\.save\(path, model\)"):
        save(model, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_file_declaring_more_than_the_memory_available_is_refused_unread(tmp_path, monkeypatch):
    model, opt = model_and_optimizer(0)
    save(tmp_path / "c.npz", model, opt)
    monkeypatch.setattr(archive, "available_bytes", lambda: 1000)
    with pytest.raises(CheckpointError, match=r"c\.npz: its members declare .* more than the .* "
                                              "this machine has available"):
        load(tmp_path / "c.npz")


def test_a_model_larger_than_the_memory_available_is_refused_before_it_is_made(tmp_path,
                                                                               monkeypatch):
    save(tmp_path / "c.npz", Sequential(Affine(64, 64)))  # 16 KB of weights, no optimizer
    monkeypatch.setattr(checkpoint, "available_bytes", lambda: 20_000)  # enough to read it
    made = []
    monkeypatch.setattr(Affine, "state_shapes", classmethod(
        lambda cls, arguments: made.append(1) or {"W": (64, 64), "b": (64,)}))
    with pytest.raises(CheckpointError, match="its model needs about"):
        load_model(tmp_path / "c.npz")
    assert len(made) == 1  # the file's check asked for the shapes; no Affine was made


LAYER_ARGUMENTS = {"affine": {"in_features": 3, "out_features": 4},
                   "conv2d": {"in_channels": 2, "out_channels": 3, "kernel_size": (2, 3)},
                   "batchnorm": {"num_features": 5}, "maxpool2d": {"kernel_size": 2}}


@pytest.mark.parametrize("kind", [kind for kind, cls in LAYERS.items()
                                  if cls.__module__.startswith("framework.")])
def test_a_layer_holds_the_shapes_it_declares(kind):
    layer = LAYERS[kind](**LAYER_ARGUMENTS.get(kind, {}))
    held = {p.name: p.data.shape for p in layer.parameters()}
    held.update({name: a.shape for name, a in layer.buffers().items()})
    assert type(layer).state_shapes(layer.arguments) == held
