"""Load a trained diffusion model and draw samples: grids and one PNG per sample."""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from stylenorm.atomic import atomic_directory, atomic_output, check_writable
from stylenorm.checkpoints import WeightsError, load_into, load_model, shipped_weights
from stylenorm.diffusion.config import SampleOptions
from stylenorm.diffusion.defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS
from stylenorm.diffusion.schedule import Diffusion, guided_denoiser
from stylenorm.diffusion.unet import UNet, UNetConfig
from stylenorm.errors import StylenormError

DEFAULT_MODEL = "mnist"


@dataclass
class LoadedModel:
    model: UNet
    diffusion: Diffusion
    card: dict[str, Any]


def diffusion_from_card(card: dict[str, Any]) -> Diffusion:
    d = card.get("diffusion", {})
    return Diffusion(d.get("schedule", "cosine"), int(d.get("num_steps", 1000)), d.get("prediction", "eps"),
                     d.get("min_snr_gamma"))


def load_diffusion_model(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """A shipped model name (e.g. 'mnist'), a .safetensors path, or None for the shipped MNIST model."""
    path = Path(weights) if weights is not None else shipped_weights(DEFAULT_MODEL)
    if weights is not None and not path.exists() and shipped_weights(str(weights)).is_file():
        path = shipped_weights(str(weights))
    if path.is_dir() and (path / "model.safetensors").is_file():  # a training run directory
        path = path / "model.safetensors"
    tensors, card = load_model(path)
    if "unet" not in card:
        raise WeightsError(
            f"{path} is not a stylenorm diffusion model (its card has no 'unet' section); pass weights "
            "written by `stylenorm diffusion train`"
        )
    model = UNet(UNetConfig.from_dict(card["unet"]))
    load_into(model, tensors, path)
    return LoadedModel(model.to(device).eval(), diffusion_from_card(card), card)


def parse_labels(text: str | None, num_samples: int, num_classes: int) -> torch.Tensor | None:
    """'3' or '0,1,2' (cycled to num_samples); None = cycle through all classes."""
    if num_classes == 0:
        if text:
            raise StylenormError("this model is unconditional and takes no --labels; leave the option out")
        return None
    if not text:
        values = list(range(num_classes))
    else:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise StylenormError(f"--labels {text!r} must be comma-separated integers, e.g. 0,1,2") from None
        bad = [v for v in values if not 0 <= v < num_classes]
        if not values or bad:
            raise StylenormError(f"--labels {text!r}: labels must lie in 0..{num_classes - 1} for this model")
    return torch.tensor([values[i % len(values)] for i in range(num_samples)], dtype=torch.long)


@torch.no_grad()
def generate(loaded: LoadedModel, num_samples: int = 64, sampler: str | None = None, steps: int | None = None,
             labels: torch.Tensor | None = None, guidance: float | None = None, eta: float = 0.0, seed: int = 0,
             batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Samples in [-1, 1], shaped (num_samples, C, H, W). None: the DEFAULT_* sampler, steps, guidance."""
    sampler = DEFAULT_SAMPLER if sampler is None else sampler
    steps = DEFAULT_STEPS if steps is None else steps
    if steps < 1:
        raise StylenormError(f"--steps must be at least 1, got {steps}")
    if num_samples < 1:
        raise StylenormError(f"--num-samples must be at least 1, got {num_samples}")
    if sampler not in SAMPLERS:
        raise StylenormError(f"unknown sampler {sampler!r}; use {', '.join(SAMPLERS)}")
    guidance = DEFAULT_GUIDANCE[sampler] if guidance is None else guidance
    if guidance < 0:
        raise StylenormError(f"--guidance {guidance} is negative; use 1 for none, 1.5-3 for stronger conditioning")
    if not 0 <= eta <= 1:
        raise StylenormError(f"--eta {eta} is outside 0..1; 0 is deterministic DDIM, 1 is DDPM-like")
    cfg = loaded.model.config
    device = next(loaded.model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    out = []
    # beside each batch's step bar, one over all images when there are several batches (its rate gives the time left)
    overall = tqdm(total=num_samples, unit="img", desc="samples", disable=not progress or num_samples <= batch_size)
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        batch_labels = labels[start:start + n].to(device) if labels is not None else None
        denoise = guided_denoiser(loaded.model, batch_labels, guidance, cfg.num_classes)
        shape = (n, cfg.in_channels, cfg.image_size, cfg.image_size)
        if sampler == "ddpm":
            out.append(loaded.diffusion.ddpm_sample(denoise, shape, generator, device=device, progress=progress))
        elif sampler in ("dpm++", "dpm++sde"):
            out.append(loaded.diffusion.dpmpp_2m_sample(denoise, shape, generator, steps=steps, device=device,
                                                        progress=progress, stochastic=sampler == "dpm++sde"))
        else:
            out.append(loaded.diffusion.ddim_sample(denoise, shape, generator, steps=steps, eta=eta,
                                                    device=device, progress=progress))
        overall.update(n)
    overall.close()
    return torch.cat(out).clamp(-1, 1).cpu()


class Drawn(NamedTuple):
    images: torch.Tensor  # samples in [-1, 1]
    labels: torch.Tensor | None  # the class each was asked for (None: unconditional)
    nrow: int | None  # images per grid row (None: a square grid)
    columns_are_classes: bool  # every class in turn, one class per column


def sample(loaded: LoadedModel, options: SampleOptions, progress: bool = False) -> Drawn:
    """The samples `options` ask for: the labels cycled, and without labels or nrow, one class per column
    where the count allows."""
    classes = loaded.model.config.num_classes
    labels = parse_labels(options.labels, options.num_samples, classes)
    images = generate(loaded, options.num_samples, options.sampler, options.steps, labels, options.guidance, options.eta,
                      options.seed, progress=progress)
    per_column = (options.nrow is None and labels is not None and options.labels is None
                  and options.num_samples % classes == 0)
    return Drawn(images, labels, classes if per_column else options.nrow, per_column)


# The most samples one grid picture shows (64 x 64 of them; MNIST's make a 1,900 px square): beyond it a
# grid is too large to look at, and -o DIR/ writes every sample as its own file (grid.png: the first ones).
MAX_GRID_IMAGES = 4096


def samples_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in the model's [-1, 1] -> (N, H, W[, C]) uint8 (images.to_uint8 is one [0, 1] picture)."""
    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    arr = samples_to_uint8(images)
    n, h, w = arr.shape[:3]
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    shape = (rows * (h + pad) + pad, nrow * (w + pad) + pad) + arr.shape[3:]
    grid = np.zeros(shape, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = arr[i]
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, scale: int = 1) -> Path:
    from PIL import Image

    img = Image.fromarray(make_grid(images, nrow))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    with atomic_output(path) as tmp:
        img.save(tmp)
    return Path(path)


def _is_folder_output(output: str | os.PathLike) -> bool:
    return str(output).endswith(("/", os.sep)) or Path(output).is_dir()


def check_output(output: str | os.PathLike, num_samples: int = 1) -> None:
    """Refuse an output that is neither an image file nor a folder, and a grid picture of more than
    MAX_GRID_IMAGES samples (-o DIR/ writes any number, one PNG each)."""
    folder = _is_folder_output(output)
    if not folder and Path(output).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise StylenormError(f"output {output} is neither an image file (.png) nor a folder (end it with /); fix -o")
    if not folder and num_samples > MAX_GRID_IMAGES:
        raise StylenormError(f"-n {num_samples} would make one grid picture of {num_samples} samples; write one PNG "
                             f"per sample with -o DIR/, or ask for at most {MAX_GRID_IMAGES} in a grid")
    check_writable(output, folder=folder)


def save_samples(images: torch.Tensor, output: str | os.PathLike, nrow: int | None = None) -> Path:
    """-o grid.png writes one grid; -o DIR/ (or an existing folder) one PNG per sample plus grid.png."""
    from PIL import Image

    check_output(output)
    path = Path(output)
    if _is_folder_output(output):
        # A new folder appears whole; an existing one gets each file atomically.
        with atomic_directory(path) if not path.exists() else contextlib.nullcontext(path) as tmp:
            for i, arr in enumerate(samples_to_uint8(images)):
                with atomic_output(tmp / f"sample_{i:04d}.png") as f:
                    Image.fromarray(arr).save(f)
            save_grid(images[:MAX_GRID_IMAGES], tmp / "grid.png", nrow)
        return path
    return save_grid(images, path, nrow)
