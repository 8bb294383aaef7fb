"""`stylenorm bench stylize`: the plain float32 forward against the path `stylenorm stylize` takes.

Both rows stylize the same photo (a bundled demo photo fitted to each size) with
the shipped weights. "eager" is `net(x)` in float32 NCHW under no_grad; the
stylize row is `stylize_tensor(..., precision="auto")`, everything included
(preparing the network, layout changes, copies back to the CPU). PSNR compares
the two outputs as 8-bit images, the form a user gets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from stylenorm.bench.common import format_bytes, interleaved_medians_ms, peak_memory_bytes, resolve_devices, write_report
from stylenorm.images import to_tensor, to_uint8
from stylenorm.style.stylize import FLOAT32_LAYERS, resolve_precision, resolve_style, stylize_tensor

SIZES = [(512, 512), (1024, 1024), (1920, 1080)]  # (width, height)
QUICK_SIZES = [(64, 64), (96, 64)]
DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
PHOTO = "astronaut.png"


def photo(width: int, height: int, name: str = PHOTO) -> torch.Tensor:
    """A demo photo scaled and centre-cropped to width x height, as (1, 3, H, W) in [0, 1]."""
    with Image.open(DEMO / name) as img:
        return to_tensor(np.asarray(ImageOps.fit(img.convert("RGB"), (width, height), Image.BICUBIC)))


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two [0, 1] images after rounding to 8 bits (inf when identical)."""
    mse = np.mean((to_uint8(a).astype(np.float64) - to_uint8(b).astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def run_stylize_benchmark(output: str | os.PathLike = "results/bench_stylize.md", device: str | None = None,
                          repeats: int = 5, quick: bool = False, threads: int | None = None,
                          sizes: Sequence[tuple[int, int]] | None = None, echo=print) -> str:
    if threads:
        torch.set_num_threads(threads)
    devices = resolve_devices(device)
    sizes = list(sizes or (QUICK_SIZES if quick else SIZES))
    repeats = 1 if quick else repeats
    rows, labels = [], []
    for dev in devices:
        choice = resolve_style(None, device=str(dev))
        net, style = choice.model.net, choice.style_arg()
        dtype = resolve_precision("auto", dev)
        precision = str(dtype).removeprefix("torch.")
        label = f"stylize, auto = {precision}, channels_last"
        labels.append(f"{dev.type}: auto = {precision}")
        for width, height in sizes:
            x = photo(width, height)

            def eager() -> torch.Tensor:
                with torch.no_grad():
                    return net(x.to(dev), style).float().cpu()

            def fast() -> torch.Tensor:
                return stylize_tensor(choice, x, style_scale=None, precision="auto")

            reference, result = eager(), fast()  # also the warm-up
            eager_ms, fast_ms = interleaved_medians_ms([eager, fast], dev, repeats, warmup=0)
            eager_peak, fast_peak = peak_memory_bytes(eager, dev), peak_memory_bytes(fast, dev)
            size = f"{width}x{height}"
            rows.append([dev.type, size, "eager float32 NCHW", f"{eager_ms:.1f}", f"{1e3 / eager_ms:.2f}",
                         format_bytes(eager_peak), "1.00x", "reference"])
            rows.append([dev.type, size, label, f"{fast_ms:.1f}", f"{1e3 / fast_ms:.2f}", format_bytes(fast_peak),
                         f"{eager_ms / fast_ms:.2f}x", f"{psnr_db(result, reference.clamp(0, 1)):.1f}"])
    return write_report(
        output, "Stylizing: plain forward vs the stylize path",
        ["device", "size", "path", "ms per image", "images/s", "peak memory", "speed-up vs eager", "PSNR vs eager (dB)"],
        rows, devices=devices, echo=echo,
        notes=[f"Shipped weights (weights/styles.safetensors, style {choice.label}) on {PHOTO} fitted to each size. "
               f"Precision picked by auto: {', '.join(labels)}; below float32 the layers {', '.join(FLOAT32_LAYERS)} "
               "stay float32 (see stylenorm/style/stylize.py). Median of interleaved repeats after one warm-up run. "
               "Peak memory: what one image adds on top of what was in use (CPU: the process's peak RSS, VmHWM; "
               "CUDA: torch's allocator peak). PSNR: both outputs rounded to 8 bits, the stylize path against eager."],
    )
