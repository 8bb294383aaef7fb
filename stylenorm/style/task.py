"""The style training task: what `stylenorm.training.fit` needs to train a TransformerNet.

Every global batch holds the same number of photos of every style (position p trains
style p % num_styles), so every step trains every style's gamma/beta and the shared
convolutions. Crops are seeded by (seed, micro-step, position), so a resume sees the
crops an uninterrupted run would have seen.

The task's own pieces live here too: the preview grid, the add-style network (old styles
frozen) and the model card's facts. The photos and paintings come from style/data.py.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylenorm.checkpoints import load_into, load_model
from stylenorm.errors import StylenormError
from stylenorm.images import save_image, skipped_record, to_tensor, to_uint8
from stylenorm.norms import ConditionalNorm
from stylenorm.style.config import StyleTrainConfig
from stylenorm.style.data import ContentPhotos, load_rgb, load_style_image, resize_longest, style_name
from stylenorm.style.loss import LossWeights, PerceptualLoss, load_vgg, loss_recipe
from stylenorm.style.net import TransformerNet, net_config
from stylenorm.training import TrainingTask


def _digest(path: str) -> str | None:
    """A short fingerprint of a painting file (None where it cannot be read: that error comes later)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return None


def preview_grid(model: TransformerNet, photos: list[torch.Tensor], styles: list[int | None], device: torch.device) -> np.ndarray:
    """A grid: one row per photo, the photo then each of `styles` (network indices; None for a one-style net)."""
    rows = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for photo in photos:
            x = photo.to(device)
            cells = [photo]
            for s in styles:
                cells.append(model(x, s).float().clamp(0, 1).cpu())
            rows.append(torch.cat(cells, dim=-1))
    model.train(was_training)
    return to_uint8(torch.cat(rows, dim=-2))


def extended_network(base_path: str | os.PathLike, new_styles: int, init: bool = True) -> tuple[TransformerNet, dict[str, Any]]:
    """The conditional-IN network of `base_path` with `new_styles` more styles, where only the new
    styles' gamma/beta rows can change: every other parameter is frozen and a gradient hook zeroes
    the existing styles' rows (Adam then leaves them exactly as they were). The new rows start at
    the mean of the existing styles' (a generic painting's statistics rather than none)."""
    tensors, card = load_model(base_path)
    if card.get("kind", "style") != "style" or card.get("architecture", "TransformerNet") != "TransformerNet":
        raise StylenormError(f"{base_path} is not a style network; add a style to a network made by train-style")
    old = int(card.get("num_styles", 1))
    if old < 2:
        raise StylenormError(f"{base_path} holds one style, without per-style gamma/beta to extend; "
                             "pass a multi-style network (e.g. the shipped weights/styles.safetensors)")
    model = TransformerNet(card.get("norm", "in"), old + new_styles)
    own = model.state_dict()
    if init:
        merged = {}
        for key, value in own.items():
            base = tensors.get(key)
            if base is None or (base.shape != value.shape and base.shape[1:] != value.shape[1:]):
                raise StylenormError(f"{base_path} does not match the TransformerNet layout at {key}; pass a network made by train-style")
            if base.shape != value.shape:  # a gamma/beta table: the old rows, then the new ones
                base = torch.cat([base, base.float().mean(0, keepdim=True).expand(new_styles, -1).to(base.dtype)])
            merged[key] = base.to(value.dtype)
        model.load_state_dict(merged)
    model.requires_grad_(False)
    mask = torch.cat([torch.zeros(old), torch.ones(new_styles)]).view(-1, 1)
    for module in model.modules():
        if isinstance(module, ConditionalNorm):
            for param in (module.weight, module.bias):
                param.requires_grad_(True)
                param.register_hook(lambda grad: grad * mask.to(grad.device, grad.dtype))
    return model, card


def card_facts(cfg: StyleTrainConfig, model: TransformerNet, *, step: int, num_photos: int, vgg_source: str,
               losses: dict[str, float], world: int, base: dict[str, Any] | None = None,
               skipped: list[Path] = ()) -> dict[str, Any]:
    """What a style network's card says besides the loop's training facts (`base`: the card of
    the network that add-style extended; its styles come first and keep their names)."""
    model_config = net_config(model)
    facts = {
        "architecture": model_config.pop("architecture"),
        "model_config": model_config,
        "norm": model_config["norm"],
        "data": (f"{num_photos} photos from {Path(cfg.data).name}/" + (f" ({cfg.holdout} more held out)" if cfg.holdout else ""))
        if cfg.data else None,
        "num_styles": model_config["num_styles"],
        # a one-style network is its style, named as the user named it (--name); several are the paintings'
        "styles": [cfg.name] if len(cfg.styles) == 1 else [style_name(s) for s in cfg.styles],
        "default_style": cfg.name if len(cfg.styles) == 1 else style_name(cfg.styles[0]),
        "style_images": [Path(s).name for s in cfg.styles],
        "loss_network": vgg_source,
        "steps": step,
        "images_per_style": step * cfg.grad_accum * cfg.batch_size * world,
        "image_size": cfg.image_size,
        "style_size": cfg.style_size,
        **({"photo_size": cfg.photo_size} if cfg.photo_size else {}),
        "batch_size_per_style": cfg.batch_size * world * cfg.grad_accum,
        "loss": cfg.loss,
        "loss_weights": {"content": cfg.content_weight, "style": cfg.style_weight, "tv": cfg.tv_weight,
                         **({"layout": cfg.layout_weight} if cfg.layout_weight else {})},
        "content_layer": cfg.content_layer,
        "style_layers": list(cfg.style_layers),
        "style_scales": list(cfg.style_scales),
        **({"skipped_images": skipped_record(skipped)} if skipped else {}),
        **({"init_weights": Path(cfg.init_weights).name} if cfg.init_weights else {}),
        "final_losses": dict(losses),  # smoothed: content, style, tv, total (and layout where weighted)
        **({"notes": cfg.notes} if cfg.notes else {}),
    }
    if base is not None:
        new = [cfg.name] if len(cfg.styles) == 1 else [style_name(s) for s in cfg.styles]
        facts.update({
            "styles": list(base.get("styles", [])) + new,
            "default_style": new[0],
            "style_images": list(base.get("style_images", [])) + [Path(s).name for s in cfg.styles],
            "added_styles": new,
            "add_to": Path(cfg.add_to).name if cfg.add_to else None,
            "trained": "only the added styles' gamma/beta; every other weight is the base network's",
        })
    return facts


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
        recipe = loss_recipe(cfg.loss)  # its Gram flags; layers and weights may be overridden in cfg
        self.loss_fn = PerceptualLoss(
            vgg, [load_style_image(s, cfg.style_size) for s in cfg.styles], cfg.style_layers, cfg.content_layer,
            LossWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight, cfg.layout_weight), cfg.style_scales,
            recipe.relative_gram, recipe.normalized_features,
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
        content = self.photos.batch(indices, self.cfg.image_size, self.cfg.seed, micro_step, self.cfg.photo_size).to(self.device)
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
