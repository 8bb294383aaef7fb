"""TransformerNet: the image transformation network of Johnson et al. 2016.

Layout as in the common public implementations (pytorch/examples fast_neural_style):
9x9 conv 32, two stride-2 3x3 convs (64, 128), five residual blocks at 128, two
nearest-upsample + 3x3 conv stages (64, 32), 9x9 conv to RGB. Reflection padding
everywhere, so borders see mirrored content instead of black.

Normalization comes from the backend by spec (`in` by default). With
`num_styles > 1` every norm layer is a `ConditionalNorm` (conditional instance
normalization, Dumoulin et al. 2017): the convolutions are shared and each style
owns only its per-channel gamma/beta, so styles can be switched or blended.

Images are float RGB in [0, 1], shaped (N, 3, H, W); any H, W works (the input is
reflect-padded to a multiple of 4 and the output cropped back).
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from stylenorm.norms import ConditionalNorm, make_norm

StyleArg = Union[None, int, Sequence[float], torch.Tensor]

# The last conv sums ~2600 inputs; Adam moves each weight by about lr per step, so
# an unscaled [0, 1] output jumps by O(1) after the first step, the loss explodes
# and Adam's second moments then stall training (measured: weights moved ~1e-3 in
# 100 steps). pytorch/examples' 0-255 output amounts to a scale of 1/255, which is
# stable but needs thousands of steps to reach the image's brightness. 1/32 around
# mid-grey is stable and reaches clear pictures within ~50 steps on CPU.
OUTPUT_SCALE = 1.0 / 32
OUTPUT_OFFSET = 0.5


class ConvLayer(nn.Module):
    """Reflection pad + conv: the padding keeps the output size and avoids dark borders."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class UpsampleConv(nn.Module):
    """Nearest-neighbour upsampling then a conv: no transposed conv, so no checkerboard."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.conv = ConvLayer(in_ch, out_ch, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class Norm(nn.Module):
    """A norm layer that is plain (one style) or conditional (several), behind one call."""

    def __init__(self, spec: str, channels: int, num_styles: int) -> None:
        super().__init__()
        self.conditional = num_styles > 1
        if self.conditional:
            self.layer = ConditionalNorm(spec, channels, num_styles)
        else:
            self.layer = make_norm(spec, channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        return self.layer(x, style) if self.conditional else self.layer(x)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str, num_styles: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.norm1 = Norm(norm, channels, num_styles)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm2 = Norm(norm, channels, num_styles)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x), style))
        return x + self.norm2(self.conv2(y), style)


class TransformerNet(nn.Module):
    """Johnson et al.'s feed-forward stylization network, single- or multi-style."""

    def __init__(self, norm: str = "in", num_styles: int = 1) -> None:
        super().__init__()
        if num_styles < 1:
            raise ValueError(f"TransformerNet needs at least one style, got {num_styles}")
        self.norm_spec = norm
        self.num_styles = num_styles
        self.conv1 = ConvLayer(3, 32, 9)
        self.norm1 = Norm(norm, 32, num_styles)
        self.conv2 = ConvLayer(32, 64, 3, stride=2)
        self.norm2 = Norm(norm, 64, num_styles)
        self.conv3 = ConvLayer(64, 128, 3, stride=2)
        self.norm3 = Norm(norm, 128, num_styles)
        self.res = nn.ModuleList(ResidualBlock(128, norm, num_styles) for _ in range(5))
        self.up1 = UpsampleConv(128, 64, 3)
        self.norm4 = Norm(norm, 64, num_styles)
        self.up2 = UpsampleConv(64, 32, 3)
        self.norm5 = Norm(norm, 32, num_styles)
        self.conv_out = ConvLayer(32, 3, 9)

    def style_tensor(self, style: StyleArg, batch: int, device: torch.device) -> torch.Tensor | None:
        """Turn a style argument into what ConditionalNorm takes.

        None (single-style nets only), an int index, a LongTensor (N,) of indices,
        or mixing weights: a sequence/1-D float tensor of num_styles weights shared by
        the batch, or a float tensor (N, num_styles).
        """
        if self.num_styles == 1:
            return None
        if style is None:
            raise ValueError(f"this network holds {self.num_styles} styles; pass a style index or blend weights")
        if isinstance(style, int):
            if not 0 <= style < self.num_styles:
                raise ValueError(f"style index {style} out of range 0..{self.num_styles - 1}")
            return torch.full((batch,), style, dtype=torch.long, device=device)
        if not isinstance(style, torch.Tensor):
            style = torch.tensor(list(style), dtype=torch.float32)
        style = style.to(device)
        if style.dtype.is_floating_point:
            if style.dim() == 1:
                style = style.unsqueeze(0).expand(batch, -1)
            if style.shape != (batch, self.num_styles):
                raise ValueError(f"blend weights must be shaped ({batch}, {self.num_styles}), got {tuple(style.shape)}")
            return style
        if style.dim() == 0:
            style = style.expand(batch)
        return style.long()

    def to_rgb(self, features: torch.Tensor) -> torch.Tensor:
        """The last conv and the output mapping to [0, 1] (shared with the tiled forward)."""
        return OUTPUT_OFFSET + OUTPUT_SCALE * self.conv_out(features)

    def forward(self, x: torch.Tensor, style: StyleArg = None) -> torch.Tensor:
        s = self.style_tensor(style, x.shape[0], x.device)
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        if pad_h or pad_w:
            # Two stride-2 stages need sides divisible by 4 for the output to match the input.
            mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        return self.body(x, s)[..., :h, :w]

    def body(self, x: torch.Tensor, s) -> torch.Tensor:
        """The layers, on an input whose sides are multiples of 4 (the ONNX export pads in its graph)."""
        y = F.relu(self.norm1(self.conv1(x), s))
        y = F.relu(self.norm2(self.conv2(y), s))
        y = F.relu(self.norm3(self.conv3(y), s))
        for block in self.res:
            y = block(y, s)
        y = F.relu(self.norm4(self.up1(y), s))
        y = F.relu(self.norm5(self.up2(y), s))
        return self.to_rgb(y)


def net_config(model: TransformerNet) -> dict:
    """What a model card needs to rebuild the architecture."""
    return {"architecture": "TransformerNet", "norm": model.norm_spec, "num_styles": model.num_styles}
