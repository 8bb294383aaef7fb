"""Triton kernels for silu(group_norm(x) * (1 + scale) + shift), forward and backward.

One program per (sample, group). The forward reads the group twice (statistics,
then apply; the second read mostly hits L2) and writes once; the backward
recomputes the pre-activation from x instead of storing it. Strides are passed
explicitly, so NCHW and channels_last inputs both work without a copy, in
float32, bfloat16 and float16 (statistics always accumulate in float32).

The kernels also run under Triton's interpreter (TRITON_INTERPRET=1) on CPU
tensors, which is how the tests check their arithmetic without a GPU.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: the torch path covers every device
    triton = None


def available() -> bool:
    return triton is not None


def _block_sizes(channels_per_group: int, spatial: int) -> tuple[int, int]:
    block_c = triton.next_power_of_2(channels_per_group)
    block_p = max(16, min(triton.next_power_of_2(spatial), 4096 // block_c))
    return block_c, block_p


if triton is not None:

    @triton.jit
    def _coefficients(n, c_offs, c_mask, C, mean, rstd, w_ptr, b_ptr, scale_ptr, shift_ptr,
                      HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_SCALE: tl.constexpr,
                      HAS_SHIFT: tl.constexpr):
        gamma = tl.full(c_offs.shape, 1.0, tl.float32)
        beta = tl.zeros(c_offs.shape, tl.float32)
        gain = tl.full(c_offs.shape, 1.0, tl.float32)
        shift = tl.zeros(c_offs.shape, tl.float32)
        if HAS_W:
            gamma = tl.load(w_ptr + c_offs, mask=c_mask, other=1.0).to(tl.float32)
        if HAS_B:
            beta = tl.load(b_ptr + c_offs, mask=c_mask, other=0.0).to(tl.float32)
        if HAS_SCALE:
            gain += tl.load(scale_ptr + n * C + c_offs, mask=c_mask, other=0.0).to(tl.float32)
        if HAS_SHIFT:
            shift = tl.load(shift_ptr + n * C + c_offs, mask=c_mask, other=0.0).to(tl.float32)
        a = rstd * gamma * gain
        b = (beta - mean * rstd * gamma) * gain + shift
        return gamma, beta, gain, a, b

    @triton.jit
    def _forward_kernel(x_ptr, y_ptr, w_ptr, b_ptr, scale_ptr, shift_ptr, mean_ptr, rstd_ptr,
                        C, HW, G, stride_n, stride_c, stride_p, eps,
                        HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_SCALE: tl.constexpr,
                        HAS_SHIFT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
        pid = tl.program_id(0)
        n = pid // G
        g = pid % G
        cg = C // G
        c_local = tl.arange(0, BLOCK_C)
        c_mask = c_local < cg
        c_offs = g * cg + c_local
        x_base = x_ptr + n * stride_n
        y_base = y_ptr + n * stride_n
        # Sums shifted by the group's first element keep E[d^2] - E[d]^2 exact
        # enough in float32 even when the mean is large against the spread.
        pivot = tl.load(x_base + (g * cg) * stride_c).to(tl.float32)
        acc_s = tl.zeros([BLOCK_C, BLOCK_P], tl.float32)
        acc_q = tl.zeros([BLOCK_C, BLOCK_P], tl.float32)
        for p0 in range(0, HW, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            mask = c_mask[:, None] & (p < HW)[None, :]
            offs = c_offs[:, None] * stride_c + p[None, :] * stride_p
            v = tl.load(x_base + offs, mask=mask, other=0.0).to(tl.float32)
            d = tl.where(mask, v - pivot, 0.0)
            acc_s += d
            acc_q += d * d
        count = (cg * HW).to(tl.float32)
        mean_d = tl.sum(tl.sum(acc_s, axis=1), axis=0) / count
        var = tl.maximum(tl.sum(tl.sum(acc_q, axis=1), axis=0) / count - mean_d * mean_d, 0.0)
        mean = mean_d + pivot
        rstd = 1.0 / tl.sqrt(var + eps)
        tl.store(mean_ptr + pid, mean)
        tl.store(rstd_ptr + pid, rstd)
        _, _, _, a, b = _coefficients(n, c_offs, c_mask, C, mean, rstd, w_ptr, b_ptr, scale_ptr,
                                      shift_ptr, HAS_W, HAS_B, HAS_SCALE, HAS_SHIFT)
        for p0 in range(0, HW, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            mask = c_mask[:, None] & (p < HW)[None, :]
            offs = c_offs[:, None] * stride_c + p[None, :] * stride_p
            v = tl.load(x_base + offs, mask=mask, other=0.0).to(tl.float32)
            z = v * a[:, None] + b[:, None]
            y = z * tl.sigmoid(z)
            tl.store(y_base + offs, y.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _backward_kernel(x_ptr, dy_ptr, dx_ptr, w_ptr, b_ptr, scale_ptr, shift_ptr, mean_ptr, rstd_ptr,
                         dscale_ptr, dshift_ptr, dgamma_ptr, dbeta_ptr,
                         C, HW, G, stride_n, stride_c, stride_p,
                         HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_SCALE: tl.constexpr,
                         HAS_SHIFT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
        pid = tl.program_id(0)
        n = pid // G
        g = pid % G
        cg = C // G
        c_local = tl.arange(0, BLOCK_C)
        c_mask = c_local < cg
        c_offs = g * cg + c_local
        mean = tl.load(mean_ptr + pid)
        rstd = tl.load(rstd_ptr + pid)
        gamma, beta, gain, a, b = _coefficients(n, c_offs, c_mask, C, mean, rstd, w_ptr, b_ptr, scale_ptr,
                                                shift_ptr, HAS_W, HAS_B, HAS_SCALE, HAS_SHIFT)
        x_base = x_ptr + n * stride_n
        dy_base = dy_ptr + n * stride_n
        dx_base = dx_ptr + n * stride_n
        # Pass 1: per-channel sums of dz and dz * (x - mean), dz = dy * silu'(z).
        acc_dz = tl.zeros([BLOCK_C, BLOCK_P], tl.float32)
        acc_dzx = tl.zeros([BLOCK_C, BLOCK_P], tl.float32)
        for p0 in range(0, HW, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            mask = c_mask[:, None] & (p < HW)[None, :]
            offs = c_offs[:, None] * stride_c + p[None, :] * stride_p
            v = tl.load(x_base + offs, mask=mask, other=0.0).to(tl.float32)
            dy = tl.load(dy_base + offs, mask=mask, other=0.0).to(tl.float32)
            z = v * a[:, None] + b[:, None]
            sig = tl.sigmoid(z)
            dz = tl.where(mask, dy * sig * (1.0 + z * (1.0 - sig)), 0.0)
            acc_dz += dz
            acc_dzx += dz * (v - mean)
        sum_dz = tl.sum(acc_dz, axis=1)
        sum_dz_xhat = tl.sum(acc_dzx, axis=1) * rstd
        out = n * C + c_offs
        tl.store(dshift_ptr + out, sum_dz, mask=c_mask)
        tl.store(dscale_ptr + out, gamma * sum_dz_xhat + beta * sum_dz, mask=c_mask)
        tl.store(dgamma_ptr + out, gain * sum_dz_xhat, mask=c_mask)
        tl.store(dbeta_ptr + out, gain * sum_dz, mask=c_mask)
        # dx = rstd * (k dz - mean_g(k dz) - xhat * mean_g(k dz xhat)), k = gamma * (1 + scale)
        k = gamma * gain
        count = (cg * HW).to(tl.float32)
        mean_kdz = tl.sum(tl.where(c_mask, k * sum_dz, 0.0), axis=0) / count
        mean_kdz_xhat = tl.sum(tl.where(c_mask, k * sum_dz_xhat, 0.0), axis=0) / count
        for p0 in range(0, HW, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            mask = c_mask[:, None] & (p < HW)[None, :]
            offs = c_offs[:, None] * stride_c + p[None, :] * stride_p
            v = tl.load(x_base + offs, mask=mask, other=0.0).to(tl.float32)
            dy = tl.load(dy_base + offs, mask=mask, other=0.0).to(tl.float32)
            z = v * a[:, None] + b[:, None]
            sig = tl.sigmoid(z)
            dz = dy * sig * (1.0 + z * (1.0 - sig))
            xhat = (v - mean) * rstd
            dx = rstd * (k[:, None] * dz - mean_kdz - xhat * mean_kdz_xhat)
            tl.store(dx_base + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _spatial_strides(x: torch.Tensor) -> tuple[int, int, int]:
    """(stride_n, stride_c, stride_p) when the spatial axes flatten into one axis p."""
    n, c = x.shape[:2]
    if x.is_contiguous():
        return x.stride(0), x.stride(1), 1
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.stride(0), 1, c
    raise ValueError("the fused GroupNorm kernel takes NCHW-contiguous or channels_last inputs")


def _dense_like(x: torch.Tensor) -> torch.Tensor:
    if x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return x
    return x.contiguous()


class _TritonGroupNormFiLMSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, num_groups, weight, bias, scale, shift, eps):
        x = _dense_like(x)
        n, c = x.shape[:2]
        hw = x[0, 0].numel()
        stride_n, stride_c, stride_p = _spatial_strides(x)
        y = torch.empty_like(x)
        mean = torch.empty(n * num_groups, device=x.device, dtype=torch.float32)
        rstd = torch.empty_like(mean)
        scale_c = scale.contiguous() if scale is not None else None
        shift_c = shift.contiguous() if shift is not None else None
        block_c, block_p = _block_sizes(c // num_groups, hw)
        _forward_kernel[(n * num_groups,)](
            x, y, weight if weight is not None else x, bias if bias is not None else x,
            scale_c if scale_c is not None else x, shift_c if shift_c is not None else x,
            mean, rstd, c, hw, num_groups, stride_n, stride_c, stride_p, eps,
            HAS_W=weight is not None, HAS_B=bias is not None, HAS_SCALE=scale is not None,
            HAS_SHIFT=shift is not None, BLOCK_C=block_c, BLOCK_P=block_p,
        )
        ctx.save_for_backward(x, weight, bias, scale_c, shift_c, mean, rstd)
        ctx.num_groups = num_groups
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias, scale, shift, mean, rstd = ctx.saved_tensors
        g = ctx.num_groups
        n, c = x.shape[:2]
        hw = x[0, 0].numel()
        memory_format = torch.channels_last if not x.is_contiguous() else torch.contiguous_format
        dy = dy.contiguous(memory_format=memory_format)
        stride_n, stride_c, stride_p = _spatial_strides(x)
        dx = torch.empty_like(x)
        parts = torch.empty(4, n, c, device=x.device, dtype=torch.float32)
        block_c, block_p = _block_sizes(c // g, hw)
        _backward_kernel[(n * g,)](
            x, dy, dx, weight if weight is not None else x, bias if bias is not None else x,
            scale if scale is not None else x, shift if shift is not None else x, mean, rstd,
            parts[0], parts[1], parts[2], parts[3], c, hw, g, stride_n, stride_c, stride_p,
            HAS_W=weight is not None, HAS_B=bias is not None, HAS_SCALE=scale is not None,
            HAS_SHIFT=shift is not None, BLOCK_C=block_c, BLOCK_P=block_p,
        )
        d_scale, d_shift, d_gamma, d_beta = parts
        return (
            dx, None,
            d_gamma.sum(0).to(weight.dtype) if weight is not None else None,
            d_beta.sum(0).to(bias.dtype) if bias is not None else None,
            d_scale.to(scale.dtype) if scale is not None else None,
            d_shift.to(shift.dtype) if shift is not None else None,
            None,
        )


def group_norm_film_silu(x, num_groups, weight, bias, scale, shift, eps):
    if triton is None:
        raise RuntimeError("Triton is not installed")
    return _TritonGroupNormFiLMSiLU.apply(x, num_groups, weight, bias, scale, shift, eps)
