"""Inputs at the edges: an empty batch goes through every layer and predict as PyTorch's would
(empty outputs), training and evaluating on no examples are refused, and integer or bool input
is refused by every layer with the message predict gives."""
import numpy as np
import pytest
from test_returned_arrays import CASES, IDS

import framework as F

FLOATS_ONLY = "expects floating-point inputs scaled as in training"


def mlp(input_shape=(784,)):
    rng = np.random.default_rng(0)
    return F.Sequential(F.Affine(784, 8, rng=rng), F.ReLU(), F.Affine(8, 3, rng=rng),
                        input_shape=input_shape)


def cnn():
    rng = np.random.default_rng(0)
    return F.Sequential(F.Conv2D(1, 2, 3, stride=3, rng=rng), F.BatchNorm(2), F.ReLU(),
                        F.MaxPool2D(3), F.Flatten(), F.Affine(2 * 3 * 3, 3, rng=rng),
                        input_shape=(1, 28, 28))


MODELS = {"mlp": mlp, "mlp (1, 28, 28)": lambda: mlp((1, 28, 28)), "cnn": cnn}


@pytest.mark.parametrize("kind, make, shape, train", CASES, ids=IDS)
def test_an_empty_batch_goes_through_every_layer_in_eval_mode(kind, make, shape, train):
    layer = make()
    y = layer.forward(np.zeros((0, *shape), np.float32))
    assert y.shape == (0, *layer.output_shape(shape)) and y.dtype == np.float32
    assert layer.backward(np.zeros_like(y)).shape == (0, *shape)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@pytest.mark.parametrize("shape", [(0, 784), (0, 1, 28, 28)])
def test_predict_of_an_empty_batch_is_empty(model, shape):
    model = model()
    x = np.zeros(shape, np.float32)
    assert model.predict(x).shape == (0,)
    assert model.predict_proba(x).shape == (0, 3)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_predict_gives_an_int_for_one_example_and_an_array_for_a_batch_whatever_the_model(model):
    model = model()
    x = np.random.default_rng(1).random((3, 1, 28, 28)).astype(np.float32)
    expected = model.predict(x)
    for one in (x[1].reshape(784), x[1].reshape(28, 28), x[1].reshape(model.input_shape)):
        answer = model.predict(one)
        assert type(answer) is int and answer == expected[1], one.shape
    for batch in (x[1:2], x[1:2].reshape(1, 784), x.reshape(3, 784)):
        answer = model.predict(batch)
        assert isinstance(answer, np.ndarray), batch.shape
        np.testing.assert_array_equal(answer, expected[1:2] if len(batch) == 1 else expected)


@pytest.mark.parametrize("kind, make, shape, train", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, bool])
def test_integer_or_bool_input_is_refused_by_every_layer(kind, make, shape, train, dtype):
    layer = make()
    with pytest.raises(ValueError, match=f"{FLOATS_ONLY}.*got {np.dtype(dtype)}"):
        layer.forward(np.ones((2, *shape), dtype), train=train)


def test_predict_refuses_integer_input_with_the_layers_message():
    with pytest.raises(ValueError, match=f"conv2d1: {FLOATS_ONLY} \\(MNIST: pixels / 255\\), "
                                         "got uint8"):
        cnn().predict(np.zeros((2, 1, 28, 28), np.uint8))


def test_evaluate_refuses_no_examples():
    with pytest.raises(ValueError, match=r"evaluate: no examples \(x has shape \(0, 784\)\)"):
        F.evaluate(mlp(), F.SoftmaxCrossEntropy(), np.zeros((0, 784), np.float32),
                   np.zeros(0, np.int64))


@pytest.mark.parametrize("empty", ["train", "val"])
def test_fit_refuses_no_examples_before_training(empty):
    model = mlp()
    before = [p.data.copy() for p in model.parameters()]
    some = (np.ones((4, 784), np.float32), np.zeros(4, np.int64))
    none = (np.ones((0, 784), np.float32), np.zeros(0, np.int64))
    splits = {"train": some, "val": some} | {empty: none}
    with pytest.raises(ValueError, match=f"fit: {empty} holds no examples"):
        F.fit(model, F.SoftmaxCrossEntropy(), F.SGD(model.parameters(), lr=0.1), splits["train"],
              val=splits["val"], epochs=1, batch_size=2, shuffle=False, callbacks=[])
    for p, old in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, old)
