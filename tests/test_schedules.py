"""Learning-rate schedules, and fit applying them step by step."""
import numpy as np
import pytest

from framework import (
    SGD,
    Affine,
    Constant,
    Cosine,
    LRSchedule,
    NonFiniteError,
    Sequential,
    SoftmaxCrossEntropy,
    StepDecay,
    Warmup,
    fit,
)


def test_constant():
    assert [Constant(0.1)(s) for s in (0, 7, 10_000)] == [0.1, 0.1, 0.1]


def test_step_decay_multiplies_by_gamma_every_interval():
    schedule = StepDecay(1.0, every=3, gamma=0.5)
    assert [schedule(s) for s in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_cosine_runs_from_lr_to_final_over_total_steps():
    schedule = Cosine(1.0, total_steps=5, final=0.2)
    assert schedule(0) == 1.0
    assert schedule(2) == pytest.approx(0.6)  # halfway: the mean of lr and final
    assert schedule(4) == pytest.approx(0.2)
    assert schedule(100) == pytest.approx(0.2)
    assert all(schedule(s) > schedule(s + 1) for s in range(4))


def test_warmup_ramps_linearly_then_hands_over_to_the_schedule_at_its_start():
    schedule = Warmup(StepDecay(0.8, every=2, gamma=0.5), steps=4)
    assert [schedule(s) for s in range(8)] == pytest.approx([0.2, 0.4, 0.6, 0.8,
                                                             0.8, 0.8, 0.4, 0.4])


def test_fit_sets_the_scheduled_rate_before_every_step(monkeypatch):
    rng = np.random.default_rng(0)
    model = Sequential(Affine(3, 2, rng=rng))
    optimizer = SGD(model.parameters(), lr=99.0)
    seen = []
    original = optimizer.step
    monkeypatch.setattr(optimizer, "step", lambda: (seen.append(optimizer.lr), original())[1])
    x, t = rng.standard_normal((10, 3)).astype(np.float32), rng.integers(0, 2, 10)
    history = fit(model, SoftmaxCrossEntropy(), optimizer, (x, t), epochs=2, batch_size=4, rng=rng,
                  callbacks=[LRSchedule(StepDecay(0.1, every=2, gamma=0.5))])
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])  # 3 steps an epoch
    assert history.lr.tolist() == pytest.approx([0.05, 0.025])


def test_step_decay_past_the_float_range_is_inf_not_overflow_error():
    schedule = StepDecay(1e-300, every=1, gamma=1e300)
    assert schedule(1) == pytest.approx(1.0) and schedule(2) == float("inf")


def test_a_non_finite_scheduled_rate_stops_fit_before_the_step():
    rng = np.random.default_rng(0)
    model = Sequential(Affine(3, 2, rng=rng))
    before = model.parameters()[0].data.copy()
    x, t = rng.standard_normal((4, 3)).astype(np.float32), rng.integers(0, 2, 4)
    with pytest.raises(NonFiniteError, match=r"step 1 \(epoch 1\): the learning-rate schedule"):
        fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, t), epochs=1,
            batch_size=4, rng=rng, callbacks=[LRSchedule(Constant(float("inf")))])
    assert (model.parameters()[0].data == before).all()
