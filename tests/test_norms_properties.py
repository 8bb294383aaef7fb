"""The seeds' claims about the norms, as executable checks.

Invariances (LN/GN/IN to a sample's scale and shift, RMSNorm to scale only, BN and LN
to the preceding layer's weight scale), BatchNorm's train/eval gap and its batch
dependence, and its refusal to train on one value per channel.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from stylenorm.norms import NormInputError, make_norm

C = 8
MAP = (3, C, 5, 4)
EXACT = dict(rtol=1e-9, atol=1e-9)
# eps makes the invariances approximate (σ² + ε is not scaled with σ²); a tiny eps
# lets the checks be exact to float64 precision instead of loose.
TINY_EPS = 1e-12


pytestmark = pytest.mark.usefixtures("one_thread")


def sample(shape, seed: int = 0, scale: float = 2.0, shift: float = 0.5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64) * scale + shift


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.5 + 1.0)
    return module


def norm(spec: str, affine: bool = True, channels: int = C) -> nn.Module:
    layer = make_norm(spec, channels, eps=TINY_EPS, affine=affine).double()
    return randomise(layer) if affine else layer


def per_sample(values, ndim: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view((-1,) + (1,) * (ndim - 1))


SCALES = [0.25, 3.0, 40.0]
SHIFTS = [-5.0, 0.7, 12.0]


# ------------------------------------------------------------- invariances
@pytest.mark.parametrize("spec", ["ln", "gn", "gn2", "gn1", "in"])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", [MAP, (3, C, 7)])
def test_ln_gn_in_unchanged_when_a_sample_is_scaled_and_shifted(spec, affine, shape):
    layer = norm(spec, affine)
    x = sample(shape)
    moved = x * per_sample(SCALES, x.dim()) + per_sample(SHIFTS, x.dim())
    torch.testing.assert_close(layer(moved), layer(x), **EXACT)


def test_ln_on_vectors_unchanged_when_a_sample_is_scaled_and_shifted():
    layer = norm("ln")
    x = sample((3, C))
    torch.testing.assert_close(layer(x * per_sample(SCALES, 2) + per_sample(SHIFTS, 2)), layer(x), **EXACT)


def test_gn_unchanged_by_a_shift_per_group_but_ln_is_not():
    """GN's statistics are per group, so it also forgives a different offset per group."""
    x = sample(MAP)
    offsets = torch.zeros(MAP, dtype=torch.float64)
    offsets[:, : C // 2] += 3.0  # first of the two groups only
    torch.testing.assert_close(norm("gn2")(x + offsets), norm("gn2")(x), **EXACT)
    assert (norm("ln")(x + offsets) - norm("ln")(x)).abs().max() > 0.1


def test_in_unchanged_by_per_channel_contrast():
    """IN removes each channel's contrast (scale and offset) of each image: the style statistics."""
    x = sample(MAP)
    gains = torch.rand(MAP[0], C, 1, 1, dtype=torch.float64) * 5 + 0.1
    offsets = torch.randn(MAP[0], C, 1, 1, dtype=torch.float64) * 4
    torch.testing.assert_close(norm("in")(x * gains + offsets), norm("in")(x), **EXACT)
    assert (norm("ln")(x * gains + offsets) - norm("ln")(x)).abs().max() > 0.1


@pytest.mark.parametrize("spec", ["rms", "prms", "prms25"])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", [MAP, (3, C, 7), (3, C)])
def test_rms_unchanged_by_scaling_but_changed_by_a_shift(spec, affine, shape):
    layer = norm(spec, affine)
    x = sample(shape)
    torch.testing.assert_close(layer(x * per_sample(SCALES, x.dim())), layer(x), **EXACT)
    shifted = layer(x + per_sample(SHIFTS, x.dim()))
    assert (shifted - layer(x)).abs().max() > 0.1  # no re-centring: a shift survives


def test_rms_changed_by_a_shift_where_ln_is_not():
    x = sample(MAP)
    shift = per_sample(SHIFTS, 4)
    assert (norm("rms")(x + shift) - norm("rms")(x)).abs().max() > 0.1
    torch.testing.assert_close(norm("ln")(x + shift), norm("ln")(x), **EXACT)


def _conv_then(spec: str) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, C, 3, padding=1), norm(spec)).double()


def _linear_then(spec: str) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, C), norm(spec)).double()


@pytest.mark.parametrize("build,shape", [(_conv_then, (4, 3, 6, 6)), (_linear_then, (5, 6))])
@pytest.mark.parametrize("per_channel", [False, True])
def test_bn_unchanged_when_the_preceding_layers_weights_are_scaled(build, shape, per_channel):
    """BN(a·Wu) = BN(Wu) in training (Ioffe & Szegedy §3.3); the Jacobian w.r.t. u is
    unchanged too, and the gradient w.r.t. W shrinks by 1/a."""
    model, scaled = build("bn"), build("bn")
    a = torch.linspace(0.2, 9.0, C, dtype=torch.float64) if per_channel else torch.tensor(7.0, dtype=torch.float64)
    with torch.no_grad():
        layer = scaled[0]
        layer.weight.mul_(a.view((-1,) + (1,) * (layer.weight.dim() - 1)))
        layer.bias.mul_(a)  # a bias is removed by BN's centring anyway; scale it like the weights
    u = sample(shape).requires_grad_(True)
    dy = sample((shape[0], C) + shape[2:], seed=1)
    y, y_scaled = model(u), scaled(u)
    torch.testing.assert_close(y_scaled, y, **EXACT)
    du, dw = torch.autograd.grad((y * dy).sum(), [u, model[0].weight])
    du_s, dw_s = torch.autograd.grad((y_scaled * dy).sum(), [u, scaled[0].weight])
    torch.testing.assert_close(du_s, du, **EXACT)
    torch.testing.assert_close(dw_s, dw / a.view((-1,) + (1,) * (dw.dim() - 1)), **EXACT)


@pytest.mark.parametrize("spec", ["ln", "rms"])
def test_weight_matrix_rescaling_leaves_ln_and_rms_unchanged(spec):
    model, scaled = _linear_then(spec), _linear_then(spec)
    with torch.no_grad():
        scaled[0].weight.mul_(5.0)
        scaled[0].bias.mul_(5.0)
    u = sample((5, 6))
    torch.testing.assert_close(scaled(u), model(u), **EXACT)


def test_weight_matrix_recentring_leaves_ln_unchanged_but_not_rms():
    """Adding one vector to every row of W (Ba et al.: weight re-centring) shifts all of a
    sample's units equally; LN removes that shift, RMSNorm does not."""
    u = sample((5, 6))
    for spec, invariant in (("ln", True), ("rms", False)):
        model, moved = _linear_then(spec), _linear_then(spec)
        with torch.no_grad():
            moved[0].weight.add_(torch.linspace(-1, 2, 6, dtype=torch.float64))
            moved[0].bias.add_(0.8)
        if invariant:
            torch.testing.assert_close(moved(u), model(u), **EXACT)
        else:
            assert (moved(u) - model(u)).abs().max() > 0.1


# ---------------------------------------------------------- train vs eval
def test_bn_train_and_eval_outputs_converge_as_running_stats_do():
    """While running statistics are fresh, eval differs from training; fed batches from one
    fixed distribution, the gap shrinks (geometrically at rate 1 - momentum) to the
    sampling noise of the batch statistics."""
    torch.manual_seed(0)
    mean = torch.linspace(-3, 5, C, dtype=torch.float64).view(1, C, 1, 1)
    std = torch.linspace(0.5, 4, C, dtype=torch.float64).view(1, C, 1, 1)

    def batch() -> torch.Tensor:
        return torch.randn(64, C, 4, 4, dtype=torch.float64) * std + mean

    layer = randomise(make_norm("bn", C, momentum=0.1).double())
    probe = batch()
    with torch.no_grad():
        train_out = copy.deepcopy(layer).train()(probe)  # depends only on the probe's own statistics

        def gap() -> float:
            return (layer.eval()(probe) - train_out).abs().mean().item()

        gaps = [gap()]
        for _ in range(8):
            layer.train()
            for _ in range(10):
                layer(batch())
            gaps.append(gap())
    assert gaps[0] > 1.0, gaps  # fresh stats (0, 1) are far from the data's
    assert all(later < earlier for earlier, later in zip(gaps[:4], gaps[1:5])), gaps
    assert gaps[-1] < 0.03 * gaps[0] and gaps[-1] < 0.1, gaps
    torch.testing.assert_close(layer.running_mean, mean.flatten(), atol=0.15, rtol=0)
    torch.testing.assert_close(layer.running_var.sqrt(), std.flatten(), atol=0.15, rtol=0)


@pytest.mark.parametrize("spec", ["ln", "in", "gn", "gn2", "rms", "prms"])
def test_batch_independent_norms_are_the_same_in_train_and_eval(spec):
    layer = norm(spec)
    x = sample(MAP)
    torch.testing.assert_close(layer.train()(x), layer.eval()(x), rtol=0, atol=0)


# ---------------------------------------------------------- batch dependence
def _batches_with_the_same_first_sample(shape):
    first = sample((1,) + shape[1:], seed=0)
    a = torch.cat([first, sample((2,) + shape[1:], seed=1)])
    b = torch.cat([first, sample((5,) + shape[1:], seed=2, scale=6.0, shift=-4.0)])
    return a, b


@pytest.mark.parametrize("shape", [MAP, (3, C, 7), (3, C)])
def test_bn_normalises_the_same_sample_differently_in_different_batches(shape):
    layer = norm("bn")
    a, b = _batches_with_the_same_first_sample(shape)
    assert (layer(a)[0] - layer(b)[0]).abs().max() > 0.1
    layer.eval()  # with running statistics a sample's output no longer depends on its batch
    torch.testing.assert_close(layer(a)[0], layer(b)[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "spec,shape",
    [(spec, shape) for spec in ["ln", "in", "gn", "gn2", "rms", "prms", "none"]
     for shape in [MAP, (3, C, 7), (3, C)]
     # in needs spatial axes; plain gn on 8 vector channels is 8 groups of one value (torch
     # refuses that at batch size 1, and every output would be β anyway)
     if not (spec in ("in", "gn") and len(shape) < 3)],
)
def test_other_norms_normalise_a_sample_the_same_in_any_batch(spec, shape):
    layer = norm(spec)
    a, b = _batches_with_the_same_first_sample(shape)
    torch.testing.assert_close(layer(a)[0], layer(b)[0], **EXACT)
    torch.testing.assert_close(layer(a[:1])[0], layer(a)[0], **EXACT)  # alone, too


# ---------------------------------------------------------- one value per channel
@pytest.mark.parametrize("shape", [(1, C), (1, C, 1), (1, C, 1, 1)])
def test_bn_refuses_to_train_on_one_value_per_channel(shape):
    layer = make_norm("bn", C)
    before = copy.deepcopy(layer.state_dict())
    with pytest.raises(NormInputError, match=r"more than one value per channel.*batch size of at least 2"):
        layer(torch.randn(shape))
    for name, value in layer.state_dict().items():  # a refused batch leaves the layer as it was
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    layer.eval()
    assert layer(torch.randn(shape)).shape == shape  # inference on one sample is fine


def test_bn_trains_on_one_image_with_several_pixels():
    layer = make_norm("bn", C)
    assert torch.isfinite(layer(torch.randn(1, C, 3, 3))).all()


@pytest.mark.parametrize("spec,shape", [("ln", (1, C)), ("gn2", (1, C)), ("rms", (1, C)), ("prms", (1, C)),
                                        ("gn", (1, C, 4, 4)), ("in", (1, C, 4, 4))])
def test_batch_independent_norms_train_at_batch_size_one(spec, shape):
    layer = make_norm(spec, C)
    x = torch.randn(shape, requires_grad=True)
    layer(x).sum().backward()
    assert torch.isfinite(x.grad).all()
