"""Tiny models and configs for the diffusion tests (a unique name: tests/style has its own helpers)."""

from __future__ import annotations

from pathlib import Path

from stylenorm.diffusion.config import DiffusionTrainConfig
from stylenorm.diffusion.unet import UNet, UNetConfig


def tiny_unet(**overrides) -> UNet:
    options = dict(image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                   attention_resolutions=(4,), num_heads=2, dropout=0.0, num_classes=10)
    options.update(overrides)
    return UNet(UNetConfig(**options))


def tiny_train_config(run_dir: Path, **overrides) -> DiffusionTrainConfig:
    options = dict(data="mnist5k", image_size=8, holdout=32, base_channels=8, channel_mults=(1, 2),
                   num_res_blocks=1, attention_resolutions=(4,), num_heads=2, steps=4, batch_size=8,
                   lr=1e-3, warmup_steps=1, eval_every=2, preview_every=4, checkpoint_every=2,
                   sample_steps=2, diffusion_steps=50, cpu=True, run_dir=str(run_dir))
    options.update(overrides)
    return DiffusionTrainConfig(**options)
