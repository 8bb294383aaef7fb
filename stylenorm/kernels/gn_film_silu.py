"""silu(group_norm(x) * (1 + scale) + shift) as one operation, forward and backward.

FiLM's scale and shift are per (sample, channel), and GroupNorm's affine is per
channel, so the two fold into one per-(sample, channel) affine:
    weight' = gamma * (1 + scale),   bias' = beta * (1 + scale) + shift.
Viewing x (N, C, *S) as one sample of N*C channels with N*G groups keeps every
group's statistics unchanged and lets torch's own group_norm kernel (forward and
backward) apply the folded affine, so the whole pattern costs one group_norm and
one SiLU instead of group_norm, a multiply, an add and a SiLU, each with its own
pass over memory and its own allocation. On CUDA with Triton the norm, the
modulation and the SiLU run in one kernel (`triton_gn_film_silu`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def group_norm_film_silu_reference(
    x: torch.Tensor, num_groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
    scale: torch.Tensor | None, shift: torch.Tensor | None, eps: float = 1e-5,
) -> torch.Tensor:
    """The composed eager version: the definition the fused paths must equal."""
    h = F.group_norm(x, num_groups, weight, bias, eps)
    extra = (1,) * (x.dim() - 2)
    if scale is not None:
        h = h * (1 + scale.view(scale.shape + extra))
    if shift is not None:
        h = h + shift.view(shift.shape + extra)
    return F.silu(h)


def _folded_affine(x, weight, bias, scale, shift) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(n, c) weight and bias, flattened to N*C, that fold GroupNorm's affine into FiLM."""
    n, c = x.shape[:2]
    ones = x.new_ones(c)
    gamma = weight if weight is not None else ones
    beta = bias if bias is not None else torch.zeros_like(ones)
    gain = 1 + scale if scale is not None else x.new_ones(n, c)
    folded_bias = beta * gain + (shift if shift is not None else 0)
    return (gamma * gain).reshape(-1), folded_bias.expand(n, c).reshape(-1)


def _folded_group_norm_film_silu(x, num_groups, weight, bias, scale, shift, eps):
    n, c = x.shape[:2]
    folded_weight, folded_bias = _folded_affine(x, weight, bias, scale, shift)
    z = F.group_norm(x.reshape(1, n * c, *x.shape[2:]), n * num_groups, folded_weight, folded_bias, eps)
    # In place when no graph needs z: SiLU's backward wants its input.
    return F.silu(z, inplace=not z.requires_grad).view(x.shape)


def group_norm_film_silu(
    x: torch.Tensor, num_groups: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
    scale: torch.Tensor | None = None, shift: torch.Tensor | None = None, eps: float = 1e-5,
) -> torch.Tensor:
    """silu(group_norm(x, G, weight, bias) * (1 + scale) + shift); scale and shift are (N, C)."""
    if x.dim() < 3 or x.shape[1] % num_groups:
        raise ValueError(
            f"group_norm_film_silu needs (N, C, *spatial) with G dividing C; got {tuple(x.shape)}, G={num_groups}"
        )
    if x.is_cuda:
        from stylenorm.kernels import triton_gn_film_silu

        if triton_gn_film_silu.available():
            return triton_gn_film_silu.group_norm_film_silu(x, num_groups, weight, bias, scale, shift, eps)
    return _folded_group_norm_film_silu(x, num_groups, weight, bias, scale, shift, eps)
