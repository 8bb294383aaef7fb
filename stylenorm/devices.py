"""The one check of a --device option (a CPU, or a CUDA GPU that torch can see) and of --threads."""

from __future__ import annotations

import torch

from stylenorm.errors import StylenormError


def check_device(name: str) -> torch.device:
    """torch.device(name), or one error naming what is possible."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise StylenormError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise StylenormError(f"device {name!r} is not supported; use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StylenormError(f"--device {name} asked for a GPU but torch sees none; use --device cpu")
    return device


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads for a --threads option; None keeps torch's default."""
    if threads is None:
        return
    if threads < 1:
        raise StylenormError(f"--threads {threads} is below 1; pass a number of CPU threads, e.g. 1 or 2")
    torch.set_num_threads(threads)


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 (AMX CPUs have it too); without it oneDNN emulates bf16, slower than float32."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private, hence the fallback
    return bool(check is not None and check())
