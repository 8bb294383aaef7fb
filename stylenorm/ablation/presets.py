"""Grid presets: how big each run of an ablation is.

Every run of a grid sees the same number of training images, so a smaller batch
takes more optimizer steps (the protocol of the GroupNorm paper's Figure 1). For the
Adam-trained tasks (diffusion, style) the learning rate grows with the square root of
the batch size (`lr * sqrt(batch / 8)`), the usual rule for Adam, so that large batches
are not starved of updates; the SGD-trained classification task scales it linearly, as
the paper does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from stylenorm.diffusion.defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS
from stylenorm.errors import StylenormError
from stylenorm.norm_specs import DEFAULT_SPECS

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
    # The generated set is drawn as `stylenorm diffusion sample` draws by default, so that the Fréchet
    # distance is the product's quality: with 10 DDIM steps and no guidance the shipped model itself
    # scores 248, above the 200 that counts as digits (its default sampler: 112).
    sampler: str = DEFAULT_SAMPLER
    sample_steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE[DEFAULT_SAMPLER]


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


@dataclass(frozen=True)
class ClassificationPreset:
    """The GroupNorm paper's protocol: the same epochs at every batch size, lr linear in the batch."""

    images: int  # training images (the rest of the MNIST subset is the test split)
    test_images: int
    width: int  # channels of the first stage; the others have 2x and 4x
    epochs: int
    lr: float  # at reference_batch; lr = lr * batch / reference_batch
    reference_batch: int
    warmup_epochs: float
    weight_decay: float


Preset = DiffusionPreset | StylePreset | ClassificationPreset

SMALL_DIFFUSION = DiffusionPreset(images=1024, base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=1, lr=2e-3,
                                  holdout=256, eval_timesteps=4, fid_samples=256)

SMALL_STYLE = StylePreset(images=256, image_size=48, style_size=96, lr=2e-3, style_weight=0.15, tv_weight=0.3,
                          holdout=100, eval_photos=16, mixed_precision="bf16")

PRESETS: dict[str, dict[str, Preset]] = {
    "diffusion": {
        "small": SMALL_DIFFUSION,
        # The smallest budget at which the small U-Net draws digits (gn8, batch 32, its default sampler:
        # Fréchet 864 after 16384 images, 283 after 32768, 139 after 65536, against 200 for digits;
        # docs/ablation/diffusion/budget_probe.log). Hours per grid on a 2-core CPU.
        "converged": replace(SMALL_DIFFUSION, images=65536),
        "full": DiffusionPreset(images=64 * 2000, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=2, lr=1e-3,
                                holdout=1000, eval_timesteps=20, fid_samples=1000),
    },
    "style": {
        "small": SMALL_STYLE,
        # The small network and painting with 32x the images: a 20-run grid in about 70 minutes on this CPU.
        # Not converged by the reports' gate: at batch 2 and 8 the training loss still falls by 4-11 % per
        # last quarter, about as much after 8192 images as after 4096 (a power-law-like curve), and batch 32
        # by 23 % (docs/ablation/style/budget_probe.log, docs/ablation/style_long/report.md).
        "long": replace(SMALL_STYLE, images=8192),
        "full": StylePreset(images=16000, image_size=256, style_size=320, lr=1e-3, style_weight=0.15, tv_weight=0.3,
                            holdout=100, eval_photos=64, mixed_precision="bf16"),
    },
    "classification": {
        # 8 epochs: after 5, gn4 (the slowest to learn) was still falling at batch 32 (5.2 %, one seed);
        # docs/ablation/classification/test_error_curves.png shows every norm flat by the last epochs.
        "small": ClassificationPreset(images=4000, test_images=1000, width=16, epochs=8, lr=0.1, reference_batch=32,
                                      warmup_epochs=0.5, weight_decay=5e-4),
        "full": ClassificationPreset(images=4000, test_images=1000, width=64, epochs=30, lr=0.1, reference_batch=32,
                                     warmup_epochs=1.0, weight_decay=5e-4),
    },
}

DEFAULT_NORMS = DEFAULT_SPECS
DEFAULT_BATCH_SIZES = (2, 8, 32)
DEFAULT_SEEDS = (0, 1)


@dataclass(frozen=True)
class GridDefaults:
    norms: tuple[str, ...] = DEFAULT_NORMS
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    seeds: tuple[int, ...] = DEFAULT_SEEDS


GRID_DEFAULTS = {
    "diffusion": GridDefaults(),
    "style": GridDefaults(),
    # Figure 1's batch sizes and three seeds. The widths are 16/32/64, where plain `gn` would be
    # InstanceNorm in the first stage; gn4 (4 groups) is the GroupNorm, gn2 and gn8 the other G.
    "classification": GridDefaults(norms=("bn", "ln", "in", "gn4", "gn2", "gn8", "rms", "none"),
                                   batch_sizes=(2, 4, 8, 16, 32), seeds=(0, 1, 2)),
}


def get_preset(task: str, name: str) -> Preset:
    if task not in PRESETS:
        raise StylenormError(f"unknown ablation task {task!r}; use {', '.join(PRESETS)}")
    if name not in PRESETS[task]:
        raise StylenormError(f"unknown preset {name!r}; use {' or '.join(PRESETS[task])}")
    return PRESETS[task][name]


def preset_dict(preset: Preset) -> dict:
    data = asdict(preset)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def steps_for(preset: Preset, batch_size: int) -> int:
    epochs = getattr(preset, "epochs", 1)  # the other tasks' budgets are one pass over `images`
    return max(1, epochs * (preset.images // batch_size))


def lr_for(preset: Preset, batch_size: int) -> float:
    if isinstance(preset, ClassificationPreset):  # SGD: the GroupNorm paper's linear scaling rule
        return preset.lr * batch_size / preset.reference_batch
    return preset.lr * math.sqrt(batch_size / REFERENCE_BATCH)
