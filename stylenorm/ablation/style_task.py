"""One style ablation run: train TransformerNet with one norm on one painting, then score it.

Scores: content and style loss of held-out photos (a fixed split of the content
folder that no run trains on) under the same VGG16 and loss weights as training.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from stylenorm.ablation.measure import loss_curve, megabytes, speed_from_history, training_memory_bytes
from stylenorm.ablation.presets import StylePreset, lr_for, steps_for
from stylenorm.checkpoints import latest_checkpoint, load_into, load_model, load_training_state
from stylenorm.images import save_image, to_uint8
from stylenorm.norms import norm_kind
from stylenorm.style.config import StyleTrainConfig
from stylenorm.style.data import ContentPhotos, center_crop, load_style_image
from stylenorm.style.loss import LossWeights, PerceptualLoss, load_vgg, loss_recipe
from stylenorm.style.net import TransformerNet
from stylenorm.style.train import train_style


@torch.no_grad()
def heldout_losses(net: TransformerNet, loss_fn: PerceptualLoss, photos: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Mean content and style loss (unweighted) of the stylized photos, in batches of `batch_size`."""
    sums = {"content": 0.0, "style": 0.0}
    for batch in photos.split(batch_size):
        out = loss_fn(net(batch), batch, torch.zeros(len(batch), dtype=torch.long, device=batch.device))
        for key in sums:
            sums[key] += out[key].item() * len(batch)
    return {key: value / len(photos) for key, value in sums.items()}


def run_style(preset: StylePreset, norm: str, batch_size: int, seed: int, run_dir: Path, *, style_image: str,
              data: str, vgg_weights: str | None, cpu: bool = False, threads: int | None = None) -> dict[str, Any]:
    steps = steps_for(preset, batch_size)
    cfg = StyleTrainConfig(
        styles=[style_image], data=data, holdout=preset.holdout, name=run_dir.name,
        output=str(run_dir / "train" / "model.safetensors"), run_dir=str(run_dir / "train"), norm=norm,
        image_size=preset.image_size, style_size=preset.style_size, batch_size=batch_size, steps=steps,
        # the loss the committed grids were measured with
        loss="relative", lr=lr_for(preset, batch_size), style_weight=preset.style_weight, tv_weight=preset.tv_weight,
        vgg_weights=vgg_weights, mixed_precision=preset.mixed_precision, seed=seed, checkpoint_every=steps,
        keep_checkpoints=1, preview_every=0, threads=threads, cpu=cpu, half=False,
    ).with_loss_defaults()
    weights = train_style(cfg, progress=False)
    _, _, state = load_training_state(latest_checkpoint(run_dir / "train"))
    history = state["history"]

    device = torch.device("cpu" if cpu or not torch.cuda.is_available() else "cuda")
    vgg, _ = load_vgg(vgg_weights, cfg.vgg_format, sorted(set(cfg.style_layers) | {cfg.content_layer}))
    style = load_style_image(style_image, cfg.style_size)
    weights_ = LossWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight)
    recipe = loss_recipe(cfg.loss)
    loss_fn = PerceptualLoss(vgg, [style], cfg.style_layers, cfg.content_layer, weights_,
                             relative_gram=recipe.relative_gram, normalized_features=recipe.normalized_features).to(device)
    net = TransformerNet(norm, 1)
    state_dict, _ = load_model(weights)
    load_into(net, state_dict, weights)
    net = net.to(device).eval()
    held = ContentPhotos(data, preset.holdout).held_out[:preset.eval_photos]
    photos = torch.stack([center_crop(p, preset.image_size) for p in held]).to(device)

    scores = heldout_losses(net, loss_fn, photos, 16)
    result: dict[str, Any] = {
        "steps": steps, "lr": cfg.lr, "images": steps * batch_size,
        "heldout_content": scores["content"], "heldout_style": scores["style"],
        "heldout_loss": cfg.content_weight * scores["content"] + cfg.style_weight * scores["style"],
    }
    if norm_kind(norm).batch_statistics:
        train_mode = heldout_losses(copy.deepcopy(net).train(), loss_fn, photos, batch_size)
        result["bn_train_mode_loss"] = cfg.content_weight * train_mode["content"] + cfg.style_weight * train_mode["style"]
        result["bn_eval_mode_loss"] = result["heldout_loss"]

    with torch.no_grad():
        stylized = net(photos[:4]).clamp(0, 1)
    strip = torch.cat(list(torch.cat([photos[:4], stylized], dim=2)), dim=2)  # photos above, results below
    save_image(run_dir / "stylized.png", to_uint8(strip.cpu()))

    result.update(speed_from_history(history, batch_size))
    result["memory_mb"] = megabytes(_probe_memory(cfg, loss_fn, photos, device))
    result["loss_curve"] = loss_curve(history, batch_size, key="total")
    return result


def _probe_memory(cfg: StyleTrainConfig, loss_fn: PerceptualLoss, photos: torch.Tensor, device: torch.device) -> int:
    """Memory of one training step of a fresh network (see measure.training_memory_bytes)."""
    torch.manual_seed(cfg.seed)
    net = TransformerNet(cfg.norm, 1).to(device).train()
    generator = torch.Generator().manual_seed(cfg.seed)
    batch = photos[torch.randint(0, len(photos), (cfg.batch_size,), generator=generator)]
    style_index = torch.zeros(cfg.batch_size, dtype=torch.long, device=device)

    def forward() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16"):
            return loss_fn(net(batch), batch, style_index)["total"]

    return training_memory_bytes(forward, device)
