"""A compact DDPM / improved-diffusion U-Net whose every norm comes from `make_norm`.

Residual blocks are `norm → SiLU → conv → FiLM(time) → SiLU → dropout → conv` plus
a skip; FiLM holds the block's second norm and applies the time (and class)
embedding as a per-channel scale and shift right after it. Self-attention runs at
the feature-map sizes listed in `attention_resolutions`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylenorm.errors import StylenormError
from stylenorm.norms import FiLM, make_norm, parse_spec


@dataclass
class UNetConfig:
    """Everything needed to rebuild a U-Net; stored in model cards."""

    image_size: int = 28
    in_channels: int = 1
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (7,)  # feature-map sizes that get self-attention
    num_heads: int = 4
    dropout: float = 0.1
    norm: str = "gn"
    num_classes: int = 0  # 0 = unconditional; otherwise labels 0..num_classes-1 plus a null label
    fused_norm: bool = True  # GroupNorm -> FiLM -> SiLU as one fused op (same result, fewer passes)

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attention_resolutions = tuple(int(r) for r in self.attention_resolutions)
        parse_spec(self.norm)  # fail early with the list of valid specs
        if self.image_size < 2 or self.in_channels < 1 or self.base_channels < 1:
            raise StylenormError(
                f"U-Net sizes must be positive (image_size={self.image_size}, in_channels="
                f"{self.in_channels}, base_channels={self.base_channels}); fix the model options"
            )
        if not self.channel_mults or any(m < 1 for m in self.channel_mults):
            raise StylenormError(f"channel_mults {self.channel_mults} must be positive integers, e.g. 1,2,2")
        if self.num_res_blocks < 1:
            raise StylenormError("num_res_blocks must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["channel_mults"] = list(self.channel_mults)
        data["attention_resolutions"] = list(self.attention_resolutions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UNetConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def feature_sizes(self) -> list[int]:
        """Spatial size at each resolution level (strided conv k3 s2 p1 halves, rounding up)."""
        sizes = [self.image_size]
        for _ in self.channel_mults[1:]:
            sizes.append((sizes[-1] + 1) // 2)
        return sizes


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) time steps, shape (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, norm: str, dropout: float, fused: bool = True) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.film = FiLM(norm, out_ch, emb_dim, act="silu", fused=fused)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # Zero-init the last conv so each block starts as its skip path (improved-diffusion).
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(self.film(h, emb)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, channels: int, num_heads: int, norm: str) -> None:
        super().__init__()
        heads = max(h for h in range(1, num_heads + 1) if channels % h == 0)
        self.num_heads = heads
        self.norm = make_norm(norm, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (N, heads, HW, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # Upsample to the skip's exact size so odd sizes (7 → 14, 7 ← 4) line up.
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class Level(nn.Module):
    """The blocks of one resolution on one side of the U (resblock, optional attention)."""

    def __init__(self, block: ResBlock, attention: Attention | None) -> None:
        super().__init__()
        self.block = block
        self.attn = attention if attention is not None else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.block(x, emb))


class UNet(nn.Module):
    """eps/v-prediction U-Net: forward(x (N,C,H,W), t (N,), labels (N,) or None)."""

    def __init__(self, config: UNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = config or UNetConfig(**overrides)
        self.config = cfg
        ch = cfg.base_channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # Index num_classes is the null label used for classifier-free guidance.
        self.label_emb = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes > 0 else None
        self.input_conv = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        sizes = cfg.feature_sizes()
        self.down = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skip_channels = [ch]
        current = ch
        for level, mult in enumerate(cfg.channel_mults):
            out = ch * mult
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                attn = Attention(out, cfg.num_heads, cfg.norm) if sizes[level] in cfg.attention_resolutions else None
                blocks.append(Level(ResBlock(current, out, emb_dim, cfg.norm, cfg.dropout, cfg.fused_norm), attn))
                current = out
                skip_channels.append(current)
            self.down.append(blocks)
            if level < len(cfg.channel_mults) - 1:
                self.downsamplers.append(Downsample(current))
                skip_channels.append(current)

        self.mid_block1 = ResBlock(current, current, emb_dim, cfg.norm, cfg.dropout, cfg.fused_norm)
        self.mid_attn = Attention(current, cfg.num_heads, cfg.norm)
        self.mid_block2 = ResBlock(current, current, emb_dim, cfg.norm, cfg.dropout, cfg.fused_norm)

        self.up = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mults))):
            out = ch * cfg.channel_mults[level]
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                attn = Attention(out, cfg.num_heads, cfg.norm) if sizes[level] in cfg.attention_resolutions else None
                blocks.append(Level(ResBlock(current + skip_channels.pop(), out, emb_dim, cfg.norm, cfg.dropout, cfg.fused_norm), attn))
                current = out
            self.up.append(blocks)
            if level > 0:
                self.upsamplers.append(Upsample(current))

        self.out_norm = make_norm(cfg.norm, current)
        self.out_conv = nn.Conv2d(current, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        if self.label_emb is not None:
            if labels is None:
                labels = torch.full((t.shape[0],), self.config.num_classes, device=t.device, dtype=torch.long)
            emb = emb + self.label_emb(labels)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.in_channels or tuple(x.shape[-2:]) != (cfg.image_size, cfg.image_size):
            raise StylenormError(
                f"this U-Net takes images shaped (N, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), "
                f"got {tuple(x.shape)}; resize the data to {cfg.image_size}px or use a model built for this size"
            )
        emb = self.embed(t, labels)
        h = self.input_conv(x)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h)
                skips.append(h)
        h = self.mid_block2(self.mid_attn(self.mid_block1(h, emb)), emb)
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsamplers):
                h = self.upsamplers[i](h, skips[-1].shape[-2:])
        return self.out_conv(F.silu(self.out_norm(h)))
