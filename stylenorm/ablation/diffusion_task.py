"""One diffusion ablation run: train the small U-Net with one norm, then score it.

Scores: the EMA model's held-out denoising loss averaged over a fixed grid of time
steps (fixed noise), and the Fréchet distance between generated digits and the
held-out digits in the feature space of the shipped MNIST classifier.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import torch

from stylenorm.ablation.measure import loss_curve, megabytes, speed_from_history, training_memory_bytes
from stylenorm.ablation.presets import DiffusionPreset, lr_for, steps_for
from stylenorm.checkpoints import latest_checkpoint, load_training_state
from stylenorm.diffusion.classifier import load_digit_classifier
from stylenorm.diffusion.config import DiffusionTrainConfig
from stylenorm.diffusion.data import ImageData, load_images, split_holdout
from stylenorm.diffusion.sample import generate, load_diffusion_model, save_grid
from stylenorm.diffusion.schedule import Diffusion
from stylenorm.diffusion.train import train
from stylenorm.diffusion.unet import UNet
from stylenorm.metrics import frechet_distance
from stylenorm.norms import norm_kind

HOLDOUT_SEED = 0  # one held-out set for every run and seed
TRAIN_MODE_EVAL_IMAGES = 100  # BatchNorm's train-mode score uses batches of the training size: keep it cheap
# Samples count as digits when their Fréchet distance is at most this many times real digits' (the same
# number of real training digits against the held-out ones).
DIGITS_FACTOR = 2.0


def train_config(preset: DiffusionPreset, norm: str, batch_size: int, seed: int, run_dir: Path,
                 cpu: bool, threads: int | None) -> DiffusionTrainConfig:
    steps = steps_for(preset, batch_size)
    return DiffusionTrainConfig(
        data="mnist5k", holdout=preset.holdout, holdout_seed=HOLDOUT_SEED,
        base_channels=preset.base_channels, channel_mults=preset.channel_mults, num_res_blocks=preset.num_res_blocks,
        attention_resolutions=(), dropout=0.0,  # dropout would blur BatchNorm's train/eval comparison
        norm=norm, steps=steps, batch_size=batch_size, lr=lr_for(preset, batch_size),
        warmup_steps=max(1, min(100, steps // 10)), ema_decay=0.995, seed=seed, run_dir=str(run_dir / "train"),
        eval_every=steps, preview_every=steps, checkpoint_every=steps, keep_checkpoints=1,
        sample_steps=preset.sample_steps, cpu=cpu, threads=threads,
    )


@torch.no_grad()
def heldout_loss_over_t(model: torch.nn.Module, diffusion: Diffusion, held: ImageData, num_timesteps: int,
                        batch_size: int, device: torch.device) -> float:
    """Mean denoising loss over `num_timesteps` evenly spaced t, with fixed noise."""
    generator = torch.Generator().manual_seed(1234)
    timesteps = torch.linspace(0, diffusion.num_steps - 1, num_timesteps).round().long()
    total, count = 0.0, 0
    for t_value in timesteps.tolist():
        for start in range(0, len(held.images), batch_size):
            x0 = held.images[start:start + batch_size]
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.full((len(x0),), t_value, dtype=torch.long)
            labels = held.labels[start:start + batch_size].to(device) if held.labels is not None else None
            x0, noise, t = x0.to(device), noise.to(device), t.to(device)
            out = model(diffusion.q_sample(x0, t, noise), t, labels if model.config.num_classes else None)
            total += diffusion.loss(out, x0, t, noise).item() * len(x0)
            count += len(x0)
    return total / count


def _probe_memory(config: DiffusionTrainConfig, data: ImageData, device: torch.device) -> int:
    """Memory of one training step of a fresh model (see measure.training_memory_bytes)."""
    torch.manual_seed(config.seed)
    model = UNet(config.unet_config(data.num_classes)).to(device).train()
    diffusion = config.diffusion()
    x0 = data.images[:config.batch_size].to(device)
    labels = data.labels[:config.batch_size].to(device) if data.labels is not None else None
    t = torch.randint(0, diffusion.num_steps, (len(x0),), device=device)
    noise = torch.randn_like(x0)
    return training_memory_bytes(
        lambda: diffusion.loss(model(diffusion.q_sample(x0, t, noise), t, labels), x0, t, noise), device)


def run_diffusion(preset: DiffusionPreset, norm: str, batch_size: int, seed: int, run_dir: Path,
                  cpu: bool = False, threads: int | None = None) -> dict[str, Any]:
    config = train_config(preset, norm, batch_size, seed, run_dir, cpu, threads)
    weights = train(config, progress=False)
    _, _, state = load_training_state(latest_checkpoint(run_dir / "train"))
    history = [h for h in state["history"] if "loss" in h]

    loaded = load_diffusion_model(weights, "cpu" if cpu or not torch.cuda.is_available() else "cuda")
    device = next(loaded.model.parameters()).device
    data = load_images("mnist5k", 28, 1)
    train_data, held = split_holdout(data, preset.holdout, HOLDOUT_SEED)
    result: dict[str, Any] = {
        "steps": config.steps, "lr": config.lr, "images": config.steps * batch_size,
        "heldout_loss": heldout_loss_over_t(loaded.model, loaded.diffusion, held, preset.eval_timesteps, 250, device),
    }
    if norm_kind(norm).batch_statistics:
        # The same images scored with batch statistics (train mode, batches of the training
        # size) and with the running averages that inference uses (eval mode).
        n = max(batch_size, TRAIN_MODE_EVAL_IMAGES // batch_size * batch_size)  # whole batches only
        few = ImageData(held.images[:n], held.labels[:n], held.num_classes, held.source)
        in_train_mode = copy.deepcopy(loaded.model).train()
        result["bn_train_mode_loss"] = heldout_loss_over_t(in_train_mode, loaded.diffusion, few, preset.eval_timesteps, batch_size, device)
        result["bn_eval_mode_loss"] = heldout_loss_over_t(loaded.model, loaded.diffusion, few, preset.eval_timesteps, 250, device)

    labels = torch.arange(preset.fid_samples) % data.num_classes
    samples = generate(loaded, preset.fid_samples, preset.sampler, preset.sample_steps, labels, preset.guidance, seed=seed)
    result["fid"] = fid_against(samples, held.images)
    save_grid(samples[:100], run_dir / "samples.png", nrow=10)

    result.update(speed_from_history(history, batch_size))
    result["memory_mb"] = megabytes(_probe_memory(config, train_data, device))
    result["loss_curve"] = loss_curve(history, batch_size, key="loss")
    return result


@functools.lru_cache(maxsize=1)
def _shipped_classifier():
    return load_digit_classifier()  # read once per process, not once per run


@torch.no_grad()
def fid_against(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Fréchet distance of two image sets in the shipped MNIST classifier's features."""
    classifier = _shipped_classifier()
    features = [torch.cat([classifier.features(b) for b in x.split(500)]) for x in (images, reference)]
    return frechet_distance(*features)


def fid_scale(preset: DiffusionPreset) -> dict[str, float]:
    """What the Fréchet distance means here: real training digits and uniform noise, each
    as many as the generated set, against the held-out digits."""
    train_data, held = split_holdout(load_images("mnist5k", 28, 1), preset.holdout, HOLDOUT_SEED)
    noise = torch.rand((preset.fid_samples, 1, 28, 28), generator=torch.Generator().manual_seed(0)) * 2 - 1
    return {"real digits": fid_against(train_data.images[:preset.fid_samples], held.images),
            "uniform noise": fid_against(noise, held.images)}
