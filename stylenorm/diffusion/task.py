"""The diffusion training task: what `stylenorm.training.fit` needs to train the U-Net (DDPM).

Scores are the EMA model's (what sampling uses): a held-out denoising loss with fixed
t and noise, and sample grids drawn with DDIM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stylenorm.diffusion.data import load_images, split_holdout
from stylenorm.diffusion.sample import LoadedModel, generate, save_grid
from stylenorm.diffusion.train import (
    ARCHITECTURE_FIELDS, DiffusionTrainConfig, card_facts, heldout_loss, holdout_seed, lr_warmup, training_batch,
)
from stylenorm.diffusion.unet import UNet
from stylenorm.errors import StylenormError
from stylenorm.training import TrainingTask

GRID_SAMPLES = 64


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
