"""`stylenorm bench fused`: the fused GroupNorm+FiLM+SiLU against its eager composition.

Traffic model for GB/s: forward = one read of x and one write of y (the minimum
any implementation must move); the same byte count is used for the copy
bandwidth reference, so "% of copy" says how close the kernel is to the
device's memory speed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from stylenorm.bench.common import gigabytes_per_second, resolve_devices, time_ms, write_report
from stylenorm.kernels import group_norm_film_silu, group_norm_film_silu_reference

GROUPS = 32


def _cases(device: torch.device, quick: bool) -> list[tuple[tuple[int, ...], torch.dtype, bool]]:
    """(shape, dtype, channels_last) per device: the issue's target shapes."""
    if quick:
        return [((2, 32, 8, 8), torch.float32, False)]
    if device.type == "cuda":
        return [((32, 256, 64, 64), torch.bfloat16, False), ((32, 256, 64, 64), torch.bfloat16, True),
                ((32, 256, 64, 64), torch.float32, False)]
    return [((8, 128, 64, 64), torch.float32, False)]


def _make_inputs(shape, dtype, channels_last, device, requires_grad):
    n, c = shape[:2]
    x = torch.randn(shape, device=device, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    params = [torch.randn(c, device=device, dtype=dtype), torch.randn(c, device=device, dtype=dtype),
              0.1 * torch.randn(n, c, device=device, dtype=dtype), torch.randn(n, c, device=device, dtype=dtype)]
    for t in [x, *params]:
        t.requires_grad_(requires_grad)
    return x, params


def _compiled_reference():
    try:
        return torch.compile(group_norm_film_silu_reference, dynamic=False)
    except Exception:  # no compiler tool-chain: the row is reported as unavailable
        return None


def run_fused_benchmark(output: Path, device: str | None, repeats: int, quick: bool, compile: bool) -> str:
    devices = resolve_devices(device)
    rows = []
    for dev in devices:
        variants = {"eager composition": group_norm_film_silu_reference, "fused": group_norm_film_silu}
        if compile and not quick:
            compiled = _compiled_reference()
            if compiled is not None:
                variants["torch.compile(composition)"] = compiled
        cases = list(_cases(dev, quick))
        # minutes without output otherwise; the trainers' kind of bar, removed when done
        for shape, dtype, channels_last in tqdm(cases, desc=f"bench fused {dev.type}", unit="shape", leave=False):
            x, params = _make_inputs(shape, dtype, channels_last, dev, requires_grad=False)
            traffic = 2 * x.numel() * x.element_size()
            copy_target = torch.empty_like(x)
            copy_ms = time_ms(lambda: copy_target.copy_(x), dev, repeats)
            copy_gbs = gigabytes_per_second(traffic, copy_ms)
            xg, pg = _make_inputs(shape, dtype, channels_last, dev, requires_grad=True)
            upstream = torch.randn_like(xg)
            timings = {}
            for name, fn in variants.items():
                try:
                    with torch.no_grad():
                        fwd = time_ms(lambda: fn(x, GROUPS, *params), dev, repeats)
                    both = time_ms(lambda: fn(xg, GROUPS, *pg).backward(upstream), dev, repeats)
                except Exception as exc:  # e.g. inductor without a C++ compiler
                    rows.append([dev.type, _label(shape, dtype, channels_last), name, f"failed: {type(exc).__name__}",
                                 "", "", "", ""])
                    continue
                timings[name] = (fwd, both)
            eager_fwd, eager_both = timings["eager composition"]
            for name, (fwd, both) in timings.items():
                gbs = gigabytes_per_second(traffic, fwd)
                rows.append([
                    dev.type, _label(shape, dtype, channels_last), name, f"{fwd:.3f}", f"{gbs:.1f}",
                    f"{100 * gbs / copy_gbs:.0f} %", f"{both:.3f}",
                    f"{eager_fwd / fwd:.2f}x / {eager_both / both:.2f}x",
                ])
            rows.append([dev.type, _label(shape, dtype, channels_last), "copy (reference)", f"{copy_ms:.3f}",
                         f"{copy_gbs:.1f}", "100 %", "", ""])
    for dev in devices:
        rows.extend(_unet_rows(dev, repeats, quick))
    return write_report(
        output, "Fused GroupNorm + FiLM + SiLU",
        ["device", "input", "implementation", "fwd ms", "fwd GB/s", "% of copy", "fwd+bwd ms",
         "speed-up vs eager (fwd / fwd+bwd)"],
        rows, devices=devices,
        notes=[f"silu(group_norm(x, {GROUPS}) * (1 + scale) + shift), scale/shift per (sample, channel). "
               "GB/s counts one read of x and one write of y; the copy row moves the same bytes. "
               "Median of repeated runs after warm-up. The U-Net rows time one training step "
               "(forward, loss, backward) of the diffusion U-Net with `fused_norm` on and off; "
               "their last column is the step-time ratio."],
    )


def _label(shape, dtype, channels_last) -> str:
    layout = "channels_last" if channels_last else "NCHW"
    return f"{tuple(shape)} {str(dtype).removeprefix('torch.')} {layout}"


def _unet_rows(device: torch.device, repeats: int, quick: bool) -> list[list[str]]:
    """One diffusion U-Net training step with and without the fused path."""
    from stylenorm.diffusion.unet import UNet, UNetConfig

    size, batch, width = (8, 2, 16) if quick else (32, 32, 64)
    x = torch.randn(batch, 3, size, size, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    times = {}
    for fused in (False, True):
        torch.manual_seed(0)
        config = UNetConfig(image_size=size, in_channels=3, base_channels=width, channel_mults=(1, 2, 2),
                            num_res_blocks=2, attention_resolutions=(size // 4,), norm="gn", fused_norm=fused)
        model = UNet(config).to(device)

        def step() -> None:
            model.zero_grad(set_to_none=True)
            model(x, t).float().pow(2).mean().backward()

        times[fused] = time_ms(step, device, max(1, repeats // 4))
    label = f"U-Net base {width}, batch {batch}, {size}x{size}, gn"
    return [
        [device.type, label, "U-Net train step, eager norms", "", "", "", f"{times[False]:.1f}", "1.00x"],
        [device.type, label, "U-Net train step, fused norms", "", "", "", f"{times[True]:.1f}",
         f"{times[False] / times[True]:.2f}x"],
    ]
