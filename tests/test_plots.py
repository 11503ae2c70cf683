"""The pictures: drawn again by --plots from a run's files, and readable (whole-number epochs,
accuracy in percent, titles inside the figure, a labelled colour bar, one legend entry and one
colour per layer, every step of a short run)."""
import sys

import numpy as np
import pandas as pd
import pytest
from test_faults import training
from test_train_cli import tiny_config

import framework as F
from experiments.cli import main
from experiments.config import load
from experiments.plots import draw_bias, draw_confusion, draw_curves

plt = pytest.importorskip("matplotlib.pyplot", reason="plots need the optional matplotlib")
to_rgba = pytest.importorskip("matplotlib.colors").to_rgba
PNG = b"\x89PNG\r\n\x1a\n"
LONG_NAME = "20260106-134512-mnist_mlp_seed_3_with_a_name_long_enough_to_leave_a_figure"
TEN_BIASES = ("model=[{affine: {out: 8}}, batchnorm, relu, {affine: {out: 8}}, batchnorm, relu, "
              "{affine: {out: 8}}, batchnorm, relu, {affine: {out: 8}}, batchnorm, relu, "
              "{affine: {out: 8}}, batchnorm, relu, {affine: {out: 3}}]")


def trained(tmp_path, *sets):
    """A tiny synthetic run in tmp_path/run, trained without plots; returns its folder."""
    out = tmp_path / "run"
    argv = [tiny_config(tmp_path), "--out", str(out), "--quiet", "--set", "logging.plots=false"]
    assert main([*argv, *[item for s in sets for item in ("--set", s)]]) == 0
    return out


def inside(figure):
    """Whether everything the figure draws (titles, labels, legends, colour bar) lies within it,
    so nothing is cut off."""
    figure.canvas.draw()
    drawn, page = figure.get_tightbbox(), figure.bbox_inches
    slack = 0.03  # inches: the layout's rounding, not a cut-off word
    return (page.x0 - slack <= drawn.x0 and drawn.x1 <= page.x1 + slack
            and page.y0 - slack <= drawn.y0 and drawn.y1 <= page.y1 + slack)


def test_plots_draws_the_pictures_of_a_run_trained_without_them(tmp_path, capsys):
    run = trained(tmp_path)
    assert not list(run.glob("*.png"))
    assert main(["--plots", str(run)]) == 0
    for name in ("curves.png", "bias_grads.png"):
        assert (run / name).read_bytes().startswith(PNG)
    assert f"plots: {run / 'curves.png'}, {run / 'bias_grads.png'}" in capsys.readouterr().out


def test_a_run_trained_without_matplotlib_says_how_to_get_its_plots(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--set", "logging.plots=true"]) == 0
    assert "then python train.py --plots RUN draws them" in capsys.readouterr().out
    assert not list(out.glob("*.png"))
    assert main(["--plots", str(out)]) == 2
    assert "--plots draws with matplotlib, which is not installed" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["--plots", str(out)]) == 0
    assert (out / "curves.png").read_bytes().startswith(PNG)


def test_plots_of_a_sweep_draws_each_run_and_the_comparison(tmp_path):
    sweep = tiny_config(tmp_path, "sweep: {grid: {training.seed: [1, 2]}}\n")
    out = tmp_path / "sweep"
    assert main([sweep, "--out", str(out), "--quiet", "--set", "training.epochs=1"]) == 0
    assert main(["--plots", str(out)]) == 0
    assert (out / "comparison.png").read_bytes().startswith(PNG)
    for run in ("training.seed=1", "training.seed=2"):
        assert (out / run / "curves.png").read_bytes().startswith(PNG)


def test_plots_of_a_live_run_is_refused_naming_its_process(tmp_path, capsys):
    folder = tmp_path / "run"
    with training(tiny_config(tmp_path), folder, "metrics.csv") as running:
        assert main(["--plots", str(folder)]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"(process {running.pid}) is still writing to this folder" in err
        assert not list(folder.glob("*.png"))


@pytest.mark.parametrize("argv, message", [
    (["--plots", "nowhere"], "--plots nowhere: no such folder."),
    (["--plots", "tiny.yaml"], "--plots tiny.yaml: a file; it takes a run's folder."),
])
def test_plots_of_what_is_not_a_run_says_so(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    tiny_config(tmp_path)
    assert main(argv) == 2
    assert " ".join(capsys.readouterr().err.split()) == message


def test_curves_have_whole_epochs_and_accuracy_in_percent(tmp_path):
    run = trained(tmp_path, "training.epochs=3")
    metrics, config = pd.read_csv(run / "metrics.csv"), load(run / "config.yaml")
    figure = draw_curves(plt, LONG_NAME, metrics, pd.read_csv(run / "steps.csv"), config)
    loss, accuracy = figure.axes
    figure.canvas.draw()
    for ax in (loss, accuracy):
        assert ax.get_xlabel() == "epoch"
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(t == int(t) for t in ticks), ticks
    labels = [t.get_text() for t in accuracy.get_yticklabels() if t.get_text()]
    assert labels and all(label.endswith("%") for label in labels), labels
    assert inside(figure)
    plt.close(figure)


def test_a_one_epoch_run_is_drawn_step_by_step(tmp_path):
    run = trained(tmp_path, "training.epochs=1")  # 300 training examples, batches of 50: 6 steps
    metrics, steps = pd.read_csv(run / "metrics.csv"), pd.read_csv(run / "steps.csv")
    figure = draw_curves(plt, run.name, metrics, steps, load(run / "config.yaml"))
    for ax, column in zip(figure.axes, ("loss", "acc")):
        assert ax.get_xlabel() == "step"
        train = next(line for line in ax.get_lines() if line.get_label().startswith("train"))
        np.testing.assert_array_equal(train.get_xdata(), range(1, 7))
        np.testing.assert_allclose(train.get_ydata(), steps[column])
    plt.close(figure)


def test_steps_csv_has_each_steps_batch_accuracy(tmp_path):
    run = trained(tmp_path, "training.epochs=2")
    steps, metrics = pd.read_csv(run / "steps.csv"), pd.read_csv(run / "metrics.csv")
    sizes = np.array([50] * 6)  # 300 examples in batches of 50
    for epoch, acc in zip(metrics["epoch"], metrics["train_acc"]):
        batch_acc = steps.loc[steps["epoch"] == epoch, "acc"].to_numpy()
        np.testing.assert_allclose(batch_acc * 50, np.round(batch_acc * 50))  # right out of 50
        assert (batch_acc * sizes).sum() / sizes.sum() == pytest.approx(acc)


def test_the_bias_plot_of_ten_layers_gives_each_one_entry_and_its_own_colour(tmp_path):
    run = trained(tmp_path, TEN_BIASES, "training.epochs=2")
    bias = pd.read_csv(run / "bias_grads.csv")
    assert bias["layer"].nunique() == 11
    figure = draw_bias(plt, LONG_NAME, bias, F.SoftmaxCrossEntropy)
    panels = [ax for ax in figure.axes if ax.get_yscale() == "log"]
    assert len(panels) == 2  # affine and batchnorm layers
    drawn = set()
    for ax in panels:
        entries = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(entries) == len(set(entries)) and set(entries) <= set(bias["layer"])
        drawn |= set(entries)
        colours = [to_rgba(line.get_color()) for line in ax.get_lines()
                   if not line.get_label().startswith("_")]  # the rings carry no label
        assert len(colours) == len(set(colours)) == len(entries)
        figure.canvas.draw()
        legend, data = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= data.x1  # beside the data, never over it
    assert drawn == set(bias["layer"])
    assert inside(figure)
    plt.close(figure)


def test_a_one_epoch_bias_plot_shows_each_logged_step(tmp_path):
    run = trained(tmp_path, "training.epochs=1")  # bias_every 4: steps 1 and 4
    figure = draw_bias(plt, run.name, pd.read_csv(run / "bias_grads.csv"), F.SoftmaxCrossEntropy)
    line = next(line for line in figure.axes[0].get_lines() if line.get_label() == "affine1.b")
    np.testing.assert_array_equal(line.get_xdata(), [1, 4])
    assert line.get_marker() == "o"  # a point per logged step, not only a line between them
    plt.close(figure)


def test_the_confusion_matrix_has_a_labelled_colour_bar_of_counts_and_a_title_inside():
    counts = np.array([[980, 0, 3], [1, 1120, 14], [7, 2, 1015]])
    confusion = pd.DataFrame(counts, index=range(3), columns=range(3))
    figure = draw_confusion(plt, LONG_NAME, confusion)
    image, bar = figure.axes
    assert bar.get_ylabel() == "test examples (log scale)"
    figure.canvas.draw()
    ticks = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert {"1", "10", "100", "1,000"} <= set(ticks), ticks  # counts, not their logarithms
    assert inside(figure)
    plt.close(figure)


def texts(figure):
    """Every piece of text the figure draws: titles, labels, legend entries."""
    return " | ".join(t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text")))


def test_an_mse_runs_bias_plot_states_mses_identity_not_softmaxs(tmp_path):
    run = trained(tmp_path, "loss=mean_squared_error", "training.epochs=1")
    figure = draw_bias(plt, run.name, pd.read_csv(run / "bias_grads.csv"), F.MeanSquaredError)
    drawn = texts(figure)
    assert "db_k = 2/K mean_n (y_nk - t_nk)" in drawn
    assert "Σ_k db_k" not in drawn and "mean p_k" not in drawn
    plt.close(figure)


def test_plots_draws_a_run_of_an_older_version_whose_config_this_one_refuses(tmp_path):
    run = trained(tmp_path)
    config = run / "config.yaml"  # settings an older version wrote and this one no longer takes
    config.write_text(config.read_text() + "retired_section: {setting: 1}\n")
    assert main(["--plots", str(run)]) == 0
    assert (run / "curves.png").read_bytes().startswith(PNG)


def test_plots_refuses_a_csv_with_text_where_numbers_belong(tmp_path, capsys):
    run = trained(tmp_path)
    steps = run / "steps.csv"
    steps.write_text(steps.read_text().replace("\n1,", "\none,", 1))
    assert main(["--plots", str(run)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"{steps}: the column 'step' holds text where numbers belong")
    assert not (run / "curves.png").exists()


def test_an_axis_of_one_epoch_shows_that_epoch_not_fractions_of_it():
    from experiments.plots import whole_numbers
    figure, ax = plt.subplots()
    ax.plot([1], [0.5], "o")  # a sweep's runs of one epoch each
    whole_numbers(ax.xaxis)
    low, high = ax.get_xlim()
    shown = [tick for tick in ax.get_xticks() if low <= tick <= high]
    plt.close(figure)
    assert shown == [1.0]


def test_a_run_that_diverges_in_its_first_epoch_still_gets_its_bias_pictures(tmp_path):
    out = tmp_path / "run"  # an lr so large that the first epoch overflows
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet", "--set", "optimizer.name=sgd",
                 "--set", "optimizer.lr=1e30", "--set", "logging.plots=true"]) == 3
    assert not (out / "curves.png").exists()  # no epoch ended: no curves to draw
    assert (out / "bias_sum.png").exists() and (out / "bias_grads.png").exists()


def test_plots_of_a_sweep_with_a_run_that_failed_before_its_first_checkpoint(tmp_path,
                                                                            monkeypatch):
    import experiments.run
    real = experiments.run.load_data

    def no_memory_for_seed_1(config, *args, **kwargs):
        if config["training"]["seed"] == 1:
            raise MemoryError
        return real(config, *args, **kwargs)

    monkeypatch.setattr(experiments.run, "load_data", no_memory_for_seed_1)
    out = tmp_path / "sweep"
    config = tiny_config(tmp_path, "sweep: {grid: {training.seed: [0, 1]}}\n")
    assert main([config, "--out", str(out), "--quiet"]) == 2  # one of 2 runs failed
    assert not (out / "training.seed=1").exists()  # it never started: no folder
    (out / "comparison.png").unlink(missing_ok=True)
    assert main(["--plots", str(out), "--quiet"]) == 0
    assert (out / "comparison.png").exists() and (out / "training.seed=0" / "curves.png").exists()
