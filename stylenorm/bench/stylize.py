"""`stylenorm bench stylize`: the plain float32 forward against the path `stylenorm stylize` takes.

Both rows stylize the same photo (a bundled demo photo fitted to each size) with
the shipped weights. "eager" is `net(x)` in float32 NCHW under no_grad; the
stylize row is `stylize_tensor(..., precision="auto")`, everything included
(preparing the network, layout changes, copies back to the CPU). PSNR compares
the two outputs as 8-bit images, the form a user gets.

With onnxruntime installed, a third row runs the same network exported by
`stylenorm export onnx` (float32, the style baked in) in onnxruntime: the CPU
execution provider, and the CUDA one on a GPU where onnxruntime has it, with
as many threads as torch uses.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from stylenorm.bench.common import format_bytes, interleaved_medians_ms, peak_memory_bytes, resolve_devices, write_report
from stylenorm.devices import set_threads
from stylenorm.errors import StylenormError
from stylenorm.export import run_onnx
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
    set_threads(threads)
    devices = resolve_devices(device)
    sizes = list(sizes or (QUICK_SIZES if quick else SIZES))
    repeats = 1 if quick else repeats
    rows, labels = [], []
    sessions = _onnx_sessions(resolve_style(None), devices)
    for dev in devices:
        choice = resolve_style(None, device=str(dev))
        session, memory_session = sessions.get(dev, (None, None))
        net, style = choice.model.net, choice.style_arg()
        dtype = resolve_precision("auto", dev)
        precision = str(dtype).removeprefix("torch.")
        label = f"stylize, auto = {precision}, channels_last"
        labels.append(f"{dev.type}: auto = {precision}")
        # minutes without output otherwise; the trainers' kind of bar, removed when done
        for width, height in tqdm(sizes, desc=f"bench stylize {dev.type}", unit="size", leave=False):
            x = photo(width, height)

            def eager() -> torch.Tensor:
                with torch.no_grad():
                    return net(x.to(dev), style).float().cpu()

            def fast() -> torch.Tensor:
                return stylize_tensor(choice, x, style_scale=None, precision="auto")

            def onnx() -> torch.Tensor:
                return run_onnx(session, x)

            reference, result = eager(), fast()  # also the warm-up
            paths = [eager, fast] + ([onnx] if session is not None else [])
            onnx_result = onnx() if session is not None else None
            timings = interleaved_medians_ms(paths, dev, repeats, warmup=0)
            eager_ms, fast_ms = timings[:2]
            eager_peak, fast_peak = peak_memory_bytes(eager, dev), peak_memory_bytes(fast, dev)
            size = f"{width}x{height}"
            rows.append([dev.type, size, "eager float32 NCHW", f"{eager_ms:.1f}", f"{1e3 / eager_ms:.2f}",
                         format_bytes(eager_peak), "1.00x", "reference"])
            rows.append([dev.type, size, label, f"{fast_ms:.1f}", f"{1e3 / fast_ms:.2f}", format_bytes(fast_peak),
                         f"{eager_ms / fast_ms:.2f}x", f"{psnr_db(result, reference.clamp(0, 1)):.1f}"])
            if session is not None:
                onnx_ms = timings[2]
                # on CUDA torch's allocator does not see onnxruntime's memory, so none is reported
                onnx_peak = None if memory_session is None else peak_memory_bytes(lambda: run_onnx(memory_session, x), dev)
                provider = session.get_providers()[0].removesuffix("ExecutionProvider")
                rows.append([dev.type, size, f"onnxruntime {provider}, float32", f"{onnx_ms:.1f}",
                             f"{1e3 / onnx_ms:.2f}", format_bytes(onnx_peak), f"{eager_ms / onnx_ms:.2f}x",
                             f"{psnr_db(onnx_result, reference.clamp(0, 1)):.1f}"])
    return write_report(
        output, "Stylizing: plain forward vs the stylize path",
        ["device", "size", "path", "ms per image", "images/s", "peak memory", "speed-up vs eager", "PSNR vs eager (dB)"],
        rows, devices=devices, echo=echo,
        notes=[f"Shipped weights (weights/styles.safetensors, style {choice.label}) on {PHOTO} fitted to each size. "
               f"Precision picked by auto: {', '.join(labels)}; below float32 the layers {', '.join(FLOAT32_LAYERS)} "
               "stay float32 (see stylenorm/style/stylize.py). Median of interleaved repeats after one warm-up run. "
               "Peak memory: what one image adds on top of what was in use (CPU: the process's peak RSS, VmHWM; "
               "CUDA: torch's allocator peak). PSNR: both outputs rounded to 8 bits, the stylize path against eager."]
        + ([f"onnxruntime {onnx_version()}: the model of `stylenorm export onnx` (float32), "
            f"{torch.get_num_threads()} CPU thread(s) as torch; its peak memory from a session without the "
            "memory arena (which keeps memory between runs), its CUDA memory not counted."] if sessions else [])
        + ([] if sessions else ["No onnxruntime row: install stylenorm[onnx] for it."]),
    )


def _onnx_sessions(choice, devices: Sequence[torch.device]) -> dict[torch.device, object]:
    """onnxruntime sessions of the exported default style per device: none without the extra,
    none for a GPU where onnxruntime has no CUDA provider."""
    try:
        import onnxruntime  # noqa: F401

        from stylenorm.export import require_onnx

        require_onnx()
    except (ImportError, StylenormError):
        return {}
    from stylenorm.export import export_onnx, onnx_session

    sessions = {}
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="stylenorm_bench_") as folder:  # a session holds its model in memory
        model = export_onnx(choice, Path(folder) / "styles.onnx")
        for dev in devices:
            try:
                timed = onnx_session(model, "cuda" if dev.type == "cuda" else "cpu", threads=threads)
            except StylenormError:
                continue
            # the timed session's arena keeps memory between runs, which would hide the peak
            measured = onnx_session(model, "cpu", threads=threads, arena=False) if dev.type == "cpu" else None
            sessions[dev] = (timed, measured)
    return sessions


def onnx_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
