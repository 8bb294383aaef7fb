"""Any painting: stylize by optimizing the picture itself (Gatys et al. 2016).

`stylenorm stylize photo.jpg --style painting.jpg` has no network for the painting,
so the output image's pixels are the parameters: starting from the photo, L-BFGS moves
them to lower Gatys et al.'s loss (`--loss gatys`, the default: the painting's Gram
matrices at relu1_1 ... relu5_1 and the photo's features at relu4_2; see style/loss.py).
This is the upper bound of a feed-forward network trained on a loss of the same family,
so a loss is judged here first, by looking, in minutes per try.

Speed (measured on the project's 2-core CPU, one thread: see the README's "Any painting"):
the VGG passes run under bfloat16 autocast where the CPU computes bf16 natively,
the loss network and the image are channels_last, the photo's content target and
the painting's Gram targets are computed once, and the image is optimized coarse
to fine (most iterations at half size, where one costs a quarter; the coarse pass
also lays out the large motifs). Photos larger than OPTIMIZE_SIZE are optimized at
that size and the result is resized to the output size (bicubic).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylenorm.config import DEFAULT_MAX_PIXELS
from stylenorm.errors import Cancelled, StylenormError
from stylenorm.images import ImageError, load_image, save_image, to_tensor, to_uint8
from stylenorm.style.config import StylizeOptions, check_style_scale
from stylenorm.style.data import crop_painting_border, resize_longest
from stylenorm.style.loss import (
    LAYER_INDEX,
    LOSS_NAMES,
    LossWeights,
    PerceptualLoss,
    VGGFeatures,
    load_vgg,
    loss_recipe,
    resize_by,
    total_variation,
)
from stylenorm.style.loss_recipes import OPTIMIZE_ITERATIONS

OPTIMIZE_SIZE = 512  # long side of the optimized image; larger outputs are resized from it
# relu5_1 sits behind four 2x2 max pools: below 64 px the painting's relu5_1 map would be
# under 4 px, too few positions for a Gram matrix.
MIN_PAINTING_SIDE = 64
MIN_COARSE_SIDE = 64  # a smaller half-size stage would leave relu5_1 (1/16) a few pixels: no coarse stage
LARGE_PAINTING_SIDE = 4096  # above this a painting is far beyond its analysis size: say it was resized
OPTIMIZERS = ("lbfgs", "adam")


@dataclass
class OptimizeOptions:
    """How the picture is optimized (defaults chosen by looking: docs/style.md, "Any painting")."""

    loss: str = "gatys"  # a LOSS_RECIPES name: its layers, and its weights where these are None
    iterations: int = OPTIMIZE_ITERATIONS  # loss evaluations (forward + backward), all stages together
    style_weight: float | None = None
    content_weight: float | None = None
    tv_weight: float | None = None
    style_scale: float = 1.0  # painting analysed at the photo's long side x this: 2 = motifs twice as big
    style_scales: Sequence[float] = (1.0,)  # Gram loss also on the picture resized by these
    optimizer: str = "lbfgs"
    coarse_share: float = 0.5  # share of the iterations spent at half size (0: none)
    lr: float | None = None  # None: 1 for L-BFGS, 0.02 for Adam
    precision: str = "auto"  # auto (bf16 where native), fp32 or bf16 for the VGG passes
    preserve_color: bool = False

    def loss_weights(self) -> LossWeights:
        """The recipe's weights, with the ones given here in their place."""
        default = loss_recipe(self.loss).weights
        return LossWeights(
            content=default.content if self.content_weight is None else self.content_weight,
            style=default.style if self.style_weight is None else self.style_weight,
            tv=default.tv if self.tv_weight is None else self.tv_weight,
        )

    def check(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise StylenormError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSS_NAMES)}")
        if self.iterations < 1:
            raise StylenormError(f"--iterations {self.iterations} is below 1; e.g. 150")
        w = self.loss_weights()
        if not all(math.isfinite(v) and v >= 0 for v in (w.style, w.content, w.tv)):
            raise StylenormError("--style-weight and the other loss weights must be finite and >= 0")
        check_style_scale(self.style_scale)
        if self.optimizer not in OPTIMIZERS:
            raise StylenormError(f"unknown optimizer {self.optimizer!r}; use {' or '.join(OPTIMIZERS)}")
        if not 0 <= self.coarse_share < 1:
            raise StylenormError(f"coarse share {self.coarse_share} must be in [0, 1)")


def is_painting_file(path: str | os.PathLike) -> bool:
    """Whether --style names a picture (optimize against it) rather than weights: a file that is not
    safetensors (a safetensors file starts with its header length, then '{')."""
    p = Path(path)
    if not p.is_file() or p.suffix == ".safetensors":
        return False
    with open(p, "rb") as f:
        head = f.read(9)
    return head[8:9] != b"{"


def load_painting(path: str | os.PathLike, long_side: int, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  report: Callable[[str], None] | None = None,
                  hint: str = " (--style takes a painting image or style weights, a .safetensors file)") -> torch.Tensor:
    """The painting as (1, 3, h, w) in [0, 1], its border cropped and its long side resized to `long_side`."""
    try:
        image = load_image(path, max_pixels)
    except ImageError as exc:
        raise ImageError(f"{exc}{hint}") from None
    w, h = image.size
    if min(w, h) < MIN_PAINTING_SIDE:
        raise StylenormError(f"the painting {path} is {w}x{h} px; the loss network needs at least "
                             f"{MIN_PAINTING_SIDE} px on its short side; pass a larger picture of it")
    if max(w, h) > LARGE_PAINTING_SIDE and report is not None:
        report(f"note: the painting {Path(path).name} is {w}x{h} px; it is analysed resized (to the photo's long side x --style-scale)")
    img = resize_longest(crop_painting_border(Image.fromarray(image.rgb)), long_side)
    return to_tensor(np.asarray(img))


def vgg_dtype(precision: str, device: str | torch.device = "cpu") -> torch.dtype:
    """The autocast dtype of the VGG passes: auto is bf16 where the device computes it natively."""
    from stylenorm.style.stylize import resolve_precision

    if precision not in ("auto", "fp32", "bf16"):
        raise StylenormError(f"unknown precision {precision!r} for optimization; use auto, fp32 or bf16")
    dtype = resolve_precision(precision, device)
    # fp16 (what auto picks on GPUs without bf16) would need loss scaling for the Gram errors
    return torch.float32 if dtype == torch.float16 else dtype


def stage_plan(long_side: int, opts: OptimizeOptions) -> list[tuple[int, int]]:
    """(long side, iterations) per stage: coarse_share of the iterations at half size, the rest at full."""
    coarse = int(round(opts.iterations * opts.coarse_share)) if long_side // 2 >= MIN_COARSE_SIDE else 0
    plan = [(long_side // 2, coarse)] if coarse else []
    return plan + [(long_side, opts.iterations - coarse)] if opts.iterations - coarse else plan


def _resize_long(x: torch.Tensor, long_side: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = long_side / max(h, w)
    if abs(scale - 1) < 1e-9:
        return x
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=scale < 1).clamp(0, 1)


class Objective:
    """The loss of one picture against one painting and one photo, targets computed once."""

    def __init__(self, vgg: VGGFeatures, painting: torch.Tensor, photo: torch.Tensor, opts: OptimizeOptions,
                 dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.weights = opts.loss_weights()
        self.index = torch.zeros(1, dtype=torch.long, device=photo.device)  # the painting's row in the Gram targets
        recipe = loss_recipe(opts.loss)
        with self._autocast():
            # PerceptualLoss holds the painting's Gram targets per scale and the Gram error
            self.loss = PerceptualLoss.from_recipe(vgg, [painting], recipe, self.weights, opts.style_scales)
            with torch.no_grad():
                self.content_target = self.loss.features(_channels_last(photo), [recipe.content_layer])[recipe.content_layer].float()
        self.content_layer = recipe.content_layer
        self.style_layers = list(recipe.style_layers)
        self.layers = sorted(set(self.style_layers) | {self.content_layer}, key=LAYER_INDEX.get)

    def _autocast(self):
        device = self.index.device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self._autocast():
            feats = self.loss.features(_channels_last(x), self.layers)
            content = F.mse_loss(feats[self.content_layer].float(), self.content_target)
            style = x.new_zeros((), dtype=torch.float32)
            for k, scale in enumerate(self.loss.scales):
                f = feats if scale == 1.0 else self.loss.features(_channels_last(resize_by(x, scale)), self.style_layers)
                style = style + self.loss.style_error(f, self.index, k).mean() / len(self.loss.scales)
        tv = total_variation(x.float())
        w = self.weights
        total = w.content * content + w.style * style + w.tv * tv
        return {"total": total, "content": content, "style": style, "tv": tv}


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def optimize_image(photo: torch.Tensor, painting_path: str | os.PathLike, vgg: VGGFeatures,
                   opts: OptimizeOptions | None = None, *, work_size: int = OPTIMIZE_SIZE, progress: bool = False,
                   report: Callable[[str], None] | None = None, history: list[dict] | None = None,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS, stop: threading.Event | None = None) -> torch.Tensor:
    """photo (1, 3, H, W) in [0, 1] -> the stylized picture, same size, optimized at up to `work_size` px.

    `history`, when given, receives one dict per loss evaluation (stage, losses, seconds); `stop`, once set,
    ends the optimisation at the next evaluation with Cancelled."""
    from tqdm.auto import tqdm

    from stylenorm.style.stylize import preserve_colors

    opts = opts or OptimizeOptions()
    opts.check()
    device = next(vgg.parameters()).device
    dtype = vgg_dtype(opts.precision, device)
    vgg = vgg.to(memory_format=torch.channels_last)
    photo_cpu, photo = photo, photo.to(device)
    size = tuple(photo.shape[-2:])
    long_side = min(max(size), work_size)
    painting = load_painting(painting_path, max(MIN_PAINTING_SIDE, round(long_side * opts.style_scale)),
                             max_pixels=max_pixels, report=report).to(device)
    plan = stage_plan(long_side, opts)
    bar = tqdm(total=opts.iterations, desc="optimize", disable=not progress, dynamic_ncols=True)
    x: torch.Tensor | None = None
    started = time.perf_counter()
    for stage, (side, iterations) in enumerate(plan):
        target_photo = _resize_long(photo, side)
        # the painting keeps its analysis size relative to the picture at every stage
        stage_painting = _resize_long(painting, max(MIN_PAINTING_SIDE // 2, round(side * opts.style_scale)))
        objective = Objective(vgg, stage_painting, target_photo, opts, dtype)
        start = target_photo if x is None else F.interpolate(x, size=target_photo.shape[-2:], mode="bicubic",
                                                             align_corners=False).clamp(0, 1)
        # NCHW for the optimizer (L-BFGS flattens the gradient); the VGG passes see channels_last
        x = start.detach().clone().contiguous().requires_grad_(True)
        x = _run_stage(x, objective, iterations, opts, bar, stage, started, history, stop)
    bar.close()
    assert x is not None
    y = x.detach().float().cpu().contiguous().clamp(0, 1)
    if tuple(y.shape[-2:]) != size:
        y = F.interpolate(y, size=size, mode="bicubic", align_corners=False, antialias=y.shape[-1] > size[-1]).clamp(0, 1)
    return preserve_colors(y, photo_cpu) if opts.preserve_color else y


def _run_stage(x: torch.Tensor, objective: Objective, iterations: int, opts: OptimizeOptions, bar, stage: int,
               started: float, history: list[dict] | None, stop: threading.Event | None = None) -> torch.Tensor:
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        if stop is not None and stop.is_set():
            raise Cancelled(f"cancelled after {bar.n} of {bar.total} loss evaluations")
        optimizer.zero_grad(set_to_none=True)
        losses = objective(x)
        losses["total"].backward()
        evaluations += 1
        value = float(losses["total"].detach())
        if not math.isfinite(value):
            raise StylenormError("the loss became NaN/inf; lower --style-weight or use --precision fp32")
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4g}", style=f"{float(losses['style'].detach()):.3g}", size=max(x.shape[-2:]), refresh=False)
        if history is not None:
            history.append({"stage": stage, "side": max(x.shape[-2:]), **{k: float(v.detach()) for k, v in losses.items()},
                            "seconds": time.perf_counter() - started})
        return losses["total"]

    if opts.optimizer == "lbfgs":
        # no line search: each step is one loss evaluation, so --iterations bounds the time
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS([x], lr=opts.lr or 1.0, max_iter=1, history_size=50)
    else:
        optimizer = torch.optim.Adam([x], lr=opts.lr or 0.02)
    while evaluations < iterations:
        optimizer.step(closure)
        with torch.no_grad():
            x.clamp_(0, 1)
    return x


def optimize_many(inputs: list[Path], painting: Path, output: Path | None, vgg: VGGFeatures, opts: OptimizeOptions, *,
                  max_size: int | None, max_pixels: int | None, report: Callable[[str], None], strength: float = 1.0,
                  progress: bool = True, stop: threading.Event | None = None) -> int:
    """`stylize --style painting.jpg` over files and folders, like stylize_many; returns the failures."""
    from stylenorm.style.stylize import collect_inputs, load_photo, output_paths, process_each

    files = collect_inputs(inputs, report)
    # every problem with the painting shows before any photo is worked on
    load_painting(painting, MIN_PAINTING_SIDE, max_pixels=max_pixels, report=report)

    def work(src: Path, dst: Path) -> None:
        rgb, alpha = load_photo(src, max_size, max_pixels)
        x = to_tensor(rgb)
        y = optimize_image(x, painting, vgg, opts, progress=progress, max_pixels=max_pixels, stop=stop)
        if strength < 1.0:
            y = strength * y + (1 - strength) * x
        save_image(dst, to_uint8(y), alpha)

    return process_each(list(zip(files, output_paths(files, inputs, output, painting.stem, report=report))), work, report)


def load_loss_network(vgg_weights: str | os.PathLike | None, vgg_format: str = "auto") -> tuple[VGGFeatures, str]:
    """The VGG16 for optimization: `--vgg-weights` or torchvision's (downloaded once)."""
    return load_vgg(vgg_weights, vgg_format, tuple(LAYER_INDEX))


def stylize_with_painting(inputs: list[Path], painting: Path, output: Path | None, options: StylizeOptions, *,
                          device: str = "cpu", report: Callable[[str], None] = print,
                          stop: threading.Event | None = None) -> int:
    """`stylize --style PAINTING.jpg`: every option checked, the painting and the VGG loaded, then each photo."""
    opts = OptimizeOptions(loss=options.loss, style_scale=options.style_scale, preserve_color=options.preserve_color,
                           precision=options.precision)
    if options.iterations is not None:
        opts.iterations = options.iterations
    if options.style_weight is not None:
        opts.style_weight = options.style_weight
    opts.check()
    vgg_dtype(options.precision, device)
    max_size, max_pixels, strength = options.max_size, options.max_pixels, options.strength
    load_painting(painting, MIN_PAINTING_SIDE, max_pixels=max_pixels)  # a bad painting fails before the VGG loads
    vgg, _ = load_loss_network(options.vgg_weights, options.vgg_format)
    return optimize_many(inputs, painting, output, vgg.to(device), opts, max_size=max_size, max_pixels=max_pixels,
                         report=report, strength=strength, stop=stop)
