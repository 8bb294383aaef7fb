"""The diffusion training task: what `stylenorm.training.fit` needs to train the U-Net (DDPM).

Scores are the EMA model's (what sampling uses): a held-out denoising loss with fixed
t and noise, and sample grids drawn with DDIM. The task's pieces (the batches, the
warm-up, the held-out loss, the fields a resume must keep, the card) live here, so
that train.py, the command, builds on this module and not the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stylenorm.diffusion.config import DiffusionTrainConfig
from stylenorm.diffusion.data import ImageData, load_images, split_holdout
from stylenorm.diffusion.sample import LoadedModel, generate, save_grid
from stylenorm.diffusion.schedule import Diffusion
from stylenorm.diffusion.unet import UNet
from stylenorm.errors import StylenormError
from stylenorm.images import skipped_record
from stylenorm.norms import group_counts
from stylenorm.training import TrainingTask

GRID_SAMPLES = 64

# Options that define the model and the process; a resumed run must keep them.
ARCHITECTURE_FIELDS = (
    "data", "image_size", "channels", "base_channels", "channel_mults", "num_res_blocks",
    "attention_resolutions", "num_heads", "norm", "class_conditional", "schedule", "diffusion_steps",
    "prediction", "min_snr_gamma", "seed", "batch_size", "grad_accum", "holdout", "holdout_seed",
)


def holdout_seed(config: DiffusionTrainConfig) -> int:
    return config.seed if config.holdout_seed is None else config.holdout_seed


def card_facts(config: DiffusionTrainConfig, model: UNet, data: ImageData, history: list[dict[str, float]]) -> dict[str, Any]:
    """What a diffusion model's card says besides the loop's training facts."""
    train_losses = [h["loss"] for h in history if "loss" in h]
    heldout = [h for h in history if "heldout_loss" in h]
    unet = model.config.to_dict()
    return {
        "architecture": "UNet",
        "model_config": unet,
        "norm": config.norm,
        "data": {"source": data.source, "train_images": int(len(data.images)), "image_size": config.image_size,
                 "channels": config.channels, "num_classes": data.num_classes,
                 **({"skipped_images": skipped_record(list(data.skipped))} if data.skipped else {})},
        "training": {"batch_size": config.batch_size, "cond_drop_prob": config.cond_drop_prob, "config": config.to_dict()},
        "unet": unet,  # what sample.load_diffusion_model reads (shipped cards have only this)
        "weights": "EMA",
        "diffusion": {"schedule": config.schedule, "num_steps": config.diffusion_steps,
                      "prediction": config.prediction, "min_snr_gamma": config.min_snr_gamma},
        "losses": {
            "train_loss_last_100_steps": sum(train_losses[-100:]) / max(1, len(train_losses[-100:])),
            "heldout": [{"step": h["step"], "loss": h["heldout_loss"]} for h in heldout],
        },
        "group_counts": group_counts(model),
        # One channel per group is InstanceNorm: it erases each channel's spatial mean, which
        # the network needs to pass an image's overall brightness through to its output.
        "channels_per_group": {name: m.num_channels // m.num_groups for name, m in model.named_modules()
                               if isinstance(m, torch.nn.GroupNorm)},
        "parameters": sum(p.numel() for p in model.parameters()),
    }


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, diffusion: Diffusion, held: ImageData, batch_size: int,
                 device: torch.device) -> float:
    """Loss on the held-out images with fixed t and noise, so evaluations are comparable."""
    generator = torch.Generator().manual_seed(1234)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(held.images), batch_size):
        x0 = held.images[start:start + batch_size]
        t = torch.randint(0, diffusion.num_steps, (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        labels = held.labels[start:start + batch_size].to(device) if held.labels is not None else None
        x0, t, noise = x0.to(device), t.to(device), noise.to(device)
        out = model(diffusion.q_sample(x0, t, noise), t, labels if model.config.num_classes else None)
        total += diffusion.loss(out, x0, t, noise).item() * len(x0)
        count += len(x0)
    model.train(was_training)
    return total / count


def lr_warmup(warmup: int):
    return lambda step: min(1.0, (step + 1) / max(1, warmup))


def training_batch(data: ImageData, idx: torch.Tensor, num_classes: int, drop_prob: float,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images `idx` and their labels, a share `drop_prob` of them replaced by the null label."""
    x0 = data.images[idx].to(device)
    if num_classes == 0 or data.labels is None:
        return x0, None
    labels = data.labels[idx].clone()
    drop = torch.rand(len(labels)) < drop_prob
    labels[drop] = num_classes
    return x0, labels.to(device)


class DiffusionTask(TrainingTask):
    kind = "diffusion"
    preview_folder = "samples"

    def __init__(self, config: DiffusionTrainConfig) -> None:
        self.config = config

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def resume_facts(self, config: dict[str, Any]) -> dict[str, Any]:
        return {name: config[name] for name in ARCHITECTURE_FIELDS if name in config}

    def setup(self, device: torch.device, world: int) -> None:
        c = self.config
        self.device = device
        data = load_images(c.data, c.image_size, c.channels, Path(c.data_cache) if c.data_cache else None)
        self.train_data, self.held = split_holdout(data, c.holdout, holdout_seed(c))
        self.num_classes = data.num_classes if (c.class_conditional and data.labels is not None) else 0
        self.diffusion = c.diffusion()
        self.grid_labels = torch.arange(GRID_SAMPLES) % self.num_classes if self.num_classes else None

    @property
    def num_items(self) -> int:
        return len(self.train_data.images)

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    def build_model(self, resuming: bool) -> UNet:
        return UNet(self.config.unet_config(self.num_classes))

    def make_optimizer(self, model, lr):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=self.config.weight_decay)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_warmup(self.config.warmup_steps))

    def training_step(self, model, indices, micro_step):
        x0, labels = training_batch(self.train_data, indices, self.num_classes, self.config.cond_drop_prob, self.device)
        t = torch.randint(0, self.diffusion.num_steps, (len(x0),)).to(self.device)
        noise = torch.randn(x0.shape).to(self.device)
        try:
            output = model(self.diffusion.q_sample(x0, t, noise), t, labels)
        except ValueError as exc:  # e.g. BatchNorm with one value per channel
            raise StylenormError(str(exc)) from None
        return {"loss": self.diffusion.loss(output, x0, t, noise)}

    def evaluate(self, model, step):
        if self.held is None:
            return {}
        return {"heldout_loss": heldout_loss(model, self.diffusion, self.held, self.config.batch_size, self.device)}

    def write_preview(self, model, path):
        c = self.config
        images = generate(LoadedModel(model, self.diffusion, {}), GRID_SAMPLES, "ddim", min(c.sample_steps, c.diffusion_steps),
                          self.grid_labels, c.sample_guidance, seed=c.seed)
        save_grid(images, path, nrow=8, scale=2)

    def card(self, model, step, history, smoothed):
        return card_facts(self.config, model, self.train_data, history)
