"""The README's library script runs as written (on a subset of MNIST, for time)."""
import re
from pathlib import Path

import pytest

import datasets

README = Path(__file__).resolve().parents[1] / "README.md"


def library_script():
    """The ```python block of the README's "The library" section."""
    section = README.read_text(encoding="utf-8").split("## The library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's library section has no python block"
    return blocks[0]


def test_the_readme_library_script_runs_as_written(mnist_files, tmp_path, monkeypatch, capsys):
    real = datasets.load_mnist

    def subset(*args, **kwargs):  # the real loader, then 10000 training and 500 test images
        kwargs.setdefault("mirrors", [str(mnist_files)])
        (x, t), (x_test, t_test) = real(tmp_path / "data", *args[1:], **kwargs)
        return (x[:10000], t[:10000]), (x_test[:500], t_test[:500])

    monkeypatch.setattr(datasets, "load_mnist", subset)
    monkeypatch.chdir(tmp_path)
    exec(compile(library_script(), str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", printed).group(1))
    assert accuracy > 85, printed  # 3 epochs on the 5000 left after validation still learn
    assert "epoch 3/3" in printed and (tmp_path / "mnist_mlp.npz").exists()
    errors = [float(line.split()[-1]) for line in printed.splitlines()
              if line.startswith("gradcheck")]
    assert len(errors) == 5 and max(errors) < 1e-6, printed  # 4 parameters and the input


def test_the_script_uses_only_what_the_package_exports():
    names = set(re.findall(r"\bF\.(\w+)", library_script()))
    import framework
    assert names <= set(framework.__all__), names - set(framework.__all__)


@pytest.mark.parametrize("config", ["mnist_mlp", "quick", "mnist_cnn", "book_ch6_optimizers",
                                    "book_simple_convnet", "batchnorm_sweep", "compare_optimizers"])
def test_every_config_the_readme_names_exists(config):
    text = README.read_text(encoding="utf-8")
    path = README.parent / "configs" / f"{config}.yaml"
    assert path.exists() and (f"configs/{config}.yaml" in text or config == "compare_optimizers"
                              and "compare_optimizers.yaml" in text)


def test_every_set_the_readme_shows_is_a_valid_override():
    from experiments.config import load
    text = " ".join(README.read_text(encoding="utf-8").split())
    overrides = [o for o in re.findall(r"--set (\S+=[^\s`]+)", text) if o != "key.path=value"]
    assert "training.max_steps=50" in overrides  # how to try out a slow config
    for override in overrides:
        load(None, [override])  # the defaults: the model of configs/mnist_mlp.yaml
