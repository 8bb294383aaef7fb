"""`stylenorm diffusion train`: one readable DDPM training loop through accelerate."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from stylenorm.checkpoints import (
    WeightsError,
    latest_checkpoint,
    load_training_state,
    save_model,
    save_training_state,
)
from stylenorm.diffusion.data import ImageData, load_images, split_holdout
from stylenorm.diffusion.sample import LoadedModel, generate, save_grid
from stylenorm.diffusion.schedule import Diffusion
from stylenorm.diffusion.unet import UNet, UNetConfig
from stylenorm.errors import StylenormError
from stylenorm.norms import group_counts, parse_spec
from stylenorm.training import (
    EMA,
    batch_indices,
    capture_rng,
    check_finite,
    make_accelerator,
    restore_rng,
    sync_batchnorm_for,
)

# Options that define the model and the process; a resumed run must keep them.
ARCHITECTURE_FIELDS = (
    "data", "image_size", "channels", "base_channels", "channel_mults", "num_res_blocks",
    "attention_resolutions", "num_heads", "norm", "class_conditional", "schedule", "diffusion_steps",
    "prediction", "min_snr_gamma", "seed", "batch_size", "gradient_accumulation_steps", "holdout",
)


def _int_list(value, name: str, example: str) -> tuple[int, ...]:
    """A tuple of ints from a config list or a comma-separated option."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(int(v) for v in items if str(v).strip())
    except (TypeError, ValueError):
        raise StylenormError(f"{name} must be a comma-separated list of integers such as {example}, got {value!r}") from None


@dataclass
class DiffusionTrainConfig:
    # data
    data: str = "mnist5k"  # mnist5k (bundled), mnist, fashion-mnist, cifar10, or a folder of images
    data_cache: str | None = None  # where torchvision datasets are downloaded (default ~/.cache/stylenorm)
    image_size: int = 28
    channels: int = 1
    holdout: int = 256  # images kept aside for the held-out loss
    holdout_seed: int | None = None  # seed of that split; None: the training seed
    # model
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (7,)
    num_heads: int = 4
    dropout: float = 0.1
    norm: str = "gn"
    class_conditional: bool = True  # uses the dataset's labels when it has them
    cond_drop_prob: float = 0.1  # share of labels replaced by the null label (classifier-free guidance)
    # process
    schedule: str = "cosine"
    diffusion_steps: int = 1000
    prediction: str = "eps"
    min_snr_gamma: float | None = None
    # optimisation
    steps: int = 5000
    batch_size: int = 64  # per process and micro-batch
    gradient_accumulation_steps: int = 1
    lr: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    mixed_precision: str = "no"
    cpu: bool = False
    threads: int | None = None  # torch CPU threads; None = torch's default
    seed: int = 0
    # output
    output_dir: str = "runs/diffusion"
    eval_every: int = 250
    sample_every: int = 500
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    sample_steps: int = 50  # DDIM steps for the periodic sample grids
    sample_guidance: float = 2.0

    def __post_init__(self) -> None:
        self.channel_mults = _int_list(self.channel_mults, "channel_mults", "1,2,2")
        self.attention_resolutions = _int_list(self.attention_resolutions, "attention_resolutions", "7,14")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise StylenormError(f"channel_mults {list(self.channel_mults)} must be positive widths per level, e.g. 1,2,2")
        sizes = [self.image_size // 2 ** level for level in range(len(self.channel_mults))]
        stray = sorted(set(self.attention_resolutions) - set(sizes))
        if stray:
            raise StylenormError(f"attention_resolutions {stray} are not feature-map sizes of this U-Net; "
                                 f"its levels are {sizes} px (image {self.image_size}, {len(sizes)} levels)")
        for name, low, high in (("dropout", 0.0, 1.0), ("ema_decay", 0.0, 1.0), ("cond_drop_prob", 0.0, 1.0)):
            if not low <= getattr(self, name) < high:
                raise StylenormError(f"{name} {getattr(self, name)} is outside [{low:g}, {high:g}); e.g. "
                                     f"{DiffusionTrainConfig.__dataclass_fields__[name].default}")
        if self.lr <= 0:
            raise StylenormError(f"lr {self.lr} must be positive, e.g. 2e-4")
        for name in ("steps", "batch_size", "gradient_accumulation_steps", "eval_every", "sample_every",
                     "checkpoint_every", "keep_checkpoints", "image_size"):
            if getattr(self, name) < 1:
                raise StylenormError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.channels not in (1, 3):
            raise StylenormError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if parse_spec(self.norm).kind == "bn" and self.batch_size < 2:
            raise StylenormError(
                f"norm 'bn' with a batch size of {self.batch_size} leaves BatchNorm one image per batch, and one value "
                "per channel where the U-Net is 1×1; use --batch-size 2 or more, or a batch-independent norm (gn, ln, rms)"
            )

    def unet_config(self, num_classes: int) -> UNetConfig:
        return UNetConfig(
            image_size=self.image_size, in_channels=self.channels, base_channels=self.base_channels,
            channel_mults=self.channel_mults, num_res_blocks=self.num_res_blocks,
            attention_resolutions=self.attention_resolutions, num_heads=self.num_heads, dropout=self.dropout,
            norm=self.norm, num_classes=num_classes if self.class_conditional else 0,
        )

    def diffusion(self) -> Diffusion:
        return Diffusion(self.schedule, self.diffusion_steps, self.prediction, self.min_snr_gamma)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["channel_mults"] = list(self.channel_mults)
        data["attention_resolutions"] = list(self.attention_resolutions)
        return data


def model_card(config: DiffusionTrainConfig, model: UNet, data: ImageData, step: int,
               history: list[dict[str, float]], device: str, dtype: str = "float32") -> dict[str, Any]:
    train_losses = [h["loss"] for h in history if "loss" in h]
    heldout = [h for h in history if "heldout_loss" in h]
    return {
        "model": "stylenorm.diffusion.UNet",
        "weights": "EMA",
        "dtype": dtype,
        "unet": model.config.to_dict(),
        "diffusion": {"schedule": config.schedule, "num_steps": config.diffusion_steps,
                      "prediction": config.prediction, "min_snr_gamma": config.min_snr_gamma},
        "data": {"source": data.source, "train_images": int(len(data.images)), "image_size": config.image_size,
                 "channels": config.channels, "num_classes": data.num_classes},
        "training": {"steps": step, "batch_size": config.batch_size,
                     "gradient_accumulation_steps": config.gradient_accumulation_steps, "lr": config.lr,
                     "ema_decay": config.ema_decay, "cond_drop_prob": config.cond_drop_prob,
                     "seed": config.seed, "device": device, "config": config.to_dict()},
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
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
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


def _lr_lambda(warmup: int):
    return lambda step: min(1.0, (step + 1) / max(1, warmup))


def _check_resume_compatible(config: DiffusionTrainConfig, saved: dict[str, Any], source: Path) -> None:
    current = config.to_dict()
    for name in ARCHITECTURE_FIELDS:
        if name in saved and saved[name] != current[name]:
            raise StylenormError(
                f"{source} was trained with {name}={saved[name]!r} but this run asks for {current[name]!r}; "
                f"drop the option (or set it to {saved[name]!r}) to resume, or start a new run in another --output-dir"
            )


def _batch(data: ImageData, idx: torch.Tensor, num_classes: int, drop_prob: float,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    x0 = data.images[idx].to(device)
    if num_classes == 0 or data.labels is None:
        return x0, None
    labels = data.labels[idx].clone()
    drop = torch.rand(len(labels)) < drop_prob
    labels[drop] = num_classes
    return x0, labels.to(device)


def resume_config(resume: str | Path, overrides: dict[str, Any]) -> DiffusionTrainConfig:
    """The configuration a checkpoint was trained with, with the options given now on top.

    So `--resume RUN` alone continues a run started from a preset; an option that
    changes the architecture is then refused by the compatibility check in `train`.
    """
    _, _, state = load_training_state(latest_checkpoint(resume))
    known = {f.name for f in dataclasses.fields(DiffusionTrainConfig)}
    values = {k: v for k, v in state.get("config", {}).items() if k in known}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DiffusionTrainConfig(**values)


def train(config: DiffusionTrainConfig, resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train, checkpointing as it goes; returns the path of the final EMA model."""
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.output_dir)
    resume_state = None
    if resume is not None:
        ckpt = latest_checkpoint(resume)
        resume_state = load_training_state(ckpt)
        _check_resume_compatible(config, resume_state[2].get("config", {}), ckpt)

    accelerator = make_accelerator(config.mixed_precision, config.gradient_accumulation_steps, config.cpu)
    device = accelerator.device
    data = load_images(config.data, config.image_size, config.channels,
                       Path(config.data_cache) if config.data_cache else None)
    train_data, held = split_holdout(data, config.holdout, config.seed if config.holdout_seed is None else config.holdout_seed)
    global_batch = config.batch_size * accelerator.num_processes
    if len(train_data.images) < global_batch:
        raise StylenormError(
            f"the training set has {len(train_data.images)} images, fewer than one batch of {global_batch}; "
            "lower --batch-size or --holdout, or add images"
        )
    num_classes = data.num_classes if (config.class_conditional and data.labels is not None) else 0
    diffusion = config.diffusion()

    torch.manual_seed(config.seed)
    model = UNet(config.unet_config(num_classes))
    model = sync_batchnorm_for(model, accelerator)
    ema = EMA(model, config.ema_decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config.warmup_steps))
    start_step, history = 0, []
    if resume_state is not None:
        model_sd, ema_sd, state = resume_state
        try:
            model.load_state_dict(model_sd)
            ema.load_state_dict(ema_sd if ema_sd is not None else model_sd, state["ema_updates"])
        except RuntimeError as exc:
            raise WeightsError(f"the checkpoint does not fit this model ({str(exc).splitlines()[0]}); resume with the original options") from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_step, history = int(state["step"]), list(state["history"])
    model, optimizer = accelerator.prepare(model, optimizer)
    ema.model.to(device)
    if resume_state is not None:
        restore_rng(resume_state[2]["rng"])

    unwrapped = accelerator.unwrap_model(model)
    model.train()
    rank = accelerator.process_index
    grid_labels = torch.arange(64) % num_classes if num_classes else None
    bar = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, desc="diffusion",
               disable=not (progress and accelerator.is_main_process), dynamic_ncols=True)
    smoothed = None

    def checkpoint(step: int) -> None:
        if not accelerator.is_main_process:
            return
        state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng": capture_rng(), "ema_updates": ema.num_updates, "history": history,
                 "config": config.to_dict()}
        save_training_state(out_dir / "checkpoints" / f"step_{step:07d}", model=unwrapped.state_dict(),
                            ema=ema.state_dict(), state=state)
        old = sorted((out_dir / "checkpoints").glob("step_*"))[:-config.keep_checkpoints]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)

    for step in bar:
        step_start = time.perf_counter()
        for micro in range(config.gradient_accumulation_steps):
            idx = batch_indices(len(train_data.images), global_batch,
                                step * config.gradient_accumulation_steps + micro, config.seed)
            idx = idx[rank * config.batch_size:(rank + 1) * config.batch_size]
            x0, labels = _batch(train_data, idx, num_classes, config.cond_drop_prob, device)
            t = torch.randint(0, diffusion.num_steps, (len(x0),)).to(device)
            noise = torch.randn(x0.shape).to(device)
            with accelerator.accumulate(model):
                try:
                    output = model(diffusion.q_sample(x0, t, noise), t, labels)
                except ValueError as exc:  # e.g. BatchNorm with one value per channel
                    raise StylenormError(str(exc)) from None
                loss = diffusion.loss(output, x0, t, noise)
                check_finite(loss, step)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        ema.update(unwrapped)
        done = step + 1
        value = loss.item()
        history.append({"step": done, "loss": value, "seconds": time.perf_counter() - step_start})
        smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
        # Speed of the training step alone, so evaluations and grids do not skew it.
        images_per_s = global_batch * config.gradient_accumulation_steps / max(time.perf_counter() - step_start, 1e-9)
        bar.set_postfix(loss=f"{smoothed:.4f}", img_s=f"{images_per_s:.1f}")

        if held is not None and (done % config.eval_every == 0 or done == config.steps) and accelerator.is_main_process:
            value = heldout_loss(ema.model, diffusion, held, config.batch_size, device)
            history.append({"step": done, "heldout_loss": value})
            bar.write(f"step {done}: held-out loss (EMA) {value:.4f}")
        if (done % config.sample_every == 0 or done == config.steps) and accelerator.is_main_process:
            images = generate(LoadedModel(ema.model, diffusion, {}), 64, "ddim",
                              min(config.sample_steps, config.diffusion_steps),
                              grid_labels, config.sample_guidance, seed=config.seed)
            save_grid(images, out_dir / "samples" / f"step_{done:07d}.png", nrow=8, scale=2)
        if done % config.checkpoint_every == 0 or done == config.steps:
            checkpoint(done)

    bar.close()
    final = out_dir / "model.safetensors"
    if accelerator.is_main_process:
        card = model_card(config, ema.model, train_data, config.steps, history, device.type)
        save_model(final, ema.state_dict(), card)
    accelerator.wait_for_everyone()
    return final


def export_checkpoint(checkpoint: str | Path, output: str | Path, half: bool = False,
                      device: str = "cpu") -> Path:
    """Write the EMA weights of a training checkpoint as a model with its card (e.g. into weights/)."""
    ckpt = latest_checkpoint(checkpoint)
    model_sd, ema_sd, state = load_training_state(ckpt)
    config = DiffusionTrainConfig(**{k: v for k, v in state["config"].items()
                                     if k in {f.name for f in dataclasses.fields(DiffusionTrainConfig)}})
    data = load_images(config.data, config.image_size, config.channels,
                       Path(config.data_cache) if config.data_cache else None)
    train_data, _ = split_holdout(data, config.holdout, config.seed)
    num_classes = data.num_classes if (config.class_conditional and data.labels is not None) else 0
    model = UNet(config.unet_config(num_classes))
    weights = ema_sd if ema_sd is not None else model_sd
    model.load_state_dict(weights)
    card = model_card(config, model, train_data, int(state["step"]), list(state["history"]), device,
                      "float16" if half else "float32")
    tensors = {k: (v.half() if half and v.dtype.is_floating_point else v) for k, v in weights.items()}
    return save_model(output, tensors, card)
