"""The one check of a --device option: a CPU, or a CUDA GPU that torch can see."""

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
