"""The fused GroupNorm -> FiLM -> SiLU equals the composed reference, forward and backward."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylenorm.kernels import group_norm_film_silu, group_norm_film_silu_reference
from stylenorm.norms import FiLM

REPO = Path(__file__).resolve().parents[2]


def _inputs(dtype, n=2, c=8, spatial=(5, 6), with_params=(True, True, True, True), seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, c, *spatial, generator=gen) * 2 + 3).to(dtype).requires_grad_()
    params = [
        torch.randn(c, generator=gen).to(dtype).requires_grad_() if with_params[0] else None,
        torch.randn(c, generator=gen).to(dtype).requires_grad_() if with_params[1] else None,
        torch.randn(n, c, generator=gen).to(dtype).requires_grad_() if with_params[2] else None,
        torch.randn(n, c, generator=gen).to(dtype).requires_grad_() if with_params[3] else None,
    ]
    return x, params


def _grads(y, tensors, seed=1):
    gen = torch.Generator().manual_seed(seed)
    upstream = torch.randn(y.shape, generator=gen).to(y.dtype)
    live = [t for t in tensors if t is not None]
    return torch.autograd.grad(y, live, upstream)


@pytest.mark.parametrize("with_params", [(True, True, True, True), (False, False, False, False),
                                         (True, False, True, False), (False, True, False, True)])
def test_fused_matches_reference_float32(with_params):
    x, params = _inputs(torch.float32, with_params=with_params)
    fused = group_norm_film_silu(x, 4, *params)
    reference = group_norm_film_silu_reference(x, 4, *params)
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
    for a, b in zip(_grads(fused, [x, *params]), _grads(reference, [x, *params])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_fused_bfloat16_within_1e2():
    # Same bf16 inputs for both, so the comparison measures the fused arithmetic,
    # not the rounding of the inputs.
    x, params = _inputs(torch.bfloat16)
    reference = group_norm_film_silu_reference(x.float(), 4, *[p.float() for p in params])
    fused = group_norm_film_silu(x, 4, *params)
    assert fused.dtype == torch.bfloat16
    torch.testing.assert_close(fused.float(), reference, rtol=1e-2, atol=1e-2)


def test_fused_gradcheck_float64():
    x, params = _inputs(torch.float64, n=2, c=4, spatial=(3, 3))
    assert torch.autograd.gradcheck(lambda x, *p: group_norm_film_silu(x, 2, *p), (x, *params))


def test_fused_works_on_1d_and_3d_maps():
    for spatial in ((7,), (2, 3, 4)):
        x, params = _inputs(torch.float32, spatial=spatial)
        torch.testing.assert_close(group_norm_film_silu(x, 2, *params),
                                   group_norm_film_silu_reference(x, 2, *params), rtol=1e-5, atol=1e-5)


def test_film_uses_fused_path_with_same_result():
    film = FiLM("gn4", 8, cond_dim=5, act="silu")
    torch.nn.init.normal_(film.proj.weight)
    x, cond = torch.randn(3, 8, 6, 6), torch.randn(3, 5)
    fused = film(x, cond)
    film.fused = False
    torch.testing.assert_close(fused, film(x, cond), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec, groups", [("ln", 1), ("in", 8), ("gn4", 4), ("gn", 8)])
def test_film_fuses_every_norm_that_is_a_group_norm(monkeypatch, spec, groups):
    """ln and in are GroupNorms with G = 1 and G = C: FiLM runs them through the fused kernel too,
    with the result and the gradients of the unfused norm -> modulation -> SiLU."""
    import stylenorm.kernels

    calls = []
    kernel = stylenorm.kernels.group_norm_film_silu
    monkeypatch.setattr(stylenorm.kernels, "group_norm_film_silu", lambda x, g, *a: calls.append(g) or kernel(x, g, *a))
    torch.manual_seed(0)
    film = FiLM(spec, 8, cond_dim=5, act="silu")
    torch.nn.init.normal_(film.proj.weight)
    torch.nn.init.normal_(film.norm.weight)
    torch.nn.init.normal_(film.norm.bias)
    x, cond = (torch.randn(3, 8, 6, 6) * 2 + 1).requires_grad_(), torch.randn(3, 5)
    fused = film(x, cond)
    assert calls == [groups]
    film.fused = False
    unfused = film(x, cond)
    assert calls == [groups]
    torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-5)
    params = [x, film.norm.weight, film.norm.bias, film.proj.weight]
    for a, b in zip(_grads(fused, params), _grads(unfused, params)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", ["bn", "rms", "prms", "none"])
def test_film_leaves_norms_that_are_no_group_norm_unfused(monkeypatch, spec):
    import stylenorm.kernels

    monkeypatch.setattr(stylenorm.kernels, "group_norm_film_silu", lambda *a: pytest.fail("fused a non-GroupNorm"))
    FiLM(spec, 8, cond_dim=5, act="silu")(torch.randn(3, 8, 6, 6), torch.randn(3, 5))


def test_film_keeps_instance_norm_modes_that_are_no_group_norm():
    """Temporal IN carries statistics across frames and IN with running averages uses them in eval:
    neither is GroupNorm(C), so FiLM must not fuse them."""
    from stylenorm.norms import temporal_instance_norm

    torch.manual_seed(0)
    x, cond = torch.randn(4, 8, 6, 6), torch.randn(4, 5)
    film = FiLM("in", 8, cond_dim=5, act="silu")
    torch.nn.init.normal_(film.proj.weight)
    with temporal_instance_norm(film, momentum=0.5):
        temporal = film(x, cond)
    assert not torch.allclose(temporal, film(x, cond), atol=1e-3)  # the frames after the first: other statistics
    tracked = FiLM("in", 8, cond_dim=5, act="silu", track_running_stats=True).eval()
    shape = (4, 8, 1, 1)
    scale, shift = tracked.proj(cond).chunk(2, dim=1)
    expected = torch.nn.functional.silu(x * (1 + scale.view(shape)) + shift.view(shape))  # fresh running stats: 0, 1
    torch.testing.assert_close(tracked(x, cond), expected, rtol=1e-4, atol=1e-4)


def test_fused_rejects_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="dividing"):
        group_norm_film_silu(torch.randn(2, 6, 4, 4), 4)


_INTERPRETER_CHECK = r"""
import torch
from stylenorm.kernels import triton_gn_film_silu as T
from stylenorm.kernels import group_norm_film_silu_reference as ref
torch.manual_seed(0)
for channels_last in (False, True):
    for with_params in (True, False):
        x = torch.randn(2, 8, 5, 6) * 2 + 3
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        x.requires_grad_(True)
        params = [torch.randn(8, requires_grad=True), torch.randn(8, requires_grad=True),
                  torch.randn(2, 8, requires_grad=True), torch.randn(2, 8, requires_grad=True)]
        if not with_params:
            params = [None] * 4
        y = T.group_norm_film_silu(x, 4, *params, 1e-5)
        y_ref = ref(x, 4, *params)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        live = [t for t in (x, *params) if t is not None]
        up = torch.randn_like(y_ref)
        for a, b in zip(torch.autograd.grad(y, live, up), torch.autograd.grad(y_ref, live, up)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
print("ok")
"""


def test_triton_kernel_arithmetic_under_interpreter():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run([sys.executable, "-c", _INTERPRETER_CHECK], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_bench_fused_quick_writes_table(tmp_path):
    from typer.testing import CliRunner

    from stylenorm.cli import app

    out = tmp_path / "fused.md"
    result = CliRunner().invoke(app, ["bench", "fused", "--quick", "--repeats", "1", "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for row in ("eager composition", "| fused |", "copy (reference)"):
        assert row in text


def test_backward_twice_with_retained_graph_gives_the_same_gradients():
    # the first backward reuses the saved pre-activation's memory; a second one must recompute it
    x, params = _inputs(torch.float32)
    x.requires_grad_(True)
    y = group_norm_film_silu(x, 2, *params)
    dy = torch.randn_like(y)
    first = torch.autograd.grad(y, x, dy, retain_graph=True)[0]
    second = torch.autograd.grad(y, x, dy)[0]
    torch.testing.assert_close(first, second, rtol=0, atol=0)
