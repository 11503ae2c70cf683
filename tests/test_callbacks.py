"""fit's callbacks: each behaviour the loop used to carry itself, now hooked in from outside."""
import numpy as np
import pytest

import framework as F


def blobs(n=240, classes=3, dim=6, seed=100):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, dim)) * 3
    t = rng.integers(0, classes, n)
    return (centers[t] + rng.standard_normal((n, dim))).astype(np.float32), t


def setup(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    model = F.Sequential(F.Affine(6, 8, rng=rng, dtype=dtype), F.ReLU(), F.Dropout(0.2, rng=rng),
                         F.Affine(8, 3, rng=rng, dtype=dtype))
    return rng, model, F.SoftmaxCrossEntropy(), F.Adam(model.parameters(), lr=0.01)


def train(callbacks, epochs=3, seed=0, start_epoch=0, data=None, val=True):
    x, t = data if data is not None else blobs()
    rng, model, loss_fn, optimizer = setup(seed)
    history = F.fit(model, loss_fn, optimizer, (x[:200], t[:200]), epochs=epochs, batch_size=32,
                    rng=rng, val=(x[200:], t[200:]) if val else None, callbacks=callbacks,
                    start_epoch=start_epoch)
    return history, model


def test_evaluate_adds_a_split_every_k_epochs_and_after_the_last():
    x, t = blobs()
    history, _ = train([F.Evaluate({"test": (x[:50], t[:50])}, every=2)], epochs=5)
    assert history.test_acc.notna().tolist() == [False, True, False, True, True]


def test_early_stopping_stops_after_patience_evaluations_without_improvement():
    stopper = F.EarlyStopping(patience=2, history=[{"val_acc": 1.0}])  # nothing can beat 1.0
    history, _ = train([stopper], epochs=10)
    assert len(history) == 2 and stopper.stopped_early


def test_early_stopping_decides_before_a_resumed_run_trains_more():
    stopper = F.EarlyStopping(patience=1, history=[{"val_acc": 0.9}, {"val_acc": 0.8}])
    history, _ = train([stopper], epochs=5, start_epoch=2)
    assert len(history) == 0 and stopper.stopped_early


def test_lr_schedule_sets_each_steps_rate_counted_from_zero():
    seen = []

    class Spy(F.Callback):
        def after_backward(self, state):
            seen.append(state.optimizer.lr)

    train([F.LRSchedule(lambda step: float(step)), Spy()], epochs=1)
    assert seen == [float(s) for s in range(7)]  # 200 examples in batches of 32: 7 steps


def test_shuffle_false_keeps_the_file_order():
    order = []

    class Spy(F.Callback):
        def after_backward(self, state):
            order.append(state.t.copy())

    x, t = blobs()
    rng, model, loss_fn, optimizer = setup()
    F.fit(model, loss_fn, optimizer, (x, t), epochs=1, batch_size=40, shuffle=False,
          callbacks=[Spy()])
    np.testing.assert_array_equal(np.concatenate(order), t)


def test_check_finite_blames_the_input_when_the_batch_holds_nan():
    x, t = blobs()
    x[5, 2] = np.nan
    with pytest.raises(F.NonFiniteError,
                       match=r"step 1 \(epoch 1\).*input batch holds NaN or inf "
                             r"\(in 1 of its 32 examples, the first at batch row 5\)"):
        F.fit(*setup()[1:], (x, t), epochs=1, batch_size=32, shuffle=False,
              callbacks=[F.CheckFinite()])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the inf is the point
def test_checkpoint_saves_each_epoch_and_never_non_finite_weights(tmp_path):
    history, model = train([F.Checkpoint(tmp_path / "c.npz")], epochs=2)
    state = F.load(tmp_path / "c.npz")
    assert state["epoch"] == 2 and [r["epoch"] for r in state["history"]] == [1, 2]
    np.testing.assert_array_equal(state["model"]["affine1.W"], model.layers[0].W.data)

    class Poison(F.Callback):  # a weight turns inf during epoch 1
        def on_step_end(self, state):
            state.model.layers[0].W.data[0, 0] = np.inf

    train([Poison(), F.Checkpoint(tmp_path / "d.npz")], epochs=1)
    assert F.load(tmp_path / "d.npz")["epoch"] == 0  # the finite start, not the inf epoch 1


def test_progress_prints_one_line_per_epoch_off_a_terminal(capsys):
    train([F.ProgressBar()], epochs=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"] and "  val " in lines[0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the inf is the point
def test_fit_without_callbacks_runs_the_defaults(capsys):
    x, t = blobs()
    x[0, 0] = np.inf
    rng, model, loss_fn, optimizer = setup()
    with pytest.raises(F.NonFiniteError):
        F.fit(model, loss_fn, optimizer, (x, t), epochs=1, batch_size=32, shuffle=False)
    assert [type(c).__name__ for c in F.default_callbacks()] == ["CheckFinite", "ProgressBar"]


def test_callbacks_run_in_the_order_given():
    calls = []

    class Named(F.Callback):
        def __init__(self, name):
            self.name = name

        def on_epoch_end(self, state):
            calls.append(self.name)

    train([Named("a"), Named("b")], epochs=1)
    assert calls == ["a", "b"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_check_finite_stops_when_the_epochs_validation_loss_is_not_finite():
    class Blowup(F.Callback):  # the last step leaves weights that overflow the logits
        def on_step_end(self, state):
            if state.step == state.steps_per_epoch:
                state.model.layers[-1].W.data[...] = 1e38

    with pytest.raises(F.NonFiniteError, match=r"epoch 1: val_loss is (nan|inf) after the epoch"):
        train([Blowup(), F.CheckFinite()], epochs=2)


def test_random_shift_moves_each_image_by_its_drawn_offset_and_fills_zeros():
    x = np.random.default_rng(3).random((40, 1, 6, 5)).astype(np.float32)
    shift = F.RandomShift(2, np.random.default_rng(4))

    class State:
        pass

    state = State()
    state.x = x
    shift.on_batch_start(state)
    offsets = np.random.default_rng(4).integers(-2, 3, size=(40, 2))  # the same draws
    for n, (dy, dx) in enumerate(offsets):
        expected = np.zeros((6, 5), np.float32)
        for i in range(6):
            for j in range(5):
                if 0 <= i + dy < 6 and 0 <= j + dx < 5:
                    expected[i + dy, j + dx] = x[n, 0, i, j]
        np.testing.assert_array_equal(state.x[n, 0], expected, err_msg=f"example {n}: {dy}, {dx}")
    assert len({tuple(o) for o in offsets}) > 10  # many shifts, all checked


def test_random_shift_refuses_a_batch_that_is_not_images():
    class State:
        x = np.zeros((3, 784), np.float32)

    with pytest.raises(ValueError, match=r"RandomShift: needs images \(N, C, H, W\), got a batch "
                                         r"of shape \(3, 784\)"):
        F.RandomShift(1, np.random.default_rng(0)).on_batch_start(State())


def test_stop_after_ends_mid_epoch_and_the_run_ends_in_that_epoch():
    ended = []

    class Spy(F.Callback):
        def on_fit_end(self, state):
            ended.append((state.epoch, state.step))

    history, _ = train([F.StopAfter(10), Spy()], epochs=5)  # 7 steps an epoch
    assert list(history.epoch) == [1, 2] and list(history.step) == [7, 10]
    assert ended == [(2, 10)]
