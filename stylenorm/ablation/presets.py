"""Grid presets: how big each run of an ablation is.

Every run of a grid sees the same number of training images, so a smaller batch
takes more optimizer steps (the protocol of the GroupNorm paper's Figure 1). The
learning rate grows with the square root of the batch size (`lr * sqrt(batch / 8)`),
the usual rule for Adam, so that large batches are not starved of updates.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from stylenorm.errors import StylenormError

REFERENCE_BATCH = 8


@dataclass(frozen=True)
class DiffusionPreset:
    images: int  # training images per run
    base_channels: int
    channel_mults: tuple[int, ...]
    num_res_blocks: int
    lr: float
    holdout: int  # held-out MNIST digits: denoising loss and the Fréchet reference
    eval_timesteps: int  # evenly spaced t at which the held-out loss is averaged
    fid_samples: int
    sample_steps: int  # DDIM steps for the generated set
    guidance: float


@dataclass(frozen=True)
class StylePreset:
    images: int
    image_size: int
    style_size: int
    lr: float
    style_weight: float
    tv_weight: float
    holdout: int  # content photos never trained on
    eval_photos: int  # of the held-out photos, how many are scored
    mixed_precision: str


PRESETS: dict[str, dict[str, DiffusionPreset | StylePreset]] = {
    "diffusion": {
        "small": DiffusionPreset(images=1024, base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=1, lr=2e-3,
                                 holdout=256, eval_timesteps=4, fid_samples=256, sample_steps=10, guidance=1.0),
        "full": DiffusionPreset(images=64 * 2000, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=2, lr=1e-3,
                                holdout=1000, eval_timesteps=20, fid_samples=1000, sample_steps=50, guidance=1.0),
    },
    "style": {
        "small": StylePreset(images=256, image_size=48, style_size=96, lr=2e-3, style_weight=0.15, tv_weight=0.3,
                             holdout=100, eval_photos=16, mixed_precision="bf16"),
        "full": StylePreset(images=16000, image_size=256, style_size=320, lr=1e-3, style_weight=0.15, tv_weight=0.3,
                            holdout=100, eval_photos=64, mixed_precision="bf16"),
    },
}

DEFAULT_NORMS = ("bn", "ln", "in", "gn", "gn8", "rms", "prms", "none")
DEFAULT_BATCH_SIZES = (2, 8, 32)
DEFAULT_SEEDS = (0, 1)


def get_preset(task: str, name: str) -> DiffusionPreset | StylePreset:
    if task not in PRESETS:
        raise StylenormError(f"unknown ablation task {task!r}; use diffusion or style")
    if name not in PRESETS[task]:
        raise StylenormError(f"unknown preset {name!r}; use {' or '.join(PRESETS[task])}")
    return PRESETS[task][name]


def preset_dict(preset: DiffusionPreset | StylePreset) -> dict:
    data = asdict(preset)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def steps_for(preset: DiffusionPreset | StylePreset, batch_size: int) -> int:
    return max(1, preset.images // batch_size)


def lr_for(preset: DiffusionPreset | StylePreset, batch_size: int) -> float:
    return preset.lr * math.sqrt(batch_size / REFERENCE_BATCH)
