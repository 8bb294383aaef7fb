"""The normalization backend: every norm layer in stylenorm comes from here.

A *spec* is a short string that names a normalization and carries its parameters
(the grammar and the table of kinds, `NORM_KINDS`, are in `stylenorm.norm_specs`):

    bn       BatchNorm (batch statistics in training, running averages in eval;
             synchronised across processes in distributed training)
    ln       LayerNorm over (C, *spatial) of each sample, per-channel affine
    in       InstanceNorm over the spatial axes of each channel of each sample
    gn       GroupNorm with 32 groups, or the largest divisor of C below that
    gnG      GroupNorm with exactly G groups (G must divide C); gn1 == ln, gnC == in
    rms      RMSNorm over (C, *spatial): no re-centering, per-channel gain
    prms     partial RMSNorm, RMS estimated from the first 6.25 % of each sample
    prmsP    partial RMSNorm with P percent (e.g. prms25)
    none     identity

InstanceNorm also has a temporal mode for video (`temporal_instance_norm`).

All layers take feature maps shaped (N, C, *spatial): (N, C), (N, C, L), (N, C, H, W), ...
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from stylenorm.errors import StylenormError
from stylenorm.norm_specs import (  # noqa: F401  (the backend's spec half, re-exported)
    DEFAULT_GROUPS,
    DEFAULT_PRMS_PERCENT,
    DEFAULT_SPECS,
    NORM_KINDS,
    SPEC_HELP,
    NormKind,
    NormSpec,
    NormSpecError,
    default_groups,
    norm_kind,
    parse_spec,
    partial_count,
    statistic_size,
)


class NormInputError(StylenormError, ValueError):
    """An input a norm cannot normalise (wrong shape, one value per channel for bn)."""


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector against x (N, C, *spatial)."""
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


def _check_feature_map(x: torch.Tensor, num_channels: int, name: str) -> None:
    if x.dim() < 2 or x.shape[1] != num_channels:
        raise NormInputError(
            f"{name} expects input shaped (N, {num_channels}, *spatial), got {tuple(x.shape)}"
        )


class _PerChannelAffine(nn.Module):
    """Holds the optional per-channel gain/bias shared by LN, RMS and pRMS."""

    def __init__(self, num_channels: int, affine: bool, bias: bool = True) -> None:
        super().__init__()
        self.num_channels = num_channels
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def _affine(self, y: torch.Tensor) -> torch.Tensor:
        if self.weight is not None:
            y = y * self.weight.view(_channel_shape(y))
        if self.bias is not None:
            y = y + self.bias.view(_channel_shape(y))
        return y


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm for (N, C, *spatial) that synchronises statistics across processes.

    Single-process it is torch's batch_norm. In distributed training on CPU
    (gloo), where torch.nn.SyncBatchNorm refuses to run, the per-channel sums are
    reduced with torch.distributed's differentiable all-reduce, so every process
    normalises with the statistics of the concatenated batch and gradients flow
    through them. On GPUs `stylenorm.training` swaps these layers for
    torch.nn.SyncBatchNorm, whose CUDA kernels do the same job faster (it accepts
    any subclass of _BatchNorm).
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        _check_feature_map(x, self.num_features, "BatchNorm")

    def _needs_sync(self) -> bool:
        import torch.distributed as dist

        return self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        use_batch_stats = self.training or not self.track_running_stats
        synced = use_batch_stats and self._needs_sync()
        if use_batch_stats and not synced:
            # Checked before counting the batch, so a refused batch leaves the layer as it was.
            _require_several_values(x.numel() // x.shape[1], x.shape)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        momentum = self.momentum
        if momentum is None:  # cumulative moving average, as in torch
            momentum = 1.0 / float(self.num_batches_tracked)
        if synced:
            return self._synced_forward(x, momentum)
        return F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
        )

    def _synced_forward(self, x: torch.Tensor, momentum: float) -> torch.Tensor:
        import torch.distributed.nn.functional as dist_fn
        from torch.distributed import ReduceOp

        dims = [0] + list(range(2, x.dim()))
        local_count = x.numel() // x.shape[1]
        count = dist_fn.all_reduce(
            torch.tensor([float(local_count)], device=x.device), op=ReduceOp.SUM
        ).item()
        _require_several_values(int(count), x.shape)
        # Two passes (mean, then centred squares) keep the variance exact where
        # E[x^2] - E[x]^2 would cancel catastrophically.
        mean = dist_fn.all_reduce(x.sum(dims), op=ReduceOp.SUM) / count
        centred = x - mean.view(_channel_shape(x))
        var = dist_fn.all_reduce(centred.pow(2).sum(dims), op=ReduceOp.SUM) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * (count / (count - 1))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        y = centred * torch.rsqrt(var + self.eps).view(_channel_shape(x))
        if self.weight is not None:
            y = y * self.weight.view(_channel_shape(x)) + self.bias.view(_channel_shape(x))
        return y


def _require_several_values(values_per_channel: int, shape: torch.Size) -> None:
    if values_per_channel <= 1:
        raise NormInputError(
            f"BatchNorm ('bn') in training needs more than one value per channel, but input "
            f"{tuple(shape)} has one; use a batch size of at least 2 or a batch-independent "
            f"norm (gn, ln, in, rms)"
        )


class LayerNorm(_PerChannelAffine):
    """Normalises each sample over (C, *spatial), then applies a per-channel affine."""

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__(num_channels, affine)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_feature_map(x, self.num_channels, "LayerNorm")
        # GroupNorm with one group is exactly this LN (per-channel γ/β) in one fused kernel;
        # layer_norm plus a separate affine was 2-4x slower (docs/bench/norms_cpu.md). The
        # ATen op, unlike F.group_norm, also accepts one value per sample (N, 1).
        return torch.group_norm(x, 1, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.weight is not None}"


class InstanceNorm(nn.modules.instancenorm._InstanceNorm):
    """InstanceNorm over the spatial axes of each channel of each sample, affine by default.

    With `temporal` set (see `temporal_instance_norm`) it normalises a sequence of
    frames with statistics carried across them instead of each frame's own.
    """

    temporal: "TemporalStats | None" = None

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        momentum: float = 0.1,
        track_running_stats: bool = False,
    ) -> None:
        super().__init__(num_channels, eps, momentum, affine, track_running_stats)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 3:
            raise NormInputError(
                f"InstanceNorm ('in') needs spatial axes, input shaped (N, C, *spatial); got "
                f"{tuple(x.shape)}; use ln or rms for (N, C) features"
            )
        _check_feature_map(x, self.num_features, "InstanceNorm")

    @property
    def runs_as_group_norm(self) -> bool:
        """Per-frame statistics and no running averages: then this layer is GroupNorm with G = C."""
        return self.temporal is None and not self.track_running_stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self.temporal is not None:
            return self.temporal.normalize(x, self.weight, self.bias, self.eps)
        if self.runs_as_group_norm:
            # InstanceNorm is GroupNorm with one channel per group (the seeds'
            # continuum), and torch's group_norm kernel is ~5x faster than its
            # instance_norm on CPU (docs/bench/norms_cpu.md) with the same result.
            return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)
        return F.instance_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            self.momentum if self.momentum is not None else 0.0,
            self.eps,
        )


class TemporalStats:
    """The temporal mode of one InstanceNorm layer: per-channel statistics carried across video frames.

    Per-frame IN re-estimates each channel's mean and variance from every frame, so
    noise and small content changes shift the whole frame's tone from one frame to
    the next (flicker). Here each frame is normalised with an exponential moving
    average of the recent frames' statistics: mean_t = (1 - m) mean_{t-1} + m mean(x_t),
    likewise the variance, m = momentum (1 is plain IN). The first frame after
    `reset()` (a scene cut) uses its own statistics. Frames of one batch are taken in
    time order. Statistics are computed in float32 whatever the layer's dtype.
    """

    def __init__(self, momentum: float) -> None:
        if not 0 < momentum <= 1:
            raise NormSpecError(f"temporal IN momentum {momentum} is outside (0, 1]; 1 is per-frame statistics")
        self.momentum = momentum
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None

    def reset(self) -> None:
        self.mean = self.var = None

    def normalize(self, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  eps: float) -> torch.Tensor:
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=tuple(range(2, x.dim())), unbiased=False)
        means, variances = [], []
        for frame_mean, frame_var in zip(mean, var):
            if self.mean is None:
                self.mean, self.var = frame_mean, frame_var
            else:
                self.mean = torch.lerp(self.mean, frame_mean, self.momentum)
                self.var = torch.lerp(self.var, frame_var, self.momentum)
            means.append(self.mean)
            variances.append(self.var)
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        y = (xf - torch.stack(means).view(shape)) * torch.rsqrt(torch.stack(variances) + eps).view(shape)
        if weight is not None:
            y = y * weight.float().view(_channel_shape(x)) + bias.float().view(_channel_shape(x))
        return y.to(x.dtype)


@contextlib.contextmanager
def temporal_instance_norm(model: nn.Module, momentum: float) -> Iterator[Callable[[], None]]:
    """Switch every InstanceNorm layer of `model` (conditional ones too) to the temporal mode.

    Yields `reset`, to call at scene cuts; on exit the layers are per-frame IN again.
    """
    layers = [m for m in model.modules() if isinstance(m, InstanceNorm)]
    if not layers:
        raise NormSpecError("this network has no InstanceNorm ('in') layers, so it cannot carry their statistics "
                            "across frames; use --stabilize flow or none")
    for layer in layers:
        layer.temporal = TemporalStats(momentum)

    def reset() -> None:
        for layer in layers:
            layer.temporal.reset()

    try:
        yield reset
    finally:
        for layer in layers:
            layer.temporal = None


class GroupNorm(nn.GroupNorm):
    """torch's GroupNorm, checked against (N, C, *spatial) with a readable error."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_feature_map(x, self.num_channels, "GroupNorm")
        return super().forward(x)


class _RMSNormCPU(torch.autograd.Function):
    """x / sqrt(mean(x^2) + eps) over all but the batch dimension, for CPU tensors.

    torch's CPU rms_norm backward is several elementwise passes and reductions through
    autograd; this one is one product-sum and one fused multiply-add (`stylenorm bench
    norms` compares the two).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        inv_rms = torch.rsqrt(torch.linalg.vector_norm(flat, dim=1, keepdim=True).square_().div_(flat.shape[1]).add_(eps))
        ctx.save_for_backward(x, inv_rms)
        return (flat * inv_rms).view(x.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, inv_rms = ctx.saved_tensors
        flat, grad = x.reshape(x.shape[0], -1), dy.reshape(x.shape[0], -1)
        # d/dx (x * r) with r = (mean(x^2) + eps)^-1/2:  r * dy - x * r^3 * mean(dy * x)
        dot = (grad * flat).sum(dim=1, keepdim=True)
        dx = grad * inv_rms
        dx.addcmul_(flat, inv_rms.pow(3) * dot / flat.shape[1], value=-1)
        return dx.view(x.shape), None


class RMSNorm(_PerChannelAffine):
    """RMSNorm over (C, *spatial) of each sample: no re-centering, learnable gain.

    With `percent` below 100 it is partial RMSNorm (Zhang & Sennrich 2019): the RMS
    is estimated from the first ceil(percent/100 * n) elements of each sample.
    """

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        bias: bool = False,
        percent: float = 100.0,
    ) -> None:
        super().__init__(num_channels, affine, bias)
        self.eps = eps
        self.percent = percent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_feature_map(x, self.num_channels, "RMSNorm")
        if self.percent >= 100 and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            y = _RMSNormCPU.apply(x, self.eps)
        elif self.percent >= 100:
            y = F.rms_norm(x, x.shape[1:], eps=self.eps)
        else:
            flat = x.flatten(1)
            k = partial_count(self.percent, flat.shape[1])
            ms = flat[:, :k].pow(2).mean(dim=1)
            y = x * torch.rsqrt(ms + self.eps).view((-1,) + (1,) * (x.dim() - 1))
        return self._affine(y)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, percent={self.percent}"


def make_norm(
    spec: str,
    num_channels: int,
    *,
    eps: float = 1e-5,
    affine: bool = True,
    momentum: float = 0.1,
    track_running_stats: bool = False,
    bias: bool = False,
) -> nn.Module:
    """Return the normalization layer that `spec` names for `num_channels` channels.

    eps and affine apply to every spec; momentum to bn and in; track_running_stats
    to in (bn always tracks them); bias adds a learnable shift to rms/prms.
    """
    parsed = parse_spec(spec)
    if num_channels < 1:
        raise NormSpecError(f"norm {spec!r} needs at least one channel, got {num_channels}")
    if parsed.kind == "bn":
        return BatchNorm(num_channels, eps=eps, momentum=momentum, affine=affine)
    if parsed.kind == "ln":
        return LayerNorm(num_channels, eps=eps, affine=affine)
    if parsed.kind == "in":
        return InstanceNorm(
            num_channels, eps=eps, affine=affine, momentum=momentum,
            track_running_stats=track_running_stats,
        )
    if parsed.kind == "gn":
        groups = norm_kind(parsed).groups(parsed, num_channels)
        if num_channels % groups:
            raise NormSpecError(
                f"norm spec {spec!r}: {groups} groups do not divide {num_channels} channels; "
                f"pick a G that divides {num_channels}, or plain 'gn' to choose one"
            )
        return GroupNorm(groups, num_channels, eps=eps, affine=affine)
    if parsed.kind == "rms":
        return RMSNorm(num_channels, eps=eps, affine=affine, bias=bias)
    if parsed.kind == "prms":
        return RMSNorm(num_channels, eps=eps, affine=affine, bias=bias, percent=parsed.percent)
    return nn.Identity()


# What make_norm builds for each kind ("none" is nn.Identity, which has no statistics).
NORM_LAYERS = (BatchNorm, LayerNorm, InstanceNorm, GroupNorm, RMSNorm)


@torch.no_grad()
def norm_layer_inputs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """The name and input shape per image, (C, *spatial), of every normalization layer in `model`, in the
    order one forward pass of `example` reaches them (in eval mode, restored afterwards). Give it two
    images: torch's InstanceNorm refuses a batch of one with 1 x 1 maps (one value per channel)."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    hooks = [module.register_forward_pre_hook(lambda m, args, name=name: seen.append((name, tuple(args[0].shape[1:]))))
             for name, module in model.named_modules() if isinstance(module, NORM_LAYERS)]
    was_training = model.training
    try:
        model.eval()(example)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return seen


Smallest = tuple[int, str, tuple[int, ...]]  # values, layer name, its input shape per image (C, *spatial)


def smallest_statistic(spec: str, layers: list[tuple[str, tuple[int, ...]]], batch: int) -> Smallest | None:
    """(values, layer name, its input shape) of the statistic over the fewest values among `layers`
    (from norm_layer_inputs) at `batch` images; None where the spec computes no statistics."""
    sizes = [(size, name, shape) for name, shape in layers
             if (size := statistic_size(spec, batch, shape[0], math.prod(shape[1:]))) is not None]
    return min(sizes, key=lambda entry: entry[0]) if sizes else None


class FiLM(nn.Module):
    """Normalise, then modulate with a conditioning vector: y = act(norm(x) * (1 + scale) + shift).

    The projection from the conditioning vector is zero-initialised, so a new
    block starts as plain normalization (the identity modulation), as in
    diffusers' `scale_shift` ResNet blocks and improved-diffusion. With a spec
    that is a GroupNorm (gn, and ln and in as G = 1 and G = C) and act="silu"
    the three steps run as one fused operation
    (`stylenorm.kernels.group_norm_film_silu`) unless `fused=False`.
    """

    def __init__(self, spec: str, num_channels: int, cond_dim: int, act: str | None = None,
                 fused: bool = True, **norm_options) -> None:
        super().__init__()
        if act not in (None, "silu"):
            raise NormSpecError(f"FiLM activation {act!r} is not supported; use None or 'silu'")
        self.norm = make_norm(spec, num_channels, **norm_options)
        parsed = parse_spec(spec)
        group_rule = norm_kind(parsed).groups
        self.groups = group_rule(parsed, num_channels) if group_rule else None  # as a GroupNorm, if it is one
        self.act = act
        self.fused = fused
        self.proj = nn.Linear(cond_dim, 2 * num_channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def _runs_fused(self, x: torch.Tensor) -> bool:
        if not (self.fused and self.act == "silu" and self.groups is not None and x.dim() > 2):
            return False
        # an InstanceNorm in its temporal mode or with running averages is no GroupNorm
        return not isinstance(self.norm, InstanceNorm) or self.norm.runs_as_group_norm

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(cond).chunk(2, dim=1)
        if self._runs_fused(x):
            from stylenorm.kernels import group_norm_film_silu

            return group_norm_film_silu(
                x, self.groups, self.norm.weight, self.norm.bias,
                scale.to(x.dtype), shift.to(x.dtype), self.norm.eps,
            )
        shape = scale.shape + (1,) * (x.dim() - 2)
        y = self.norm(x) * (1 + scale.view(shape)) + shift.view(shape)
        return F.silu(y) if self.act == "silu" else y


class ConditionalNorm(nn.Module):
    """A norm whose affine parameters are chosen per sample from a table of styles.

    With spec "in" this is conditional instance normalization (Dumoulin et al.
    2017): one network holds several styles and each style owns only its γ/β.
    `style` is either a LongTensor of style indices (N,) or a float tensor of
    mixing weights (N, num_styles); weights blend styles by mixing their γ/β.
    """

    def __init__(self, spec: str, num_channels: int, num_styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        if num_styles < 1:
            raise ValueError(f"ConditionalNorm needs at least one style, got {num_styles}")
        self.norm = make_norm(spec, num_channels, eps=eps, affine=False)
        self.num_styles = num_styles
        self.weight = nn.Parameter(torch.ones(num_styles, num_channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, num_channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if style.dtype in (torch.int64, torch.int32):
            gamma, beta = self.weight[style], self.bias[style]
        else:
            mix = style.to(self.weight.dtype)
            gamma, beta = mix @ self.weight, mix @ self.bias
        shape = gamma.shape + (1,) * (x.dim() - 2)
        return self.norm(x) * gamma.view(shape).to(x.dtype) + beta.view(shape).to(x.dtype)


def layer_kind(module: nn.Module) -> NormKind | None:
    """The kind of a normalization layer (this backend's or torch's), None for any other module."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):  # torch's SyncBatchNorm too
        return NORM_KINDS["bn"]
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return NORM_KINDS["in"]
    if isinstance(module, nn.GroupNorm):
        return NORM_KINDS["gn"]
    if isinstance(module, (LayerNorm, nn.LayerNorm)):
        return NORM_KINDS["ln"]
    if isinstance(module, RMSNorm):
        return NORM_KINDS["rms" if module.percent >= 100 else "prms"]
    if isinstance(module, nn.RMSNorm):
        return NORM_KINDS["rms"]
    return None


def group_counts(model: nn.Module) -> dict[str, int]:
    """The number of groups each GroupNorm layer of a model got (for model cards)."""
    return {name: m.num_groups for name, m in model.named_modules() if isinstance(m, nn.GroupNorm)}
