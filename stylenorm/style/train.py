"""`stylenorm train-style`: train a (multi-)style TransformerNet with the VGG16 perceptual loss.

One loop, top to bottom: every optimizer step sees `batch_size` photos per style
(each global batch holds the same number of samples of every style, so every
step trains every style's gamma/beta and the shared convolutions). Runs through
accelerate (CPU, one GPU with bf16/fp16, or several with `accelerate launch`).
The data order is a stateless function of (seed, step), crops are seeded by the
same, so `--resume` continues exactly where the run stopped.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylenorm.checkpoints import (
    latest_checkpoint, load_training_state, refuse_shipped_output, save_model, save_training_state, user_weights_dir,
)
from stylenorm.errors import StylenormError
from stylenorm.images import list_images, load_image, save_image, to_tensor, to_uint8
from stylenorm.style.loss import LossWeights, PerceptualLoss, load_vgg
from stylenorm.style.net import TransformerNet
from stylenorm.training import batch_indices, capture_rng, check_finite, make_accelerator, restore_rng

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"


@dataclass
class StyleTrainConfig:
    styles: list[str] = field(default_factory=list)  # style image paths; the name is the file stem
    data: str | None = None  # folder of content photos
    holdout: int = 0  # photos of `data` set aside and never trained on (the same split for every seed)
    name: str = "style"
    output: str | None = None  # weights path; default <user data folder>/weights/<name>.safetensors
    run_dir: str | None = None  # checkpoints and previews; default runs/style/<name>
    norm: str = "in"
    image_size: int = 256  # square training crops
    style_size: int = 320  # longest side of the style images
    batch_size: int = 1  # photos per style per step (per process)
    steps: int = 2000
    lr: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 5.0  # on relative Gram errors (see PerceptualLoss)
    tv_weight: float = 1e-4
    content_layer: str = "relu2_2"
    style_layers: list[str] = field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    style_scales: list[float] = field(default_factory=lambda: [1.0])  # Gram loss also on the output resized by these
    init_weights: str | None = None  # start from a trained network with the same styles (fine-tuning)
    # add-style: a multi-style network extended by `styles`; only the new styles' gamma/beta are
    # trained (Dumoulin et al. 2017), every other weight, the existing styles' rows included, stays as it was
    add_to: str | None = None
    vgg_weights: str | None = None
    vgg_format: str = "auto"
    mixed_precision: str = "no"
    grad_accum: int = 1
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    preview_every: int = 200
    preview_size: int = 256
    preview_images: list[str] = field(default_factory=lambda: [str(DEMO_DIR / "chelsea.png"), str(DEMO_DIR / "astronaut.png")])
    threads: int | None = None  # torch intra-op threads (the machine may be shared)
    cpu: bool = False
    resume: str | None = None
    half: bool = True  # store the final weights as float16 (half the size, same pictures)
    notes: str | None = None  # free text for the model card (how and why it was trained this way)


def style_name(path: str) -> str:
    return Path(path).stem


def _load_rgb(path: str | Path) -> Image.Image:
    return Image.fromarray(load_image(path).rgb)


def _resize_longest(img: Image.Image, longest: int) -> Image.Image:
    w, h = img.size
    scale = longest / max(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)


def load_style_image(path: str | Path, longest: int) -> torch.Tensor:
    """A painting as (3, H, W) in [0, 1], its longest side resized to `longest`."""
    return to_tensor(np.asarray(_resize_longest(_load_rgb(path), longest)))[0]


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
    img = _resize_short_side(_load_rgb(path), size)
    w, h = img.size
    x0, y0 = (w - size) // 2, (h - size) // 2
    return to_tensor(np.asarray(img.crop((x0, y0, x0 + size, y0 + size))))[0]


HOLDOUT_SEED = 20240  # fixed, so every run and every seed holds out the same photos


class ContentPhotos:
    """The content folder, decoded on demand (small photos; cheaper than the step itself).

    `files` are the training photos; `held_out` the `holdout` photos of a fixed seeded
    split that training never sees (for evaluating on unseen photos).
    """

    def __init__(self, folder: str | os.PathLike, holdout: int = 0) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise StylenormError(f"content folder not found: {folder}; pass a folder of photos with --data")
        files = list_images(folder)
        if not files:
            raise StylenormError(f"no images in {folder}; --data needs a folder of JPEG/PNG photos")
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
            crops.append(random_crop(_load_rgb(self.files[idx]), size, g))
        return torch.stack(crops)


def _preview(model: TransformerNet, photos: list[torch.Tensor], styles: list[int | None], device: torch.device) -> np.ndarray:
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


def _checkpoint_dirs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("step_*"))


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
    for name in ("content_weight", "style_weight", "tv_weight"):
        if getattr(cfg, name) < 0:
            raise StylenormError(f"--{name.replace('_', '-')} {getattr(cfg, name)} is negative; loss weights are >= 0")


def check_resume(cfg: StyleTrainConfig, saved: dict[str, Any]) -> None:
    """A resume must continue the same network: the same paintings (by name) and the same norm."""
    for key, now, then in (("styles", [style_name(s) for s in cfg.styles], [style_name(s) for s in saved.get("styles", [])]),
                           ("norm", cfg.norm, saved.get("norm", cfg.norm))):
        if saved.get(key) is not None and now != then:
            raise StylenormError(f"--resume continues a run trained with {key} {then}, not {now}; resume with the same "
                                 f"--{'style' if key == 'styles' else key}, or start a new run with another --run-dir")


def train_style(cfg: StyleTrainConfig, progress: bool = True) -> Path:
    """Train and write `<output>.safetensors` + card; return the weights path."""
    check_config(cfg)
    if not cfg.styles:
        raise StylenormError("no style image given; pass --style PAINTING.jpg (repeat for several styles)")
    if not cfg.data:
        raise StylenormError("no content photos given; pass --data FOLDER")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    names = [style_name(s) for s in cfg.styles]
    if len(set(names)) != len(names):
        raise StylenormError(f"style names must differ, got {names}; rename the style image files")
    for s in cfg.styles:
        if not Path(s).is_file():
            raise StylenormError(f"style image not found: {s}; pass an existing image to --style")
    num_styles = len(cfg.styles)
    output = Path(cfg.output) if cfg.output else user_weights_dir() / f"{cfg.name}.safetensors"
    refuse_shipped_output(output)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else Path("runs") / "style" / cfg.name

    accelerator = make_accelerator(cfg.mixed_precision, cfg.grad_accum, cfg.cpu)
    device = accelerator.device
    world, rank = accelerator.num_processes, accelerator.process_index
    torch.manual_seed(cfg.seed)

    photos = ContentPhotos(cfg.data, cfg.holdout)
    vgg, vgg_source = load_vgg(cfg.vgg_weights, cfg.vgg_format, sorted(set(cfg.style_layers) | {cfg.content_layer}))
    style_tensors = [load_style_image(s, cfg.style_size) for s in cfg.styles]
    loss_fn = PerceptualLoss(
        vgg, style_tensors, cfg.style_layers, cfg.content_layer,
        LossWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight), cfg.style_scales,
    ).to(device)

    base_card: dict[str, Any] | None = None
    if cfg.add_to:
        model, base_card = extended_network(cfg.add_to, num_styles, init=not cfg.resume)
    else:
        model = TransformerNet(cfg.norm, num_styles)
    first_style = model.num_styles - num_styles  # the network's index of cfg.styles[0]
    if cfg.init_weights and not cfg.resume:
        from stylenorm.checkpoints import load_into, load_model

        init_sd, _ = load_model(cfg.init_weights)
        load_into(model, init_sd, cfg.init_weights)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    start_step = 0
    averages: dict[str, float] = {}  # smoothed losses for the bar and the card
    history: list[dict[str, float]] = []  # raw losses and step time, one entry per step
    if cfg.resume:
        ckpt = latest_checkpoint(cfg.resume)
        model_sd, _, state = load_training_state(ckpt)
        check_resume(cfg, state.get("config", {}))
        from stylenorm.checkpoints import load_into

        load_into(model, model_sd, ckpt)
        optimizer.load_state_dict(state["optimizer"])
        start_step = int(state["step"])
        restore_rng(state["rng"])
        averages = dict(state.get("card_facts", {}).get("losses", {}))
        history = list(state.get("history", []))
    model, optimizer = accelerator.prepare(model, optimizer)

    preview_photos = []
    for p in cfg.preview_images:
        if Path(p).is_file():
            img = _resize_longest(_load_rgb(p), cfg.preview_size)
            preview_photos.append(to_tensor(np.asarray(img)))

    per_micro = cfg.batch_size * num_styles  # per process
    global_micro = per_micro * world
    # style of global batch position p is p % num_styles: every step trains every style equally
    style_of = torch.arange(global_micro) % num_styles
    mine = torch.arange(rank, global_micro, world)
    model_styles = accelerator.unwrap_model(model).num_styles
    shown = list(range(first_style, model_styles)) if model_styles > 1 else [None]  # the styles in previews

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, initial=start_step, desc=f"train-style {cfg.name}", disable=not (progress and accelerator.is_main_process),
               dynamic_ncols=True)
    started = time.time()
    images_seen = 0
    step = start_step
    model.train()
    while step < cfg.steps:
        step_started = time.perf_counter()
        step_losses = dict.fromkeys(("total", "content", "style", "tv"), 0.0)
        for k in range(cfg.grad_accum):
            micro = step * cfg.grad_accum + k
            idx = batch_indices(len(photos), global_micro, micro, cfg.seed)
            content = photos.batch(idx[mine], cfg.image_size, cfg.seed, micro).to(device)
            styles = style_of[mine].to(device)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    out = model(content, styles + first_style if model_styles > 1 else None)
                    losses = loss_fn(out, content, styles)
                check_finite(losses["total"].detach(), step)
                accelerator.backward(losses["total"])
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            images_seen += content.shape[0] * world
            for key, value in losses.items():
                v = float(value.detach())
                averages[key] = v if key not in averages else 0.95 * averages[key] + 0.05 * v
                step_losses[key] += v / cfg.grad_accum
        step += 1
        history.append({"step": step, **step_losses, "seconds": time.perf_counter() - step_started})
        elapsed = max(time.time() - started, 1e-6)
        bar.update(1)
        bar.set_postfix(content=f"{averages['content'] * cfg.content_weight:.3g}", style=f"{averages['style'] * cfg.style_weight:.3g}",
                        img_s=f"{images_seen / elapsed:.2f}", refresh=False)
        if accelerator.is_main_process:
            if cfg.preview_every and preview_photos and (step % cfg.preview_every == 0 or step == cfg.steps):
                grid = _preview(accelerator.unwrap_model(model), preview_photos, shown, device)
                save_image(run_dir / "previews" / f"step_{step:07d}.png", grid)
            if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                facts = {"num_photos": len(photos), "vgg_source": vgg_source, "losses": dict(averages),
                         "device": str(device), "world": world}
                _save_checkpoint(run_dir, step, accelerator.unwrap_model(model), optimizer, cfg, facts, history)
        accelerator.wait_for_everyone()
    bar.close()

    card = build_card(cfg, step=cfg.steps, num_photos=len(photos), vgg_source=vgg_source, losses=averages,
                      device=str(device), world=world, base=base_card)
    trained = step - start_step
    if trained:
        card["seconds_per_step"] = round((time.time() - started) / trained, 3)
    if accelerator.is_main_process:
        export(accelerator.unwrap_model(model).state_dict(), card, output, cfg.half)
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


def _save_checkpoint(run_dir: Path, step: int, model: TransformerNet, optimizer: torch.optim.Optimizer,
                     cfg: StyleTrainConfig, card_facts: dict[str, Any], history: list[dict[str, float]]) -> None:
    state: dict[str, Any] = {
        "step": step,
        "card_facts": card_facts,
        "history": history,
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng(),
        "config": {k: v for k, v in asdict(cfg).items() if isinstance(v, (int, float, str, bool, list, type(None)))},
    }
    save_training_state(run_dir / "checkpoints" / f"step_{step:07d}", model=model.state_dict(), ema=None, state=state)
    for old in _checkpoint_dirs(run_dir)[: -max(1, cfg.keep_checkpoints)]:
        import shutil

        shutil.rmtree(old, ignore_errors=True)


def export(state_dict: dict[str, torch.Tensor], card: dict[str, Any], output: str | os.PathLike, half: bool = True) -> Path:
    """Write the shipped form of a style network: safetensors (+ card), float16 if asked."""
    sd = {k: (v.half() if half and v.dtype.is_floating_point else v) for k, v in state_dict.items()}
    return save_model(output, sd, card)


def build_card(cfg: StyleTrainConfig, *, step: int, num_photos: int, vgg_source: str, losses: dict[str, float],
               device: str, world: int, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model card: what the network holds and how it was trained (`base`: the card of the network
    that add-style extended; its styles come first and keep their names)."""
    card = {
        "architecture": "TransformerNet",
        "norm": cfg.norm,
        "num_styles": len(cfg.styles),
        "kind": "style",
        # a one-style network is its style, named as the user named it (--name); several are the paintings'
        "styles": [cfg.name] if len(cfg.styles) == 1 else [style_name(s) for s in cfg.styles],
        "default_style": cfg.name if len(cfg.styles) == 1 else style_name(cfg.styles[0]),
        "style_images": [Path(s).name for s in cfg.styles],
        "data": (f"{num_photos} photos from {Path(cfg.data).name}/" + (f" ({cfg.holdout} more held out)" if cfg.holdout else ""))
        if cfg.data else None,
        "loss_network": vgg_source,
        "steps": step,
        "images_per_style": step * cfg.grad_accum * cfg.batch_size * world,
        "image_size": cfg.image_size,
        "style_size": cfg.style_size,
        "batch_size_per_style": cfg.batch_size * world * cfg.grad_accum,
        "lr": cfg.lr,
        "loss_weights": {"content": cfg.content_weight, "style": cfg.style_weight, "tv": cfg.tv_weight},
        "content_layer": cfg.content_layer,
        "style_layers": list(cfg.style_layers),
        "style_scales": list(cfg.style_scales),
        **({"init_weights": Path(cfg.init_weights).name} if cfg.init_weights else {}),
        "final_losses": {k: losses.get(k) for k in ("content", "style", "tv", "total")},
        "device": device,
        "num_processes": world,
        "mixed_precision": cfg.mixed_precision,
        "seed": cfg.seed,
        "dtype": "float16" if cfg.half else "float32",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        **({"notes": cfg.notes} if cfg.notes else {}),
    }
    if base is not None:
        new = [cfg.name] if len(cfg.styles) == 1 else [style_name(s) for s in cfg.styles]
        card.update({
            "num_styles": int(base.get("num_styles", 1)) + len(cfg.styles),
            "styles": list(base.get("styles", [])) + new,
            "default_style": new[0],
            "style_images": list(base.get("style_images", [])) + [Path(s).name for s in cfg.styles],
            "added_styles": new,
            "add_to": Path(cfg.add_to).name if cfg.add_to else None,
            "trained": "only the added styles' gamma/beta; every other weight is the base network's",
        })
    return card


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike,
                      extra: dict[str, Any] | None = None) -> Path:
    """Turn a training checkpoint into shipped weights + card (for a run stopped before its last step)."""
    ckpt = latest_checkpoint(checkpoint)
    model_sd, _, state = load_training_state(ckpt)
    cfg = StyleTrainConfig(**{k: v for k, v in state.get("config", {}).items()
                              if k in StyleTrainConfig.__dataclass_fields__})
    facts = state.get("card_facts", {})
    card = build_card(cfg, step=int(state["step"]), num_photos=facts.get("num_photos", 0),
                      vgg_source=facts.get("vgg_source", "unknown"), losses=facts.get("losses", {}),
                      device=facts.get("device", "unknown"), world=facts.get("world", 1))
    card.update(extra or {})
    return export(model_sd, card, output, cfg.half)
