"""The norm backend against the seeds' equations and against torch.nn.

Every layer `make_norm` builds is checked, forward and backward, against a float64
reference written straight from the seeds' equations (mean and biased variance over
the right axes, eps inside the square root; RMS without centring; pRMS from the first
ceil(p·n) elements of each flattened sample), then against the torch.nn layer that
computes the same thing, in training and in eval mode.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from torch import nn
from torch.func import functional_call

from stylenorm.errors import StylenormError
from stylenorm.norms import (
    SPEC_HELP,
    ConditionalNorm,
    FiLM,
    NormInputError,
    NormSpecError,
    default_groups,
    group_counts,
    make_norm,
    parse_spec,
)

C = 8
MAP = (3, C, 4, 5)  # (N, C, H, W)
SEQ = (3, C, 6)  # (N, C, L)
VEC = (5, C)  # (N, C)
SHAPES = {"map": MAP, "seq": SEQ, "vec": VEC}
# Every kind of spec, with gn both by its default rule and with explicit G.
SPECS = ["bn", "ln", "in", "gn", "gn1", "gn2", "gn4", "gn8", "rms", "prms", "prms25", "prms7", "none"]


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------- references
def _channel(v: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    return None if v is None else v.view((1, -1) + (1,) * (x.dim() - 2))


def _affine(xhat: torch.Tensor, weight, bias) -> torch.Tensor:
    if weight is not None:
        xhat = xhat * _channel(weight, xhat)
    if bias is not None:
        xhat = xhat + _channel(bias, xhat)
    return xhat


def _standardise(x: torch.Tensor, dims: list[int], eps: float) -> torch.Tensor:
    """(x - μ) / sqrt(σ² + ε) with μ, σ² the mean and *biased* variance over `dims`."""
    mu = x.mean(dim=dims, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=dims, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def ref_bn(x, weight=None, bias=None, eps=1e-5):
    return _affine(_standardise(x, [0] + list(range(2, x.dim())), eps), weight, bias)


def ref_ln(x, weight=None, bias=None, eps=1e-5):
    return _affine(_standardise(x, list(range(1, x.dim())), eps), weight, bias)


def ref_in(x, weight=None, bias=None, eps=1e-5):
    return _affine(_standardise(x, list(range(2, x.dim())), eps), weight, bias)


def ref_gn(x, groups, weight=None, bias=None, eps=1e-5):
    grouped = x.reshape(x.shape[0], groups, -1)
    return _affine(_standardise(grouped, [2], eps).reshape(x.shape), weight, bias)


def ref_rms(x, weight=None, bias=None, eps=1e-5, percent=100.0):
    flat = x.reshape(x.shape[0], -1)
    # ceil(p·n) in exact arithmetic: a float product like 0.07 * 100 = 7.000000000000001 must not round up.
    k = math.ceil(Fraction(str(percent)) / 100 * flat.shape[1])
    rms = torch.sqrt((flat[:, :k] ** 2).mean(dim=1) + eps)
    return _affine(x / rms.view((-1,) + (1,) * (x.dim() - 1)), weight, bias)


def reference(spec: str, x: torch.Tensor, weight=None, bias=None, eps=1e-5) -> torch.Tensor:
    parsed = parse_spec(spec)
    if parsed.kind == "bn":
        return ref_bn(x, weight, bias, eps)
    if parsed.kind == "ln":
        return ref_ln(x, weight, bias, eps)
    if parsed.kind == "in":
        return ref_in(x, weight, bias, eps)
    if parsed.kind == "gn":
        return ref_gn(x, parsed.groups or default_groups(x.shape[1]), weight, bias, eps)
    if parsed.kind == "rms":
        return ref_rms(x, weight, bias, eps)
    if parsed.kind == "prms":
        return ref_rms(x, weight, bias, eps, percent=parsed.percent)
    return x


# -------------------------------------------------------------------- helpers
def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter random values, so a wrong axis or a missing γ/β shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.5 + 1.0)
    return module


def sample(shape, seed: int = 0, scale: float = 3.0, shift: float = 1.5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64) * scale + shift


def supports(spec: str, shape) -> bool:
    return not (spec == "in" and len(shape) < 3)


def params_of(module: nn.Module):
    return getattr(module, "weight", None), getattr(module, "bias", None)


def cases():
    return [(spec, name) for spec in SPECS for name, shape in SHAPES.items() if supports(spec, shape)]


# -------------------------------------------------------- against the equations
@pytest.mark.parametrize("spec,shape_name", cases())
def test_forward_matches_equations(spec, shape_name):
    shape = SHAPES[shape_name]
    norm = randomise(make_norm(spec, C).double())
    x = sample(shape)
    weight, bias = params_of(norm)
    torch.testing.assert_close(norm(x), reference(spec, x, weight, bias), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spec,shape_name", cases())
def test_backward_matches_equations(spec, shape_name):
    """Gradients w.r.t. the input and γ/β equal those of the reference equations."""
    shape = SHAPES[shape_name]
    norm = randomise(make_norm(spec, C).double())
    x = sample(shape).requires_grad_(True)
    dy = sample(shape, seed=1, scale=1.0, shift=0.0)
    params = [p for p in (params_of(norm)) if isinstance(p, nn.Parameter)]
    ours = torch.autograd.grad((norm(x) * dy).sum(), [x] + params)
    weight, bias = params_of(norm)
    expected = torch.autograd.grad((reference(spec, x, weight, bias) * dy).sum(), [x] + params)
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


GRADCHECK_SHAPES = {"map": (2, 4, 3, 3), "seq": (2, 4, 5), "vec": (3, 4)}


@pytest.mark.parametrize(
    "spec,shape_name",
    [(s, n) for s in ["bn", "ln", "in", "gn2", "rms", "prms", "prms30"] for n in GRADCHECK_SHAPES
     if supports(s, GRADCHECK_SHAPES[n])],
)
def test_gradcheck(spec, shape_name):
    """Analytic gradients (input and every parameter) equal finite differences."""
    shape = GRADCHECK_SHAPES[shape_name]
    norm = randomise(make_norm(spec, shape[1], bias=True).double())
    names = [name for name, _ in norm.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in norm.parameters()]
    x = sample(shape, scale=1.0, shift=0.3).requires_grad_(True)

    def fn(x, *ps):
        return functional_call(norm, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-5)


def test_bn_eval_uses_running_statistics():
    norm = randomise(make_norm("bn", C).double())
    with torch.no_grad():
        norm.running_mean.copy_(torch.linspace(-1, 1, C))
        norm.running_var.copy_(torch.linspace(0.5, 2, C))
    norm.eval()
    x = sample(MAP)
    view = (1, C, 1, 1)
    expected = (x - norm.running_mean.view(view)) / torch.sqrt(norm.running_var.view(view) + norm.eps)
    expected = expected * norm.weight.view(view) + norm.bias.view(view)
    torch.testing.assert_close(norm(x), expected)


def test_prms_counts_the_first_ceil_p_n_elements_exactly():
    """prms7 on 100 elements uses exactly 7 of them (7/100*100 is 7.000000000000001 in floats)."""
    x = sample((2, 4, 25))
    norm = make_norm("prms7", 4, affine=False).double()
    flat = x.reshape(2, -1)
    expected = x / torch.sqrt((flat[:, :7] ** 2).mean(1) + 1e-5).view(2, 1, 1)
    torch.testing.assert_close(norm(x), expected)
    # Changing element 8 (index 7) of a sample must not change its scale.
    bumped = x.clone()
    bumped.view(2, -1)[:, 7] += 100.0
    torch.testing.assert_close(norm(bumped).view(2, -1)[:, :7], norm(x).view(2, -1)[:, :7])


def test_prms100_is_rms():
    x = sample(MAP)
    torch.testing.assert_close(make_norm("prms100", C).double()(x), make_norm("rms", C).double()(x))


def test_in_needs_spatial_axes():
    with pytest.raises(NormInputError, match=r"spatial.*ln or rms"):
        make_norm("in", C)(torch.randn(VEC))


@pytest.mark.parametrize("spec", [s for s in SPECS if s != "none"])
def test_wrong_channel_count_is_a_clear_error(spec):
    with pytest.raises(NormInputError, match=rf"\(N, {C}, \*spatial\)"):
        make_norm(spec, C)(torch.randn(2, C + 1, 3, 3))


# ---------------------------------------------------------- against torch.nn
def copy_affine(src: nn.Module, dst: nn.Module) -> None:
    """Copy per-channel γ/β from src to dst, broadcasting to dst's parameter shape."""
    with torch.no_grad():
        for name in ("weight", "bias"):
            s, d = getattr(src, name, None), getattr(dst, name, None)
            if s is not None and d is not None:
                d.copy_(s.view((-1,) + (1,) * (d.dim() - 1)).expand_as(d))


def assert_same_in_train_and_eval(ours: nn.Module, theirs: nn.Module, batches) -> None:
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        for x in batches:
            torch.testing.assert_close(ours(x), theirs(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "shape,torch_bn", [(MAP, nn.BatchNorm2d), (SEQ, nn.BatchNorm1d), (VEC, nn.BatchNorm1d)]
)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_bn_matches_torch_batchnorm(shape, torch_bn, momentum):
    """Same outputs and gradients in training, same running statistics after several
    steps (biased variance to normalise, unbiased to track), same eval outputs."""
    ours = randomise(make_norm("bn", C, momentum=momentum).double())
    theirs = torch_bn(C, momentum=momentum).double()
    copy_affine(ours, theirs)
    for step in range(4):
        x = sample(shape, seed=step, scale=2.0 + step, shift=step).requires_grad_(True)
        dy = sample(shape, seed=100 + step, scale=1.0, shift=0.0)
        y_ours, y_theirs = ours(x), theirs(x)
        torch.testing.assert_close(y_ours, y_theirs)
        g_ours = torch.autograd.grad((y_ours * dy).sum(), [x, ours.weight, ours.bias])
        g_theirs = torch.autograd.grad((y_theirs * dy).sum(), [x, theirs.weight, theirs.bias])
        for a, b in zip(g_ours, g_theirs):
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)
    torch.testing.assert_close(ours.running_var, theirs.running_var)
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 4
    ours.eval()
    theirs.eval()
    x = sample(shape, seed=9)
    torch.testing.assert_close(ours(x), theirs(x))


def test_ln_matches_torch_layernorm_on_vectors():
    ours = randomise(make_norm("ln", C).double())
    theirs = nn.LayerNorm(C).double()
    copy_affine(ours, theirs)
    assert_same_in_train_and_eval(ours, theirs, [sample(VEC, seed=s) for s in range(2)])


@pytest.mark.parametrize("shape", [MAP, SEQ])
def test_ln_matches_torch_groupnorm_1_on_maps(shape):
    """For conv maps the seeds' LN is statistics over (C, *spatial) with per-channel γ/β:
    torch's GroupNorm(1, C), not nn.LayerNorm (whose γ/β would be per element)."""
    ours = randomise(make_norm("ln", C).double())
    theirs = nn.GroupNorm(1, C).double()
    copy_affine(ours, theirs)
    assert_same_in_train_and_eval(ours, theirs, [sample(shape, seed=s) for s in range(2)])


@pytest.mark.parametrize("spec", ["ln", "rms", "prms"])
def test_one_value_per_sample_is_accepted_where_no_batch_is_involved(spec):
    """Per-sample norms never pool over the batch, so even (1, 1) input trains (to β for ln)."""
    norm = make_norm(spec, 1, bias=True).double()
    x = torch.tensor([[2.5]], dtype=torch.float64, requires_grad=True)
    y = norm(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    if spec == "ln":
        torch.testing.assert_close(y, norm.bias.view(1, 1).detach(), atol=1e-4, rtol=0)


def test_ln_on_maps_matches_torch_layernorm_with_per_channel_weights():
    ours = randomise(make_norm("ln", C).double())
    theirs = nn.LayerNorm(MAP[1:]).double()
    copy_affine(ours, theirs)
    assert_same_in_train_and_eval(ours, theirs, [sample(MAP)])


@pytest.mark.parametrize("spec,groups", [("gn", 8), ("gn2", 2), ("gn4", 4), ("gn1", 1)])
@pytest.mark.parametrize("shape", [MAP, SEQ, VEC])
def test_gn_matches_torch_groupnorm(spec, groups, shape):
    ours = randomise(make_norm(spec, C).double())
    assert ours.num_groups == groups
    theirs = nn.GroupNorm(groups, C).double()
    copy_affine(ours, theirs)
    assert_same_in_train_and_eval(ours, theirs, [sample(shape, seed=s) for s in range(2)])


@pytest.mark.parametrize("shape,torch_in", [(MAP, nn.InstanceNorm2d), (SEQ, nn.InstanceNorm1d)])
def test_in_matches_torch_instancenorm(shape, torch_in):
    ours = randomise(make_norm("in", C).double())
    theirs = torch_in(C, affine=True).double()
    copy_affine(ours, theirs)
    assert_same_in_train_and_eval(ours, theirs, [sample(shape, seed=s) for s in range(2)])


def test_in_with_tracked_running_stats_matches_torch_in_eval():
    ours = randomise(make_norm("in", C, track_running_stats=True, momentum=0.2).double())
    theirs = nn.InstanceNorm2d(C, affine=True, track_running_stats=True, momentum=0.2).double()
    copy_affine(ours, theirs)
    for step in range(3):
        x = sample(MAP, seed=step, shift=step)
        torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)
    torch.testing.assert_close(ours.running_var, theirs.running_var)
    assert not torch.allclose(ours.running_mean, torch.zeros(C, dtype=torch.float64))
    ours.eval()
    theirs.eval()
    x = sample(MAP, seed=7)
    torch.testing.assert_close(ours(x), theirs(x))
    # In eval the tracked statistics are used, so the output is no longer per-instance standardised.
    assert not torch.allclose(ours(x), ref_in(x, ours.weight, ours.bias))


def test_rms_matches_torch_rmsnorm_on_vectors():
    ours = randomise(make_norm("rms", C).double())
    theirs = nn.RMSNorm(C, eps=1e-5).double()
    copy_affine(ours, theirs)
    assert_same_in_train_and_eval(ours, theirs, [sample(VEC, seed=s) for s in range(2)])


@pytest.mark.parametrize("shape", [MAP, SEQ])
def test_rms_matches_torch_rmsnorm_over_channels_and_space(shape):
    ours = randomise(make_norm("rms", C).double())
    theirs = nn.RMSNorm(list(shape[1:]), eps=1e-5).double()
    copy_affine(ours, theirs)
    assert_same_in_train_and_eval(ours, theirs, [sample(shape, seed=s) for s in range(2)])


# ------------------------------------------------------------------ continuum
@pytest.mark.parametrize("shape", [MAP, SEQ])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_gn1_equals_ln_and_gnC_equals_in(shape, eps):
    x = sample(shape)
    for grouped_spec, spec in (("gn1", "ln"), (f"gn{C}", "in")):
        grouped = randomise(make_norm(grouped_spec, C, eps=eps).double())
        plain = make_norm(spec, C, eps=eps).double()
        copy_affine(grouped, plain)
        for mode in ("train", "eval"):
            grouped.train(mode == "train")
            plain.train(mode == "train")
            torch.testing.assert_close(grouped(x), plain(x), rtol=1e-12, atol=1e-12)


def test_gn1_equals_ln_on_vectors():
    x = sample(VEC)
    grouped = randomise(make_norm("gn1", C).double())
    plain = make_norm("ln", C).double()
    copy_affine(grouped, plain)
    torch.testing.assert_close(grouped(x), plain(x), rtol=1e-12, atol=1e-12)


# -------------------------------------------------------------- spec parsing
@pytest.mark.parametrize(
    "spec,kind,cls_name",
    [("bn", "bn", "BatchNorm"), ("ln", "ln", "LayerNorm"), ("in", "in", "InstanceNorm"),
     ("gn", "gn", "GroupNorm"), ("gn8", "gn", "GroupNorm"), (" GN4 ", "gn", "GroupNorm"),
     ("rms", "rms", "RMSNorm"), ("prms", "prms", "RMSNorm"), ("prms12.5", "prms", "RMSNorm"),
     ("none", "none", "Identity")],
)
def test_every_valid_spec_builds(spec, kind, cls_name):
    assert parse_spec(spec).kind == kind
    norm = make_norm(spec, C)
    assert type(norm).__name__ == cls_name
    assert norm(torch.randn(MAP)).shape == MAP


def test_prms_percent_parsing():
    assert parse_spec("prms").percent == 6.25
    assert parse_spec("prms25").percent == 25.0
    assert make_norm("prms12.5", C).percent == 12.5


@pytest.mark.parametrize(
    "spec", ["batchnorm", "BN2d", "layernorm", "gn0", "gnx", "gn-2", "prms0", "prms101", "rms2", "", "  ", None, 3]
)
def test_unknown_spec_lists_the_valid_ones(spec):
    with pytest.raises(NormSpecError) as info:
        make_norm(spec, C)
    message = str(info.value)
    assert isinstance(info.value, StylenormError)
    if "valid specs" in message:
        for name in ("bn", "ln", "in", "gn", "gnG", "rms", "prms", "none"):
            assert name in message
    else:  # a known kind with a bad parameter names the allowed range instead
        assert ("at least 1" in message) or ("(0, 100]" in message)


def test_unknown_spec_message_is_the_spec_list():
    with pytest.raises(NormSpecError, match="valid specs: " + SPEC_HELP.replace("(", r"\(").replace(")", r"\)")):
        make_norm("batchnorm", C)


@pytest.mark.parametrize("spec,channels", [("gn3", 8), ("gn16", 8), ("gn5", 48), ("gn7", 20)])
def test_gn_groups_must_divide_channels(spec, channels):
    with pytest.raises(NormSpecError, match=rf"do not divide {channels} channels"):
        make_norm(spec, channels)


@pytest.mark.parametrize(
    "channels,groups",
    [(128, 32), (256, 32), (64, 32), (32, 32), (48, 24), (20, 20), (33, 11), (36, 18), (3, 3), (1, 1), (97, 1)],
)
def test_plain_gn_picks_32_or_the_largest_divisor_not_above(channels, groups):
    assert make_norm("gn", channels).num_groups == groups


def test_zero_channels_is_an_error():
    with pytest.raises(NormSpecError, match="at least one channel"):
        make_norm("ln", 0)


@pytest.mark.parametrize("spec,shape_name", [(s, n) for s, n in cases() if n != "seq"])
def test_eps_is_honoured(spec, shape_name):
    """A large eps visibly changes every normalising spec's output, exactly as the equations say."""
    shape = SHAPES[shape_name]
    x = sample(shape, scale=0.5, shift=0.2)
    norm = randomise(make_norm(spec, C, eps=0.4).double())
    weight, bias = params_of(norm)
    torch.testing.assert_close(norm(x), reference(spec, x, weight, bias, eps=0.4))
    single_value_groups = shape_name == "vec" and getattr(norm, "num_groups", 1) == C
    if spec != "none" and not single_value_groups:  # one value per group normalises to 0 for any eps
        assert not torch.allclose(norm(x), reference(spec, x, weight, bias, eps=1e-5), atol=1e-3)


@pytest.mark.parametrize("spec", SPECS)
def test_affine_false_has_no_parameters(spec):
    norm = make_norm(spec, C, affine=False).double()
    assert list(norm.parameters()) == []
    shape = MAP
    x = sample(shape)
    torch.testing.assert_close(norm(x), reference(spec, x))


@pytest.mark.parametrize("spec", [s for s in SPECS if s != "none"])
def test_affine_true_has_per_channel_parameters(spec):
    norm = make_norm(spec, C)
    shapes = sorted(tuple(p.shape) for p in norm.parameters())
    expected = [(C,)] if parse_spec(spec).kind in ("rms", "prms") else [(C,), (C,)]
    assert shapes == expected
    # γ starts at one and β at zero: a fresh layer is the plain normalisation.
    x = sample(MAP, seed=3)
    torch.testing.assert_close(norm.double()(x), reference(spec, x))


@pytest.mark.parametrize("spec", ["rms", "prms"])
def test_rms_bias_option(spec):
    norm = randomise(make_norm(spec, C, bias=True).double())
    assert norm.bias is not None and norm.bias.shape == (C,)
    x = sample(MAP)
    torch.testing.assert_close(norm(x), reference(spec, x, norm.weight, norm.bias))


def test_bn_affine_false_still_tracks_running_stats():
    norm = make_norm("bn", C, affine=False).double()
    norm(sample(MAP, shift=4.0))
    assert norm.running_mean.mean() > 0.1


# ----------------------------------------------------------------------- FiLM
@pytest.mark.parametrize("spec", ["gn", "gn4", "ln", "rms", "in"])
def test_film_at_zero_init_is_its_norm(spec):
    film = FiLM(spec, C, cond_dim=6).double()
    randomise(film.norm)
    x, cond = sample(MAP), sample((MAP[0], 6), seed=2)
    torch.testing.assert_close(film(x, cond), film.norm(x), rtol=0, atol=0)


def test_film_gradient_reaches_the_projection():
    film = FiLM("gn4", C, cond_dim=6).double()
    x, cond = sample(MAP), sample((MAP[0], 6), seed=2)
    (film(x, cond) * sample(MAP, seed=5)).sum().backward()
    assert film.proj.weight.grad is not None and film.proj.weight.grad.abs().sum() > 0
    assert film.proj.bias.grad.abs().sum() > 0


def test_film_applies_scale_and_shift():
    film = randomise(FiLM("gn2", C, cond_dim=6).double())
    x, cond = sample(SEQ), sample((SEQ[0], 6), seed=2)
    scale, shift = (cond @ film.proj.weight.T + film.proj.bias).chunk(2, dim=1)
    expected = film.norm(x) * (1 + scale[:, :, None]) + shift[:, :, None]
    torch.testing.assert_close(film(x, cond), expected)


def test_film_passes_norm_options():
    film = FiLM("gn", C, cond_dim=3, eps=0.25, affine=False)
    assert film.norm.eps == 0.25 and film.norm.weight is None


# ----------------------------------------------------------- ConditionalNorm
def conditional(spec: str = "in", styles: int = 3) -> ConditionalNorm:
    return randomise(ConditionalNorm(spec, C, num_styles=styles).double(), seed=4)


def test_conditional_norm_selects_each_samples_style():
    cond = conditional()
    x = sample(MAP)
    style = torch.tensor([2, 0, 1])
    expected = ref_in(x) * cond.weight[style][:, :, None, None] + cond.bias[style][:, :, None, None]
    torch.testing.assert_close(cond(x, style), expected)
    assert list(cond.norm.parameters()) == []  # only the style table holds γ/β


def test_conditional_norm_one_hot_weights_equal_indices():
    cond = conditional()
    x = sample(MAP)
    style = torch.tensor([2, 0, 1])
    one_hot = torch.nn.functional.one_hot(style, 3).double()
    torch.testing.assert_close(cond(x, one_hot), cond(x, style))


def test_conditional_norm_half_half_mix_is_the_mean_of_both_styles():
    cond = conditional()
    x = sample(MAP)
    mix = torch.tensor([[0.5, 0.5, 0.0]] * 3, dtype=torch.float64)
    a = cond(x, torch.zeros(3, dtype=torch.long))
    b = cond(x, torch.ones(3, dtype=torch.long))
    torch.testing.assert_close(cond(x, mix), (a + b) / 2)


def test_conditional_norm_other_specs_and_gradients():
    cond = conditional("gn2")
    x = sample(SEQ).requires_grad_(True)
    cond(x, torch.tensor([1, 1, 0])).sum().backward()
    # styles 0 and 1 were used, style 2 was not: only used rows get gradient.
    assert cond.weight.grad[:2].abs().sum() > 0 and cond.weight.grad[2].abs().sum() == 0


def test_conditional_norm_needs_a_style():
    with pytest.raises(ValueError, match="at least one style"):
        ConditionalNorm("in", C, num_styles=0)


def test_group_counts_reports_every_groupnorm():
    model = nn.Sequential(nn.Conv2d(3, 48, 1), make_norm("gn", 48), nn.Conv2d(48, 64, 1),
                          make_norm("gn8", 64), make_norm("ln", 64))
    assert group_counts(model) == {"1": 24, "3": 8}
