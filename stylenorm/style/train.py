"""`stylenorm train-style`: train a (multi-)style TransformerNet with the VGG16 perceptual loss.

The options (StyleTrainConfig, in style/config.py), the content photos and crops, the add-style network and
the model card's facts live here; the loop is the shared `stylenorm.training.fit`, and
what it trains is `stylenorm.style.task.StyleTask`. Runs through accelerate (CPU, one GPU
with bf16/fp16, or several with `accelerate launch`); `--resume` continues exactly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylenorm.checkpoints import (
    export_model, latest_checkpoint, load_training_state, refuse_existing_model, refuse_shipped_output, run_directory,
    user_weights_dir,
)
from stylenorm.errors import StylenormError
from stylenorm.images import (
    ImageError, list_images, load_image, skipped_record, to_tensor, to_uint8, usable_images, warn_skipped,
)
from stylenorm.style.config import DEMO_DIR, StyleTrainConfig  # re-exported: its old home
from stylenorm.style.config import check_vgg_format
from stylenorm.style.loss_recipes import loss_recipe
from stylenorm.style.net import TransformerNet, net_config


def style_name(path: str) -> str:
    return Path(path).stem


def load_rgb(path: str | Path) -> Image.Image:
    return Image.fromarray(load_image(path).rgb)


def resize_longest(img: Image.Image, longest: int) -> Image.Image:
    w, h = img.size
    scale = longest / max(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)


# Scans of paintings carry frames, board strips, tape and scanner edges (the_scream's right 5 %
# is the board it is painted on); a Gram loss learns such a strip as a motif and networks paint it
# as a stripe along an edge. Gram matrices do not depend on position, so cropping the outer 6 % of
# every side loses nothing of the style.
PAINTING_BORDER = 0.06


def crop_painting_border(img: Image.Image) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * PAINTING_BORDER), round(h * PAINTING_BORDER)
    return img.crop((dx, dy, w - dx, h - dy))


def load_style_image(path: str | Path, longest: int) -> torch.Tensor:
    """A painting as (3, H, W) in [0, 1], its border cropped and its longest side resized to `longest`."""
    return to_tensor(np.asarray(resize_longest(crop_painting_border(load_rgb(path)), longest)))[0]


def _resize_short_side(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    return img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)


def random_crop(img: Image.Image, size: int, generator: torch.Generator) -> torch.Tensor:
    """Resize the short side to `size`, take a seeded random square crop, maybe flip."""
    img = _resize_short_side(img, size)
    w, h = img.size
    x0 = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    y0 = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    t = to_tensor(np.asarray(img.crop((x0, y0, x0 + size, y0 + size))))[0]
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        t = t.flip(-1)
    return t


def center_crop(path: str | Path, size: int) -> torch.Tensor:
    """Short side to `size`, then the central square: the same view of a photo every time."""
    img = _resize_short_side(load_rgb(path), size)
    w, h = img.size
    x0, y0 = (w - size) // 2, (h - size) // 2
    return to_tensor(np.asarray(img.crop((x0, y0, x0 + size, y0 + size))))[0]


HOLDOUT_SEED = 20240  # fixed, so every run and every seed holds out the same photos


class ContentPhotos:
    """The content folder, decoded on demand (small photos; cheaper than the step itself).

    `files` are the training photos; `held_out` the `holdout` photos of a fixed seeded
    split that training never sees (for evaluating on unseen photos); `skipped` the files
    that failed the scan at the start (not images, damaged, over the pixel limit).
    """

    def __init__(self, folder: str | os.PathLike, holdout: int = 0) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise StylenormError(f"content folder not found: {folder}; pass a folder of photos with --data")
        files, self.skipped = usable_images(list_images(folder), f"{folder}/")
        if not files:
            raise StylenormError(f"no usable images in {folder}" + (f" ({len(self.skipped)} skipped, e.g. {self.skipped[0].name}, "
                                                                     "see above)" if self.skipped else "")
                                 + "; --data needs a folder of JPEG/PNG photos")
        if not 0 <= holdout < len(files):
            raise StylenormError(f"holdout {holdout} must be between 0 and {len(files) - 1} (the folder has {len(files)} photos)")
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(HOLDOUT_SEED)).tolist()
        held = set(order[:holdout])
        self.files = [f for i, f in enumerate(files) if i not in held]
        self.held_out = [files[i] for i in sorted(held)]

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, indices: torch.Tensor, size: int, seed: int, micro_step: int) -> torch.Tensor:
        crops = []
        for pos, idx in enumerate(indices.tolist()):
            g = torch.Generator().manual_seed((seed * 7_919 + micro_step) * 1_000 + pos)
            crops.append(random_crop(self._decode(idx), size, g))
        return torch.stack(crops)

    def _decode(self, idx: int) -> Image.Image:
        """Photo `idx`, or the next readable one: a file that passed the scan can still fail to
        decode (a truncated JPEG), and one such photo must not end the run at the step that draws it."""
        for k in range(len(self.files)):
            path = self.files[(idx + k) % len(self.files)]
            if path in self.skipped:
                continue
            try:
                return load_rgb(path)
            except ImageError as exc:
                self.skipped.append(path)
                warn_skipped([path], f"{path.parent}/", str(exc))
        raise StylenormError(f"none of the {len(self.files)} content photos can be decoded; check the --data folder")


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


def check_config(cfg: StyleTrainConfig) -> None:
    """Every option's range, before anything loads: one error naming the option."""
    if isinstance(cfg.styles, str):
        raise StylenormError(f"styles must be a list of paintings, got the string {cfg.styles!r}; write `styles: [{cfg.styles}]`")
    at_least = {"steps": (cfg.steps, 1), "batch_size": (cfg.batch_size, 1), "grad_accum": (cfg.grad_accum, 1),
                "image_size": (cfg.image_size, 16), "style_size": (cfg.style_size, 16)}
    for name, (value, low) in at_least.items():
        if value < low:
            raise StylenormError(f"--{name.replace('_', '-')} {value} is below {low}; pass at least {low}")
    if not cfg.lr > 0:
        raise StylenormError(f"--lr {cfg.lr} must be positive (e.g. 1e-3)")
    loss_recipe(cfg.loss)  # an unknown --loss names the valid ones
    check_vgg_format(cfg.vgg_format)  # also when --vgg-weights is not given and the format is not used
    for name in ("content_weight", "style_weight", "tv_weight", "layout_weight"):
        value = getattr(cfg, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise StylenormError(f"--{name.replace('_', '-')} {value} is not a finite number >= 0; loss weights are >= 0")


def train_style(cfg: StyleTrainConfig, progress: bool = True) -> Path:
    """Train and write `<output>.safetensors` + card; return the weights path."""
    from stylenorm.style.task import StyleTask  # the task builds on this module's helpers
    from stylenorm.training import FitConfig, fit

    check_config(cfg)
    if not cfg.styles:
        raise StylenormError("no style image given; pass --style PAINTING.jpg (repeat for several styles)")
    if not cfg.data:
        raise StylenormError("no content photos given; pass --data FOLDER")
    names = [style_name(s) for s in cfg.styles]
    if len(set(names)) != len(names):
        raise StylenormError(f"style names must differ, got {names}; rename the style image files")
    for s in cfg.styles:
        if not Path(s).is_file():
            raise StylenormError(f"style image not found: {s}; pass an existing image to --style")
    output = Path(cfg.output) if cfg.output else user_weights_dir() / f"{cfg.name}.safetensors"
    refuse_shipped_output(output)
    # a second run of one --name replaced the first model without a word; a --resume continues
    # the model it writes, so it is no replacement
    refuse_existing_model(output, force=cfg.force or cfg.resume is not None)
    if cfg.run_dir:
        run_dir = Path(cfg.run_dir)
    elif cfg.resume:  # where the run is now (it may have been copied or moved), not runs/style/<name>
        run_dir = run_directory(cfg.resume)
    else:
        run_dir = Path("runs") / "style" / cfg.name
    fit(StyleTask(cfg), FitConfig(
        steps=cfg.steps, lr=cfg.lr, run_dir=run_dir, seed=cfg.seed, mixed_precision=cfg.mixed_precision,
        grad_accum=cfg.grad_accum, max_grad_norm=cfg.max_grad_norm, checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints, preview_every=cfg.preview_every, threads=cfg.threads, cpu=cfg.cpu,
        resume=cfg.resume, output=output, half=cfg.half, progress=progress, desc=f"train-style {cfg.name}",
        resume_command=(f"stylenorm add-style {' '.join(cfg.styles)} --name {cfg.name} --resume (and the options "
                        "given before)") if cfg.add_to else f"stylenorm train-style --resume {run_dir}",
    ))
    return output


def extended_network(base_path: str | os.PathLike, new_styles: int, init: bool = True) -> tuple[TransformerNet, dict[str, Any]]:
    """The conditional-IN network of `base_path` with `new_styles` more styles, where only the new
    styles' gamma/beta rows can change: every other parameter is frozen and a gradient hook zeroes
    the existing styles' rows (Adam then leaves them exactly as they were). The new rows start at
    the mean of the existing styles' (a generic painting's statistics rather than none)."""
    from stylenorm.checkpoints import load_model
    from stylenorm.norms import ConditionalNorm

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


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike,
                      extra: dict[str, Any] | None = None) -> Path:
    """Turn a training checkpoint into shipped weights + card (for a run stopped before its last step)."""
    model_sd, _, state = load_training_state(latest_checkpoint(checkpoint))
    cfg = StyleTrainConfig(**{k: v for k, v in state.get("config", {}).items()
                              if k in StyleTrainConfig.__dataclass_fields__})
    if "card" not in state:
        raise StylenormError(f"{checkpoint} was written before checkpoints held their model card; "
                             "resume it for one step with this version to export it")
    return export_model(output, model_sd, {**state["card"], **(extra or {})}, cfg.half)
