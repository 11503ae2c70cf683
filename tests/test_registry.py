"""Registration: a layer or optimizer is listed by a decorator on its class, checked once there,
and whatever is registered is saved and rebuilt with every setting it was made with."""
import importlib
import inspect
import math
import pkgutil

import numpy as np
import pytest
from test_train_cli import tiny_config
from user_classes import Offset, SignSGD

import framework as F
from experiments import config as C
from experiments.cli import main
from framework.checks import (
    REQUIRED,
    Either,
    Flag,
    Integer,
    OneOf,
    Optional,
    Real,
    Size,
    checked,
    settings,
)


@pytest.fixture
def scratch_registries(monkeypatch):
    """Registrations made in the test are forgotten after it."""
    for registry in (F.LAYERS, F.OPTIMIZERS):
        monkeypatch.setattr(registry, "classes", dict(registry.classes))


# ---- a class that declares itself wrongly is refused when it is registered

def test_a_plain_annotation_is_refused_naming_the_class_the_argument_and_the_check(
        scratch_registries):
    with pytest.raises(TypeError) as refused:
        @F.register_layer
        class AvgPool2D(F.Layer):
            @checked
            def __init__(self, kernel_size: int = 2, name=None):
                self.kernel_size = kernel_size
    message = str(refused.value)
    assert "AvgPool2D" in message and "'kernel_size'" in message
    assert "`kernel_size: Integer() = 2`" in message and "framework.checks" in message
    assert "avgpool2d" not in F.LAYERS


def test_an_argument_without_annotation_is_refused(scratch_registries):
    with pytest.raises(TypeError, match=r"Gain.*'scale'.*`scale: Real\(\) = 0.5`"):
        @F.register_layer
        class Gain(F.Layer):
            @checked
            def __init__(self, scale=0.5):
                self.scale = scale


def test_checked_arguments_without_checked_are_refused(scratch_registries):
    with pytest.raises(TypeError, match=r"Pool.*kernel_size.*write @checked"):
        @F.register_layer
        class Pool(F.Layer):
            def __init__(self, kernel_size: Size(), name=None):
                self.kernel_size = kernel_size
    assert "pool" not in F.LAYERS


def test_a_subclass_whose_own_constructor_lacks_checked_is_refused(scratch_registries):
    with pytest.raises(TypeError, match="write @checked"):
        @F.register_optimizer
        class SlowSGD(F.SGD):
            def __init__(self, params, lr: Real(0, low_open=True) = 1e-4):
                super().__init__(params, lr)


def test_an_optimizer_setting_without_a_check_is_refused(scratch_registries):
    with pytest.raises(TypeError, match=r"Lion.*'beta'.*params"):
        @F.register_optimizer
        class Lion(F.Optimizer):
            @checked
            def __init__(self, params, lr: Real(0) = 1e-4, beta: float = 0.9):
                super().__init__(params, lr)


def test_star_arguments_are_refused(scratch_registries):
    with pytest.raises(TypeError, match=r"Any.*\*\*options"):
        @F.register_layer
        class Any(F.Layer):
            @checked
            def __init__(self, size: Integer(1) = 1, **options):
                pass


def test_positional_only_settings_are_refused(scratch_registries):
    # load_model makes a layer with cls(**arguments): a positional-only setting could not be given
    with pytest.raises(TypeError, match=r"Scale.*'a'.*positional-only"):
        @F.register_layer
        class Scale(F.Layer):
            @checked
            def __init__(self, a: Real() = 1.0, /, name=None):
                self.a = a


def test_from_input_and_short_names_must_name_checked_arguments(scratch_registries):
    with pytest.raises(TypeError, match=r"Dense.*from_input names 'in_feature'.*in_features"):
        @F.register_layer
        class Dense(F.Layer):
            from_input = {"in_feature": math.prod}

            @checked
            def __init__(self, in_features: Integer(1), out: Integer(1), name=None):
                pass
    with pytest.raises(TypeError, match=r"short_names names 'outs'"):
        @F.register_layer
        class Dense2(F.Layer):
            short_names = {"outs": "o"}

            @checked
            def __init__(self, out: Integer(1), name=None):
                pass


def test_a_layer_holding_parameters_without_their_shapes_is_refused(scratch_registries):
    with pytest.raises(TypeError, match=r"Scale.*holds parameters or buffers but does not state "
                                        r"their shapes; write a classmethod state_shapes"):
        @F.register_layer
        class Scale(F.Layer):
            @checked
            def __init__(self, features: Integer(1), dtype=np.float32, name=None):
                self.s = F.Parameter(np.ones(features, dtype), "s")

            def parameters(self):
                return [self.s]


def test_a_name_already_taken_is_refused(scratch_registries):
    with pytest.raises(TypeError, match=r"a layer named 'affine' is already registered "
                                        r"\(framework.layers.Affine\)"):
        @F.register_layer
        class Affine(F.Layer):
            pass
    assert F.LAYERS["affine"] is F.Affine


def test_a_class_of_another_kind_is_refused(scratch_registries):
    with pytest.raises(TypeError, match="not a subclass of Layer"):
        F.register_layer(F.SGD)


def test_a_class_without_settings_and_a_subclass_keeping_its_parents_are_accepted(
        scratch_registries):
    @F.register_layer
    class Identity(F.Layer):
        def forward(self, x, train=False):
            return x

    @F.register_optimizer
    class Heavy(F.Momentum):  # Momentum's checked constructor, another step
        pass

    assert F.LAYERS["identity"] is Identity and F.OPTIMIZERS["heavy"] is Heavy
    assert list(settings(Heavy)) == ["lr", "momentum", "weight_decay"]


# ---- what is registered comes back from a checkpoint with every setting

def other_value(check, default):
    """A valid value of `check` other than `default` (non-square for sizes, so that a swap of
    height and width shows)."""
    if isinstance(check, Optional):
        return other_value(check.check, REQUIRED) if default is None else None
    if isinstance(check, Either):
        return other_value(check.checks[0], default)
    if isinstance(check, Flag):
        return not default
    if isinstance(check, OneOf):
        return next(option for option in check.options if option != default)
    if isinstance(check, Size):
        if default is REQUIRED:
            return (check.one.low + 2, check.one.low + 3)
        height, width = check(default)
        return (height + 1, width)
    if isinstance(check, Integer):
        value = max(check.low or 0, 1) + 2 if default is REQUIRED else default + 1
        return value if check.high is None or value <= check.high else default - 1
    if isinstance(check, Real):
        if default is REQUIRED:
            return (check.low or 0) + 0.5
        value = default / 2 if default else 0.25
        return value if check(value) == value else (default + (check.high or 1)) / 2
    raise AssertionError(f"no other value for {check!r}")


def with_other_settings(cls, input_shape, rng):
    """cls made with every setting off its default, its input sizes from input_shape."""
    args = {name: other_value(check, default) for name, (default, check) in settings(cls).items()
            if name not in cls.from_input}
    args.update({name: infer(input_shape) for name, infer in cls.from_input.items()})
    if "rng" in inspect.signature(cls).parameters:
        args["rng"] = rng
    return cls(**args)


@pytest.mark.parametrize("kind", list(F.LAYERS))
def test_every_layer_comes_back_from_a_checkpoint_with_every_setting(tmp_path, kind):
    cls, rng = F.LAYERS[kind], np.random.default_rng(0)
    for input_shape in ((2, 9, 9), (6,)):  # images where the layer takes them, else features
        try:
            layer = with_other_settings(cls, input_shape, rng)
            model = F.Sequential([layer], input_shape=input_shape)
            break
        except ValueError:
            continue
    x = rng.standard_normal((4, *input_shape), dtype=np.float32)
    model.forward(x, train=True)  # running statistics move off their start
    F.save(tmp_path / "layer.npz", model)
    again = F.load_model(tmp_path / "layer.npz").layers[0]
    assert type(again) is cls and again.name == layer.name
    assert again.arguments == layer.arguments
    for name, (default, _) in settings(cls).items():
        if name not in cls.from_input:
            assert layer.arguments[name] != default, name  # the test did change it
    np.testing.assert_array_equal(F.Sequential([again]).forward(x), model.forward(x))


@pytest.mark.parametrize("name", list(F.OPTIMIZERS))
def test_every_optimizer_comes_back_from_a_checkpoint_with_every_setting(tmp_path, name):
    cls, rng = F.OPTIMIZERS[name], np.random.default_rng(0)
    model = F.Sequential(F.Affine(3, 2, rng=rng))
    own = {key: other_value(check, default) for key, (default, check) in settings(cls).items()}
    optimizer = cls(model.parameters(), **own)
    grads = [rng.standard_normal(p.data.shape, dtype=np.float32) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    optimizer.step()
    F.save(tmp_path / "run.npz", model, optimizer)
    state = F.load(tmp_path / "run.npz")
    again_model = F.load_model(tmp_path / "run.npz")
    again = cls(again_model.parameters())  # every setting at its default ...
    again.load_state_dict(state["optimizer"])  # ... until the state restores them
    assert {key: getattr(again, key) for key in own} == own
    for model_, optimizer_ in ((model, optimizer), (again_model, again)):
        for p, g in zip(model_.parameters(), grads):
            p.grad = g
        optimizer_.step()
    for p, q in zip(model.parameters(), again_model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


# ---- a user's own layer and optimizer, defined outside framework/

MODEL = "model=[{affine: {out: 16}}, {offset: {start: 0.25}}, relu, {affine: {out: 3}}]"


def test_a_layer_of_ones_own_trains_from_a_config_and_reloads(tmp_path):
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet", "--set", MODEL,
                 "--set", "training.epochs=1"]) == 0
    model = F.load_model(out / "checkpoint.npz")
    offset = model.layers[1]
    assert isinstance(offset, Offset) and offset.arguments == {"features": 16, "start": 0.25}
    assert not np.all(offset.b.data == np.float32(0.25))  # trained
    assert "offset1.b" in (out / "bias_grads.csv").read_text()  # and its db checked on the way


def test_an_optimizer_of_ones_own_trains_from_a_config(tmp_path):
    out = tmp_path / "run"
    assert main([tiny_config(tmp_path), "--out", str(out), "--quiet", "--set",
                 "optimizer={name: signsgd, lr: 0.002}", "--set", "training.epochs=1"]) == 0
    state = F.load(out / "checkpoint.npz")
    assert state["config"]["optimizer"] == {"name": "signsgd", "lr": 0.002}
    assert set(state["optimizer"]) == {"lr", "t"} and state["optimizer"]["t"] == 6  # 300 / 50
    assert F.OPTIMIZERS["signsgd"] is SignSGD


def test_a_checkpoint_naming_an_unregistered_kind_says_which_and_how_to_register(
        tmp_path, scratch_registries):
    model = F.Sequential(F.Affine(4, 3), Offset(3))
    F.save(tmp_path / "m.npz", model)
    del F.LAYERS.classes["offset"]  # as in a process that never imported user_classes
    with pytest.raises(F.CheckpointError) as refused:
        F.load_model(tmp_path / "m.npz")
    message = str(refused.value)
    assert "layer kind 'offset' is not registered" in message
    assert "module 'user_classes'" in message and "@framework.register_layer" in message


def test_a_module_name_the_file_makes_up_is_not_repeated(tmp_path):
    model = F.Sequential(F.Affine(4, 3))
    entry = {**model.architecture()[0], "kind": "nope", "module": "m" * 100_000}
    model.architecture = lambda: [entry]
    F.save(tmp_path / "m.npz", model)
    with pytest.raises(F.CheckpointError) as refused:
        F.load_model(tmp_path / "m.npz")
    assert "layer kind 'nope' is not registered. Registered:" in str(refused.value)
    assert len(str(refused.value)) < 1000


def test_help_lists_a_registered_layer_of_ones_own(capsys):
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    assert "offset" in printed and "signsgd" in printed


def test_help_shows_what_each_setting_allows(capsys):
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    for kind, cls in F.LAYERS.items():
        for key, (_, check) in C.layer_settings(cls).items():
            assert f"{key}: {check.allowed} (" in printed, (kind, key)
    for name, cls in F.OPTIMIZERS.items():
        for key, (_, check) in settings(cls).items():
            assert f"{key}: {check.allowed} (" in printed, (name, key)
    assert "stride: an integer ≥ 1, or a pair of them (height, width), or null (default null)" \
        in printed


# ---- the package's names

def test_every_registered_framework_class_is_exported_under_its_name():
    for registry in (F.LAYERS, F.OPTIMIZERS):
        for cls in registry.values():
            if cls.__module__.startswith("framework."):
                assert getattr(F, cls.__name__) is cls


def test_no_name_in_the_package_hides_a_module_of_the_same_name():
    for module in pkgutil.iter_modules(F.__path__):
        imported = importlib.import_module(f"framework.{module.name}")
        assert getattr(F, module.name) is imported, module.name
