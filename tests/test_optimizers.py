"""Optimizers against hand-computed values and against PyTorch's documented update rules."""
import math

import numpy as np
import pytest

from framework import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, Parameter, RMSprop

# Constant gradient g = 1 (Adam: 0.5) on a parameter starting at 1, three steps, by hand.
HAND = {
    "sgd": (SGD, dict(lr=0.1), [0.9, 0.8, 0.7]),
    "momentum": (Momentum, dict(lr=0.1, momentum=0.9), [0.9, 0.71, 0.439]),  # v = -.1, -.19, -.271
    "nesterov": (Nesterov, dict(lr=0.1, momentum=0.9), [0.81, 0.539, 0.1951]),  # w += .9 v - .1
    "adagrad": (AdaGrad, dict(lr=0.1), [1 - sum(0.1 / (math.sqrt(k) + 1e-10)
                                                for k in range(1, s + 1)) for s in (1, 2, 3)]),
    "rmsprop": (RMSprop, dict(lr=0.01), [1 - 0.01 / (math.sqrt(0.01) + 1e-8),
                                         1 - 0.01 / (math.sqrt(0.01) + 1e-8)
                                         - 0.01 / (math.sqrt(0.0199) + 1e-8),
                                         1 - 0.01 / (math.sqrt(0.01) + 1e-8)
                                         - 0.01 / (math.sqrt(0.0199) + 1e-8)
                                         - 0.01 / (math.sqrt(0.029701) + 1e-8)]),
    # With a constant gradient the bias-corrected moments are exactly g and g², so each step is
    # lr * g / (|g| + eps).
    "adam": (Adam, dict(lr=0.1), [1 - s * 0.1 * 0.5 / (0.5 + 1e-8) for s in (1, 2, 3)]),
}


@pytest.mark.parametrize("name", HAND)
def test_three_steps_match_hand_computed_values(name):
    cls, kwargs, expected = HAND[name]
    p = Parameter(np.ones((1, 1)))
    opt = cls([p], **kwargs)
    for want in expected:
        p.grad = np.full((1, 1), 0.5 if name == "adam" else 1.0)
        opt.step()
        assert p.data[0, 0] == pytest.approx(want, rel=1e-12)


def torch_reference(name, w, grads, lr, wd=0.0, momentum=0.9, alpha=0.99, eps=None,
                    betas=(0.9, 0.999)):
    """PyTorch's documented algorithms, written independently, one scalar at a time."""
    w = w.astype(np.float64).ravel().tolist()
    state = [dict(b=None, s=0.0, m=0.0, v=0.0) for _ in w]
    for t, g_all in enumerate(grads, start=1):
        for i, (g, st) in enumerate(zip(g_all.ravel().tolist(), state)):
            if name == "adamw":
                w[i] *= 1 - lr * wd  # decoupled: the weight shrinks, the gradient stays
            else:
                g += wd * w[i]
            if name == "sgd":
                w[i] -= lr * g
            elif name in ("momentum", "nesterov"):
                st["b"] = g if st["b"] is None else momentum * st["b"] + g
                w[i] -= lr * (g + momentum * st["b"] if name == "nesterov" else st["b"])
            elif name == "adagrad":
                st["s"] += g * g
                w[i] -= lr * g / (math.sqrt(st["s"]) + (1e-10 if eps is None else eps))
            elif name == "rmsprop":
                st["v"] = alpha * st["v"] + (1 - alpha) * g * g
                w[i] -= lr * g / (math.sqrt(st["v"]) + (1e-8 if eps is None else eps))
            elif name in ("adam", "adamw"):
                b1, b2 = betas
                st["m"] = b1 * st["m"] + (1 - b1) * g
                st["v"] = b2 * st["v"] + (1 - b2) * g * g
                m_hat, v_hat = st["m"] / (1 - b1 ** t), st["v"] / (1 - b2 ** t)
                w[i] -= lr * m_hat / (math.sqrt(v_hat) + (1e-8 if eps is None else eps))
    return np.array(w)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
              "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_matches_pytorch_rules_on_random_gradients(name, wd):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((2, 3))
    grads = [rng.standard_normal((2, 3)) for _ in range(3)]
    p = Parameter(w0.copy())
    opt = OPTIMIZERS[name]([p], lr=0.05, weight_decay=wd)
    for g in grads:
        p.grad = g
        opt.step()
    np.testing.assert_allclose(p.data.ravel(), torch_reference(name, w0, grads, lr=0.05, wd=wd),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_weight_decay_touches_weights_but_never_biases(name):
    W, b = Parameter(np.ones((2, 2))), Parameter(np.ones(2))
    opt = OPTIMIZERS[name]([W, b], lr=0.1, weight_decay=0.5)
    W.grad, b.grad = np.zeros((2, 2)), np.zeros(2)
    opt.step()
    assert (W.data < 1).all()
    np.testing.assert_array_equal(b.data, np.ones(2))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_step_leaves_the_gradient_untouched(name):
    p = Parameter(np.ones((2, 3)))
    p.grad = np.full((2, 3), 0.25)
    OPTIMIZERS[name]([p], lr=0.1, weight_decay=0.1).step()
    np.testing.assert_array_equal(p.grad, np.full((2, 3), 0.25))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip_continues_identically(name):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((3, 2)).astype(np.float32) for _ in range(5)]
    a = Parameter(rng.standard_normal((3, 2)).astype(np.float32))
    opt_a = OPTIMIZERS[name]([a], lr=0.01)
    for g in grads[:2]:
        a.grad = g
        opt_a.step()
    b = Parameter(a.data.copy())
    opt_b = OPTIMIZERS[name]([b], lr=0.5)  # a different lr, restored from the state
    opt_b.load_state_dict({k: np.array(v) if isinstance(v, np.ndarray) else v
                           for k, v in opt_a.state_dict().items()})
    for g in grads[2:]:
        a.grad, b.grad = g, g
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_gradient_of_the_wrong_shape_is_refused_with_the_parameter_name(name):
    p = Parameter(np.zeros(4), name="affine2.b")
    p.grad = np.zeros((8, 4))
    with pytest.raises(ValueError, match=r"affine2\.b: grad shape \(8, 4\) != data shape \(4,\)"):
        OPTIMIZERS[name]([p], lr=0.1).step()


def test_matches_torch_itself_when_installed():
    torch = pytest.importorskip("torch", reason="PyTorch is not a dependency; this cross-check "
                                                "runs only where it is installed")
    rng = np.random.default_rng(2)
    w0, grads = rng.standard_normal((3, 4)), [rng.standard_normal((3, 4)) for _ in range(4)]
    makers = {"sgd": lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.01),
              "momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
              "nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                                    weight_decay=0.01),
              "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.05, weight_decay=0.01),
              "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.05, weight_decay=0.01),
              "adam": lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.01),
              "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.01)}
    for name, make in makers.items():
        tw = torch.tensor(w0.copy(), requires_grad=True)
        topt = make([tw])
        p = Parameter(w0.copy())
        opt = OPTIMIZERS[name]([p], lr=0.05, weight_decay=0.01)
        for g in grads:
            tw.grad = torch.tensor(g)
            topt.step()
            p.grad = g
            opt.step()
        np.testing.assert_allclose(p.data, tw.detach().numpy(), rtol=1e-12, atol=1e-14,
                                   err_msg=name)


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999)])
def test_adam_refuses_betas_outside_0_1(betas):
    # Adam stores m/(1-b1) and v/(1-b2): a beta of 1 would divide by zero on the first step.
    with pytest.raises(ValueError, match=r"Adam: beta\d: out of range: .* is not ≥ 0 and < 1"):
        Adam([Parameter(np.zeros(3))], beta1=betas[0], beta2=betas[1])


def test_adamw_decay_is_decoupled_from_the_adaptive_step():
    # With g = 0 Adam's step is 0, so AdamW's weight moves by exactly the decay:
    # w (1 - lr wd) per step.
    p = Parameter(np.full((2, 2), 3.0))
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        p.grad = np.zeros((2, 2))
        opt.step()
    np.testing.assert_allclose(p.data, 3.0 * (1 - 0.1 * 0.5) ** 3, rtol=1e-15)
    l2 = Parameter(np.full((2, 2), 3.0))
    adam = Adam([l2], lr=0.1, weight_decay=0.5)  # L2 in the gradient: Adam normalises it away
    l2.grad = np.zeros((2, 2))
    adam.step()
    assert not np.allclose(l2.data, 3.0 * (1 - 0.1 * 0.5))


def test_adamw_defaults_are_pytorchs():
    opt = AdamW([Parameter(np.zeros((2, 2)))])
    assert ((opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay)
            == (1e-3, 0.9, 0.999, 1e-8, 1e-2))
