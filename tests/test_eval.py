"""--eval: a finished run's model on its test set; a live run, a config, an image or another file
is refused, naming what was typed, what it is and what to type instead."""
import pytest
from test_faults import err_of, training
from test_train_cli import tiny_config

from experiments.cli import main


def test_eval_of_a_finished_run_reports_its_test_accuracy(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["--eval", str(run)]) == 0
    assert f"{run / 'best.npz'} (epoch " in capsys.readouterr().out


def test_eval_of_a_run_still_training_is_refused_naming_its_process(tmp_path, capsys):
    folder = tmp_path / "run"
    with training(tiny_config(tmp_path), folder, "best.npz", "--set", "logging.plots=true") \
            as running:  # its first epoch is saved
        assert main(["--eval", str(folder)]) == 2
        err = err_of(capsys)
        assert err.startswith(f"--eval {folder}: this run is still training (process "
                              f"{running.pid} writes to its folder)"), err
        assert not list(folder.glob("*.png"))  # nothing written into the live run's folder


@pytest.mark.parametrize("name, head, says", [
    ("quick.yaml", b"name: quick\ntraining: {epochs: 1}\n",
     "a YAML file: that is a config, not a trained model. Train it with: python train.py "),
    ("digit7.png", b"\x89PNG\r\n\x1a\n" + bytes(40),
     "a PNG image, not a trained model. To classify it, use --predict: python train.py "
     "--predict RUN "),
    ("digit7.jpg", b"\xff\xd8\xff\xe0" + bytes(40),
     "a JPEG image, not a trained model. To classify it, use --predict: python train.py "
     "--predict RUN "),
    ("notes.txt", b"my best run so far\n", "notes.txt: not a checkpoint"),
])
def test_eval_of_what_is_not_a_checkpoint_names_it_as_typed(tmp_path, monkeypatch, capsys, name,
                                                             head, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(head)
    assert main(["--eval", name]) == 2
    err = err_of(capsys)
    assert err.startswith(f"--eval {name}: {says}"), err
    assert "pickle" not in err and str(tmp_path) not in err


def test_eval_of_nothing_there_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--eval", "runs/nope"]) == 2
    assert err_of(capsys) == "--eval runs/nope: no such file or folder."


def test_eval_refuses_a_data_dir_its_dataset_does_not_read(tmp_path, capsys):
    out = tmp_path / "run"  # synthetic data: made, not read from a folder
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["--eval", str(out), "--data-dir", str(tmp_path), "--quiet"]) == 2
    assert (f"--data-dir {tmp_path}: the synthetic data are not read from a folder"
            in " ".join(capsys.readouterr().err.split()))
