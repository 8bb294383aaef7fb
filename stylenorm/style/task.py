"""The style training task: what `stylenorm.training.fit` needs to train a TransformerNet.

Every global batch holds the same number of photos of every style (position p trains
style p % num_styles), so every step trains every style's gamma/beta and the shared
convolutions. Crops are seeded by (seed, micro-step, position), so a resume sees the
crops an uninterrupted run would have seen.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylenorm.checkpoints import load_into, load_model
from stylenorm.images import save_image, to_tensor
from stylenorm.style.loss import LossWeights, PerceptualLoss, load_vgg, loss_recipe
from stylenorm.style.net import TransformerNet
from stylenorm.style.train import (
    ContentPhotos, StyleTrainConfig, card_facts, extended_network, load_rgb, load_style_image, preview_grid,
    resize_longest, style_name,
)
from stylenorm.training import TrainingTask


def _digest(path: str) -> str | None:
    """A short fingerprint of a painting file (None where it cannot be read: that error comes later)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return None


class StyleTask(TrainingTask):
    kind = "style"
    objective = "total"

    def __init__(self, cfg: StyleTrainConfig) -> None:
        self.cfg = cfg.with_loss_defaults()
        self.base_card: dict[str, Any] | None = None  # the card of the network add-style extends
        # the paintings' contents, so a resume with another painting of the same file name is refused too
        # (read once: config_dict is written into every checkpoint)
        self.style_digests = [_digest(s) for s in cfg.styles]

    def config_dict(self) -> dict[str, Any]:
        values = {k: v for k, v in asdict(self.cfg).items() if isinstance(v, (int, float, str, bool, list, type(None)))}
        return {**values, "style_digests": self.style_digests}

    def resume_facts(self, config: dict[str, Any]) -> dict[str, Any]:
        styles = config.get("styles")
        add_to = config.get("add_to")
        return {"styles": [style_name(s) for s in styles] if styles is not None else None, "norm": config.get("norm"),
                "add_to": Path(add_to).name if add_to else None, "style_image_sha256": config.get("style_digests")}

    def setup(self, device: torch.device, world: int) -> None:
        cfg = self.cfg
        self.device, self.world = device, world
        self.photos = ContentPhotos(cfg.data, cfg.holdout)
        vgg, self.vgg_source = load_vgg(cfg.vgg_weights, cfg.vgg_format, sorted(set(cfg.style_layers) | {cfg.content_layer}))
        self.loss_fn = PerceptualLoss(
            vgg, [load_style_image(s, cfg.style_size) for s in cfg.styles], cfg.style_layers, cfg.content_layer,
            LossWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight, cfg.layout_weight), cfg.style_scales,
            loss_recipe(cfg.loss).relative_gram,
        ).to(device)
        self.preview_photos = [to_tensor(np.asarray(resize_longest(load_rgb(p), cfg.preview_size)))
                               for p in cfg.preview_images if Path(p).is_file()]

    @property
    def num_items(self) -> int:
        return len(self.photos)

    @property
    def batch_size(self) -> int:
        return self.cfg.batch_size * len(self.cfg.styles)

    def build_model(self, resuming: bool) -> TransformerNet:
        cfg = self.cfg
        if cfg.add_to:
            model, self.base_card = extended_network(cfg.add_to, len(cfg.styles), init=not resuming)
        else:
            model = TransformerNet(cfg.norm, len(cfg.styles))
        if cfg.init_weights and not resuming:
            init, _ = load_model(cfg.init_weights)
            load_into(model, init, cfg.init_weights)
        self.first_style = model.num_styles - len(cfg.styles)  # the network's index of cfg.styles[0]
        self.multi_style = model.num_styles > 1
        return model

    def make_optimizer(self, model: torch.nn.Module, lr: float):
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr), None

    def training_step(self, model, indices, micro_step):
        content = self.photos.batch(indices, self.cfg.image_size, self.cfg.seed, micro_step).to(self.device)
        # this process's share starts at a multiple of the batch, so local position j is style j % num_styles
        styles = (torch.arange(len(indices)) % len(self.cfg.styles)).to(self.device)
        out = model(content, styles + self.first_style if self.multi_style else None)
        return self.loss_fn(out, content, styles)

    def write_preview(self, model, path):
        if self.preview_photos:
            shown = list(range(self.first_style, self.first_style + len(self.cfg.styles))) if self.multi_style else [None]
            save_image(path, preview_grid(model, self.preview_photos, shown, self.device))

    def postfix(self, smoothed):
        shown = {"content": f"{smoothed.get('content', 0) * self.cfg.content_weight:.3g}",
                 "style": f"{smoothed.get('style', 0) * self.cfg.style_weight:.3g}"}
        if self.cfg.layout_weight:
            shown["layout"] = f"{smoothed.get('layout', 0) * self.cfg.layout_weight:.3g}"
        return shown

    def card(self, model, step, history, smoothed):
        return card_facts(self.cfg, model, step=step, num_photos=len(self.photos), vgg_source=self.vgg_source,
                          losses=smoothed, world=self.world, base=self.base_card, skipped=self.photos.skipped)
