"""Fused kernels for the norm backend's hottest pattern: GroupNorm -> FiLM -> SiLU.

LayerNorm and InstanceNorm are GroupNorms too (G = 1 and G = C; `NormKind.groups`), so
`stylenorm.norms.FiLM` runs them through the same kernels.

`group_norm_film_silu` computes silu(group_norm(x) * (1 + scale) + shift) in as
few passes over memory as the device allows: a Triton kernel on CUDA, a
hand-derived autograd function in plain torch ops elsewhere. Both equal the
composed reference `group_norm_film_silu_reference` numerically.
"""

from stylenorm.kernels.gn_film_silu import (
    group_norm_film_silu,
    group_norm_film_silu_reference,
)

__all__ = ["group_norm_film_silu", "group_norm_film_silu_reference"]
