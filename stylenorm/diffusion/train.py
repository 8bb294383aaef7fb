"""`stylenorm diffusion train`: the held-out loss, the resume and the model card of the U-Net.

Its options (DiffusionTrainConfig) are in diffusion/config.py; the loop is the shared
`stylenorm.training.fit`; what it trains is `stylenorm.diffusion.task.DiffusionTask`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stylenorm.atomic import check_writable
from stylenorm.checkpoints import (
    WeightsError, export_model, latest_checkpoint, load_training_state, refuse_existing_model,
)
from stylenorm.diffusion.config import DiffusionTrainConfig  # re-exported: its old home
from stylenorm.diffusion.data import ImageData
from stylenorm.diffusion.schedule import Diffusion
from stylenorm.diffusion.unet import UNet
from stylenorm.errors import StylenormError
from stylenorm.images import skipped_record
from stylenorm.norms import group_counts

# Options that define the model and the process; a resumed run must keep them.
ARCHITECTURE_FIELDS = (
    "data", "image_size", "channels", "base_channels", "channel_mults", "num_res_blocks",
    "attention_resolutions", "num_heads", "norm", "class_conditional", "schedule", "diffusion_steps",
    "prediction", "min_snr_gamma", "seed", "batch_size", "gradient_accumulation_steps", "holdout", "holdout_seed",
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


def train(config: DiffusionTrainConfig, resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train, checkpointing as it goes; returns the path of the final EMA model."""
    from stylenorm.diffusion.task import DiffusionTask  # the task builds on this module
    from stylenorm.training import FitConfig, fit

    out_dir = Path(config.output_dir)
    fit(DiffusionTask(config), FitConfig(
        steps=config.steps, lr=config.lr, run_dir=out_dir, seed=config.seed, mixed_precision=config.mixed_precision,
        grad_accum=config.gradient_accumulation_steps, max_grad_norm=config.grad_clip, ema_decay=config.ema_decay,
        checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
        preview_every=config.sample_every, eval_every=config.eval_every, threads=config.threads, cpu=config.cpu,
        resume=resume, output=out_dir / "model.safetensors", progress=progress, desc="diffusion",
        resume_command=f"stylenorm diffusion train --resume {out_dir}",
    ))
    return out_dir / "model.safetensors"


def export_checkpoint(checkpoint: str | Path, output: str | Path, half: bool = False, force: bool = False) -> Path:
    """Write the EMA weights of a training checkpoint as a model with its card (e.g. into weights/);
    an existing model at `output` is replaced only with `force`."""
    check_writable(output)
    refuse_existing_model(output, force, fix="another -o")
    try:
        ckpt = latest_checkpoint(checkpoint)
    except WeightsError:  # its message speaks of resuming, which export does not
        raise StylenormError(f"no checkpoint in {checkpoint}; pass the run folder of a diffusion train run "
                             "(runs/..., holding checkpoints/step_*) or one of its checkpoints") from None
    model_sd, ema_sd, state = load_training_state(ckpt)
    if "card" not in state:
        raise StylenormError(f"{ckpt} was written before checkpoints held their model card; continue it with "
                             f"`stylenorm diffusion train --resume {checkpoint} --steps {state['step']}`, which "
                             "writes its model.safetensors without training further")
    return export_model(output, ema_sd if ema_sd is not None else model_sd, state["card"], half)
