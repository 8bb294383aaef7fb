"""`stylenorm bench norms`: every norm spec, forward and forward+backward, next to torch.nn.

Shapes are the ones the two models actually normalise: the style network's
128-channel residual maps at 256 px training crops, (4, 128, 64, 64), and a U-Net's
256-channel maps, (8, 256, 32, 32). Each spec is timed as `make_norm` builds it and,
where torch.nn has the same computation, as that layer, so the table shows what our
thin wrappers (per-channel affine on top of torch's kernels, checks) cost.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from stylenorm.bench.common import gigabytes_per_second, interleaved_medians_ms, resolve_devices, write_report
from stylenorm.errors import StylenormError
from stylenorm.norms import DEFAULT_SPECS, default_groups, make_norm, parse_spec

SPECS = DEFAULT_SPECS
SHAPES = {
    "style net": (4, 128, 64, 64),
    "U-Net": (8, 256, 32, 32),
}
QUICK_SHAPES = {"quick": (2, 16, 8, 8)}
TRAFFIC_NOTE = (
    "Traffic model for GB/s: forward = read x + write y (2 tensors); forward+backward adds "
    "read dy + read x + write dx (5 tensors); parameters and statistics are negligible and "
    "not counted. float32 throughout."
)


def torch_counterpart(spec: str, shape: tuple[int, ...]) -> tuple[str, nn.Module] | None:
    """The torch.nn layer computing the same thing as `spec` (default γ=1, β=0), if one exists."""
    kind, channels = parse_spec(spec).kind, shape[1]
    spatial = len(shape) - 2
    if kind == "bn":
        cls = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[spatial]
        return cls.__name__, cls(channels)
    if kind == "ln":
        return "GroupNorm(1, C)", nn.GroupNorm(1, channels)
    if kind == "in" and spatial in (1, 2, 3):
        cls = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[spatial]
        return f"{cls.__name__}(affine)", cls(channels, affine=True)
    if kind == "gn":
        groups = parse_spec(spec).groups or default_groups(channels)
        return f"GroupNorm({groups}, C)", nn.GroupNorm(groups, channels)
    if kind == "rms":
        return "RMSNorm([C, H, W])", nn.RMSNorm(list(shape[1:]), eps=1e-5)
    return None  # prms has no torch.nn equivalent; none is the identity


def _forward(module: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return module(x)
    return run


def _forward_backward(module: nn.Module, x: torch.Tensor, dy: torch.Tensor) -> Callable[[], object]:
    leaf = x.detach().requires_grad_(True)

    def run() -> None:
        # set_to_none: no accumulation kernels, so every repeat does the same work
        leaf.grad = None
        module.zero_grad(set_to_none=True)
        module(leaf).backward(dy)
    return run


def _fmt_ms(ms: float | None) -> str:
    return "—" if ms is None else f"{ms:.3f}" if ms < 10 else f"{ms:.2f}"


def _fmt_gbps(num_bytes: int, ms: float, spec: str) -> str:
    # `none` returns its input without touching memory; a throughput would be fiction.
    return "—" if spec == "none" else f"{gigabytes_per_second(num_bytes, ms):.1f}"


def _command(output: Path, device: str | None, repeats: int, quick: bool) -> str:
    parts = ["stylenorm bench norms", f"-o {output}"]
    if device:
        parts.append(f"--device {device}")
    parts.append(f"--repeats {repeats}")
    if quick:
        parts.append("--quick")
    return " ".join(parts)


def run_norm_benchmark(output: Path, device: str | None = None, repeats: int = 20, quick: bool = False) -> str:
    """Time every spec on every device and shape; print the table, write it to `output`, return it."""
    if repeats < 1:
        raise StylenormError(f"--repeats must be at least 1, got {repeats}")
    devices = resolve_devices(device)
    shapes = QUICK_SHAPES if quick else SHAPES
    timed_repeats = min(repeats, 3) if quick else repeats
    warmup = 1 if quick else 3
    cases = [(dev, label, shape, spec) for dev in devices for label, shape in shapes.items() for spec in SPECS]
    rows = []
    for dev, label, shape, spec in tqdm(cases, desc="bench norms", unit="case", disable=None):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=generator).to(dev)
        dy = torch.randn(shape, generator=generator).to(dev)
        tensor_bytes = x.numel() * x.element_size()
        ours = make_norm(spec, shape[1]).to(dev).train()
        counterpart = torch_counterpart(spec, shape)
        modules = [ours] if counterpart is None else [ours, counterpart[1].to(dev).train()]
        forwards = interleaved_medians_ms([_forward(m, x) for m in modules], dev, timed_repeats, warmup)
        boths = interleaved_medians_ms([_forward_backward(m, x, dy) for m in modules], dev, timed_repeats, warmup)
        fwd, both = forwards[0], boths[0]
        ref_name, ref_fwd, ref_both, diff, ratio = "—", None, None, "—", "—"
        if counterpart is not None:
            ref_name, theirs = counterpart[0], modules[1]
            ref_fwd, ref_both = forwards[1], boths[1]
            with torch.no_grad():
                # Fresh copies in train mode: the same computation on the same input, so any
                # difference is rounding, which this column makes visible.
                diff = f"{(ours(x) - theirs(x)).abs().max().item():.1e}"
            ratio = f"{both / ref_both:.2f}x"
        rows.append([
            dev.type, f"{label} {tuple(shape)}", spec,
            _fmt_ms(fwd), _fmt_gbps(2 * tensor_bytes, fwd, spec),
            _fmt_ms(both), _fmt_gbps(5 * tensor_bytes, both, spec),
            ref_name, _fmt_ms(ref_fwd), _fmt_ms(ref_both), ratio, diff,
        ])
    columns = [
        "device", "shape", "spec", "fwd ms", "fwd GB/s", "fwd+bwd ms", "fwd+bwd GB/s",
        "torch.nn layer", "torch.nn fwd ms", "torch.nn fwd+bwd ms", "fwd+bwd vs torch.nn", "max abs diff vs torch.nn",
    ]
    notes = [
        f"Median of {timed_repeats} timed repeats after {warmup} warm-up call(s), in milliseconds; "
        "a spec and its torch.nn layer are timed in alternation, so both see the same machine load. "
        "Forward runs under torch.no_grad(); forward+backward is y = norm(x); y.backward(dy) with "
        "x requiring grad. Every layer is in training mode (bn normalises with batch statistics "
        "and updates its running averages). Default γ = 1, β = 0; eps = 1e-5.",
        TRAFFIC_NOTE,
        "`none` is the identity (it returns its input): its time is the call overhead alone.",
        f"Threads: torch.get_num_threads() = {torch.get_num_threads()}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.",
    ]
    return write_report(
        output,
        "Norm layers: forward and forward+backward",
        columns,
        rows,
        devices=devices,
        command=_command(output, device, repeats, quick),
        notes=notes,
    )
