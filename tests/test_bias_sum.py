"""bias_sum.npz and bias_sum.png: the dY a run saves at step 1 adds up to the db backward
computed, for an Affine layer over the rows, for a conv layer over the rows and positions."""
import numpy as np
import pandas as pd
import pytest
from test_train_cli import tiny_config

import framework as F
from experiments.bias_sum import CHANNELS, BiasSumSample, plot_bias_sum, read_sample
from experiments.cli import main


def test_a_run_saves_a_dy_whose_rows_add_up_to_db(tmp_path):
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 0
    sample = read_sample(out / "bias_sum.npz")
    output, first = sample["layers"]
    assert sample["step"] == 1
    assert (str(output["name"]), str(first["name"])) == ("affine3.b", "affine1.b")
    assert output["rows"].shape == (50, 3) and first["rows"].shape == (50, 10)  # 10 of 16
    for layer in (output, first):  # in backward's order and precision: the very same numbers
        np.testing.assert_array_equal(layer["rows"].sum(axis=0), layer["db"])
    # the output layer's dY is (softmax - onehot) / N: one negative entry a row, rows sum to 0
    assert ((output["rows"] < 0).sum(axis=1) == 1).all()
    np.testing.assert_allclose(output["rows"].sum(axis=1), 0, atol=1e-7)
    logged = pd.read_csv(out / "bias_grads.csv").query("step == 1 and layer == 'affine3.b'")
    assert np.linalg.norm(output["db"]) == pytest.approx(logged["db_norm"].item(), rel=1e-6)
    assert (out / "bias_sum.npz").stat().st_size < 10_000


def conv_sample(tmp_path):
    """bias_sum.npz of one step of a small CNN on random images."""
    rng = np.random.default_rng(0)
    model = F.Sequential(F.Conv2D(1, 6, 3, padding=1, rng=rng), F.ReLU(), F.Flatten(),
                         F.Affine(6 * 7 * 5, 4, rng=rng), input_shape=(1, 7, 5))
    x = rng.random((12, 1, 7, 5), dtype=np.float32)
    t = rng.integers(0, 4, 12)
    F.fit(model, F.SoftmaxCrossEntropy(), F.SGD(model.parameters(), lr=0.1), (x, t), epochs=1,
          batch_size=12, rng=rng, callbacks=[BiasSumSample(tmp_path)])
    return read_sample(tmp_path / "bias_sum.npz")


def test_a_conv_layer_s_positions_add_up_to_its_rows_and_its_rows_to_db(tmp_path):
    _, conv = conv_sample(tmp_path)["layers"]
    assert tuple(conv["shape"]) == (12, 6, 7, 5)
    assert conv["positions"].shape == (CHANNELS, 7, 5) and conv["rows"].shape == (12, CHANNELS)
    np.testing.assert_allclose(conv["positions"].sum(axis=(1, 2)), conv["rows"][0], rtol=1e-5)
    np.testing.assert_allclose(conv["rows"].sum(axis=0), conv["db"], rtol=1e-5, atol=1e-9)
    assert np.abs(conv["db"]).max() > 1e-4  # a real gradient, not zeros matching zeros


def test_the_picture_is_drawn_for_affine_and_conv_layers(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    conv_sample(tmp_path)
    assert plot_bias_sum(plt, tmp_path, F.SoftmaxCrossEntropy) == tmp_path / "bias_sum.png"
    assert (tmp_path / "bias_sum.png").stat().st_size > 10_000


def test_a_damaged_sample_draws_nothing(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    (tmp_path / "bias_sum.npz").write_bytes(b"PK\x03\x04 cut short")
    assert plot_bias_sum(plt, tmp_path, F.SoftmaxCrossEntropy) is None
    assert not (tmp_path / "bias_sum.png").exists()


@pytest.mark.parametrize("loss, says, never", [
    (F.SoftmaxCrossEntropy, "(softmax - onehot) / N", "2 (y - t)"),
    (F.MeanSquaredError, "dY = 2 (y - t) / (N K)", "softmax"),
])
def test_the_output_layers_caption_states_its_own_losss_gradient(loss, says, never):
    from experiments.bias_sum import caption
    layer = {"name": "affine3.b", "next": "none"}
    text = caption(layer, "output layer", (8, 10), 10, loss)
    assert says in text and never not in text
