"""Helpers for the style tests: a random VGG16-shaped loss network, small photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from stylenorm.style.loss import vgg16_trunk

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def make_tiny_vgg(path: Path, fmt: str | None = "caffe", seed: int = 0) -> Path:
    """A VGG16 trunk (conv1_1..conv5_3) with random weights, saved like the real file."""
    torch.manual_seed(seed)
    trunk = vgg16_trunk()
    for m in trunk:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            m.weight.data *= 0.5 if fmt == "caffe" else 1.0  # keep caffe-scale inputs in range
            torch.nn.init.zeros_(m.bias)
    metadata = {"format": fmt} if fmt else {}
    save_file({k: v.contiguous() for k, v in trunk.state_dict().items()}, str(path), metadata=metadata)
    return path


def smooth_photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random picture (low-frequency noise), uint8 RGB."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 4, 5, generator=g)
    big = torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    return (big.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def two_style_net():
    """A two-style conditional-IN TransformerNet whose per-style affine rows differ (seed 0)."""
    from stylenorm.style.net import TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(num_styles=2)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if ".layer." in n:
                p.add_(torch.randn_like(p) * 0.3)
    return net
