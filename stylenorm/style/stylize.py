"""`stylenorm stylize`: apply a trained style network to photos.

Style selection: a shipped style by name, a weights file, or a blend of styles
of one multi-style network (`starry_night:0.7,wave:0.3`). Large photos are
processed in tiles with whole-image InstanceNorm statistics (see tiling.py).

Speed: the network runs in inference mode and, with `--precision auto`, in
bfloat16 and channels_last where the device computes bf16 natively (CUDA; CPUs
with AVX-512 BF16, where with AMX bf16 convs were measured 7-14x faster than
float32 ones), with the error-sensitive encoder kept in float32 (FLOAT32_LAYERS).
`stylenorm bench stylize` times it against the plain float32 forward and reports
how faithful it is (PSNR).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylenorm.atomic import check_writable
from stylenorm.checkpoints import WEIGHTS_DIR, WeightsError, load_into, load_model, read_card, user_weights_dir
from stylenorm.devices import cpu_has_native_bf16
from stylenorm.errors import StylenormError
from stylenorm.images import (
    IMAGE_SUFFIXES,
    ImageError,
    list_images,
    load_image,
    made_by_stylenorm,
    save_image,
    to_tensor,
    to_uint8,
)
from stylenorm.style.config import STYLE_REFERENCE_SIZE, StylizeOptions, check_strength, check_style_scale
from stylenorm.style.net import ConvLayer, TransformerNet, UpsampleConv
from stylenorm.style.tiling import exact_stylize, shares_image_statistics, tiled_stylize

DEFAULT_WEIGHTS = "styles"  # weights/styles.safetensors: the shipped multi-style network
TILE_ABOVE_PIXELS = 4_000_000  # float32 on a CPU: beyond this a single pass needs ~4 GB; tile instead
# Peak memory of one untiled pass per pixel: `stylenorm bench stylize` measured
# 995 MiB in float32 and 416 MiB on the bf16 path at 1024x1024 (CPU).
PASS_BYTES_PER_PIXEL = {torch.float32: 1050, torch.bfloat16: 450, torch.float16: 450}


# The smallest photo side: the 9x9 input conv reflect-pads by 4 (which needs more than 4 px),
# and the two stride-2 convs leave a quarter of it for the 3x3 residual convs' padding.
MIN_PHOTO_SIDE = 16
# The smallest --tile-size: every tile also runs on 32-64 px of context around it (tiling.py's
# margins), so below this the context is most of the work, and -1 or 3 px tiles ran for minutes.
MIN_TILE_SIZE = 64
# Blend weights are shares (0.7,0.3 or 70,30 are one blend): far larger ones are typos, and
# 1e308, like inf and nan, broke the shares' arithmetic into a traceback.
MAX_BLEND_WEIGHT = 100

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Kept in float32 at any precision: the residual blocks amplify the encoder's bf16
# rounding ~30x. Over the shipped styles x the demo photos at 128-1024 px (80 cases),
# PSNR against float32 fell to 38.7 dB with every layer in bf16 and stays >= 45 dB
# (median 58) with these in float32, at ~1.35x the time of all-bf16; keeping the first
# residual block too lifts the worst case to 55 dB at another ~1.1x. The encoder's
# float32 output also keeps the residual stream float32 (float32 + bf16 is float32).
FLOAT32_LAYERS = ("conv1", "norm1", "conv2", "norm2", "conv3", "norm3")


@dataclass
class StyleModel:
    net: TransformerNet
    names: list[str]
    source: str
    default_style: str


@dataclass
class StyleChoice:
    """What to apply: the network and the per-style mixing weights."""

    model: StyleModel
    weights: list[float]  # one per style of the network, summing to 1
    label: str  # used in output file names
    note: str | None = None  # what was made of the weights given (renormalised), for the user to see

    def style_arg(self):
        if self.model.net.num_styles == 1:
            return None
        return torch.tensor(self.weights, dtype=torch.float32)


def style_weight_dirs() -> list[Path]:
    """Where styles are found by name: the shipped ones, then the user's own (train-style's default output)."""
    return [WEIGHTS_DIR, user_weights_dir()]


def shipped_style_files(weights_dir: Path | None = None) -> list[Path]:
    """Style networks found by name (`style_weight_dirs`, or one folder): *.safetensors whose card says kind: style."""
    found = []
    for folder in [weights_dir] if weights_dir is not None else style_weight_dirs():
        for weights in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                card = read_card(weights)
            except WeightsError:  # a broken card of another file must not stop the search by name
                continue
            if card.get("kind") == "style":
                found.append(weights)
    return found


def find_weights_file(style: str) -> Path:
    """--style FILE.safetensors: the file, or, for a bare file name that is not here, the one of that
    name where styles are found by name (train-style --name mine writes the user's mine.safetensors)."""
    path = Path(style)
    if path.exists() or path.name != style:
        return path
    return next((d / style for d in style_weight_dirs() if (d / style).is_file()), path)


def load_style_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> StyleModel:
    tensors, card = load_model(path)
    if card.get("architecture", "TransformerNet") != "TransformerNet" or card.get("kind", "style") != "style":
        raise WeightsError(f"{path} is not a style network (its card says {card.get('architecture')}/{card.get('kind')}); pass "
                           f"weights made by train-style")
    num_styles = int(card.get("num_styles", 1))
    names = list(card.get("styles") or [Path(path).stem])
    if len(names) != num_styles:
        names = [f"style{i}" for i in range(num_styles)]
    try:
        net = TransformerNet(card.get("norm", "in"), num_styles)
    except StylenormError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    try:
        load_into(net, tensors, path)
    except WeightsError:
        if card:
            raise
        # without a card the layout was a guess (one style, IN): say that, not "another architecture"
        raise WeightsError(f"{path} has no model card (none in its metadata, no {Path(path).with_suffix('.json').name} "
                           "beside it), so its styles and norm are unknown; put its .json card beside it") from None
    net.eval().to(device)
    default = card.get("default_style") or names[0]
    return StyleModel(net, names, str(path), default)


def list_shipped_styles(weights_dir: Path | None = None) -> list[tuple[str, Path, dict]]:
    """(style name, weights file, card) for every style found by name, each name once: the first file
    holding it (a network extended by add-style repeats the shipped styles; those stay the shipped ones)."""
    out = []
    seen = set()
    for path in shipped_style_files(weights_dir):
        card = read_card(path)
        for name in card.get("styles") or [path.stem]:
            if name not in seen:
                seen.add(name)
                out.append((name, path, card))
    return out


def _parse_blend(text: str) -> list[tuple[str, float]]:
    parts = []
    for item in text.split(","):
        name, _, amount = item.strip().rpartition(":")
        try:
            value = float(amount)
        except ValueError:
            raise StylenormError(f"cannot read the blend {text!r}; write it as name:weight,name:weight "
                                 "(e.g. starry_night:0.7,wave:0.3)") from None
        if not math.isfinite(value) or value > MAX_BLEND_WEIGHT:
            raise StylenormError(f"blend weight {amount.strip()} of {name.strip()!r} is not a number from 0 to "
                                 f"{MAX_BLEND_WEIGHT}; weights are shares of the blend, e.g. starry_night:0.7,wave:0.3")
        if value < 0:
            raise StylenormError(f"blend weight of {name!r} is negative; use weights >= 0")
        parts.append((name.strip(), value))
    return parts


def resolve_style(style: str | None, weights: str | os.PathLike | None = None, device: str = "cpu",
                  weights_dir: Path | None = None) -> StyleChoice:
    """--style NAME | PATH | a:0.7,b:0.3 (names within --weights FILE or the shipped network); None: the default style."""
    if style is not None and not style.strip():
        # "" is what an unset shell variable gives (--style "$STYLE"): not a request for the default
        raise StylenormError("--style is empty; pass a style name (see `stylenorm styles`), a blend a:0.7,b:0.3 or "
                             "a weights file, or leave --style out for the default style")
    if style and (Path(style).suffix == ".safetensors" or Path(style).is_file() or os.sep in style) and ":" not in Path(style).name:
        model = load_style_model(find_weights_file(style), device)
        index = model.names.index(model.default_style)
        return _choice(model, [(model.names[index], 1.0)])
    if weights is not None:
        models = [Path(weights)]
    else:
        models = shipped_style_files(weights_dir)
        if not models:
            where = weights_dir or WEIGHTS_DIR
            raise WeightsError(f"no shipped style weights in {where}; reinstall stylenorm or pass --style PATH to a weights file")
    if not style:
        preferred = [m for m in models if m.stem == DEFAULT_WEIGHTS] or models
        model = load_style_model(preferred[0], device)
        return _choice(model, [(model.default_style, 1.0)])
    wanted = _parse_blend(style) if ":" in style else [(style.strip(), 1.0)]
    for path in models:
        names = read_card(path).get("styles") or [path.stem]
        if all(name in names for name, _ in wanted):
            return _choice(load_style_model(path, device), wanted)
    known = sorted({n for path in models for n in (read_card(path).get("styles") or [path.stem])})
    missing = [name for name, _ in wanted if name not in known]
    if missing:
        problem = f"unknown style {', '.join(missing)}"
    else:
        problem = f"{', '.join(n for n, _ in wanted)} are not styles of one network, so they cannot be blended"
    raise StylenormError(f"{problem}; known styles: {', '.join(known)} (see `stylenorm styles`), or pass a weights file")


def _choice(model: StyleModel, wanted: list[tuple[str, float]]) -> StyleChoice:
    total = sum(w for _, w in wanted)
    if total <= 0:
        raise StylenormError("blend weights sum to zero; give at least one style a positive weight")
    weights = [0.0] * len(model.names)
    for name, w in wanted:
        weights[model.names.index(name)] += w / total
    if len(wanted) == 1:
        label = wanted[0][0]
    else:
        label = "_".join(f"{name}{round(100 * w / total)}" for name, w in wanted)
    note = None
    if abs(total - 1) > 1e-6:  # the weights used are not the ones given: say so
        note = (f"blend weights {'+'.join(f'{w:g}' for _, w in wanted)} renormalised to "
                f"{'/'.join(f'{w / total:.3g}' for _, w in wanted)}")
        if len(wanted) == 1:
            note += " (one style is applied in full; --strength sets how much)"
    return StyleChoice(model, weights, label, note)


def luminance(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def preserve_colors(stylized: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Keep the photo's chroma (YCbCr Cb, Cr) and take only the stylized luminance (BT.601)."""
    y = luminance(stylized)
    r, g, b = original[:, 0:1], original[:, 1:2], original[:, 2:3]
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    out = torch.cat([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    return out.clamp(0, 1)


def resolve_precision(precision: str, device: str | torch.device) -> torch.dtype:
    """--precision auto|fp32|bf16|fp16 -> dtype; auto: bf16 where the device computes it natively, else fp32."""
    if precision == "auto":
        device = torch.device(device)
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32
    if precision not in PRECISIONS:
        raise StylenormError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    return PRECISIONS[precision]


def _cast_input(dtype: torch.dtype):
    return lambda module, args: (args[0].to(dtype),)


def inference_net(net: TransformerNet, dtype: torch.dtype = torch.float32) -> TransformerNet:
    """The network to run in `dtype`: net itself for float32, else a channels_last copy in dtype
    except FLOAT32_LAYERS.

    float32 keeps NCHW, which makes it the plain forward exactly: channels_last would
    be ~1.3x faster on a CPU, but torch's channels_last GroupNorm (our InstanceNorm)
    computes the variance as E[x^2] - E[x]^2, off by 1e-2 where a channel's mean is
    20x its spread, so tiles and the whole image would no longer agree to 1e-5.

    Casting hooks join the float32 and reduced-precision parts: each reduced-precision
    conv casts its input (upsampling convs before they upsample, to convert 4x fewer
    values), and the last conv's output goes back to float32 before the mapping to
    [0, 1], where bf16 steps (1/256 above 0.5) would be about one grey level.
    """
    if dtype == torch.float32:
        return net
    fast = copy.deepcopy(net).eval().to(dtype)
    for name in FLOAT32_LAYERS:
        fast.get_submodule(name).float()
    for name, module in fast.named_modules():
        if isinstance(module, (ConvLayer, UpsampleConv)) and name not in FLOAT32_LAYERS:
            module.register_forward_pre_hook(_cast_input(dtype))
    fast.conv_out.register_forward_hook(lambda module, args, out: out.float())
    return fast.to(memory_format=torch.channels_last)


def one_pass_limit(device: torch.device, dtype: torch.dtype) -> int:
    """Most pixels to stylize in one pass: on a CPU the memory of TILE_ABOVE_PIXELS float32
    pixels, on a GPU half of its free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2 // PASS_BYTES_PER_PIXEL[dtype]
    return TILE_ABOVE_PIXELS * PASS_BYTES_PER_PIXEL[torch.float32] // PASS_BYTES_PER_PIXEL[dtype]


def working_size(height: int, width: int, style_scale: float | None) -> tuple[int, int]:
    """The size the network sees: the long side at STYLE_REFERENCE_SIZE / style_scale, aspect kept.

    None: the photo's own size, whatever it is (benchmarks, tiling)."""
    if style_scale is None:
        return height, width
    check_style_scale(style_scale)
    long_side = max(height, width)
    factor = STYLE_REFERENCE_SIZE / long_side / style_scale
    if abs(factor - 1.0) < 1e-9:
        return height, width
    return max(4, round(height * factor)), max(4, round(width * factor))


def _resample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def stylize_tensor(choice: StyleChoice, x: torch.Tensor, *, strength: float = 1.0, preserve_color: bool = False,
                   style_scale: float | None = 1.0, tile_size: int | None = None, progress: bool = False,
                   precision: str = "fp32") -> torch.Tensor:
    """x (1, 3, H, W) in [0, 1] -> stylized (1, 3, H, W) in [0, 1] on the CPU.

    style_scale: the size of the brush strokes relative to the picture; the network runs
    on the photo resized to `working_size` and its output is resized back.
    tile_size: None picks tiling automatically for large images; 0 never tiles.
    precision: auto, fp32, bf16 or fp16 (see FLOAT32_LAYERS and inference_net);
    fp32, the default here, is exactly the plain forward.
    """
    check_strength(strength)
    check_tile_size(tile_size)
    size = tuple(x.shape[-2:])
    work = working_size(*size, style_scale)
    y = _resample(_network_pass(choice, _resample(x, work), tile_size, progress, precision), size)
    if preserve_color:
        y = preserve_colors(y, x)
    if strength < 1.0:
        y = strength * y + (1 - strength) * x
    return y


def _network_pass(choice: StyleChoice, x: torch.Tensor, tile_size: int | None, progress: bool,
                  precision: str) -> torch.Tensor:
    """The network on x at its own size, tiled where one pass would not fit; clamped, NCHW, on the CPU."""
    device = next(choice.model.net.parameters()).device
    dtype = resolve_precision(precision, device)
    net = inference_net(choice.model.net, dtype)
    x_dev = x.to(device)
    if dtype != torch.float32:
        x_dev = x_dev.contiguous(memory_format=torch.channels_last)
    style = choice.style_arg()
    pixels = x.shape[-1] * x.shape[-2]
    limit = one_pass_limit(device, dtype)
    use_tiles = (tile_size is None and pixels > limit) or bool(tile_size)
    # automatic tiles: 1024 (512 for tiled_stylize) px on a CPU in float32, their area
    # growing with the memory one pass may take on this device and at this precision
    scale = (limit / TILE_ABOVE_PIXELS) ** 0.5
    with torch.inference_mode():
        if use_tiles and shares_image_statistics(net.norm_spec):
            y = exact_stylize(net, x_dev, style, tile=tile_size or round(1024 * scale), progress=progress)
        elif use_tiles:  # other norms: statistics from a reduced-resolution pass (see tiling.py)
            y = tiled_stylize(net, x_dev, style, tile=tile_size or round(512 * scale), progress=progress)
        else:
            y = net(x_dev, style).float().cpu()
    return y.clamp(0, 1).contiguous()  # back to NCHW from channels_last


def _resize(arr: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    return np.array(Image.fromarray(arr, mode).resize(size, Image.LANCZOS))


def check_tile_size(tile_size: int | None) -> None:
    """--tile-size: None (automatic), 0 (never tile) or at least MIN_TILE_SIZE px."""
    if tile_size is not None and tile_size != 0 and tile_size < MIN_TILE_SIZE:
        raise StylenormError(f"--tile-size {tile_size} is below {MIN_TILE_SIZE} px: each tile also computes 32-64 px of "
                             f"context around it, so smaller tiles multiply the work; pass at least {MIN_TILE_SIZE}, 0 "
                             "to never tile, or leave it out for automatic tiling")


def check_photo_options(options: StylizeOptions) -> None:
    """The photo options' ranges that need this module's limits, checked before any work (the others:
    StylizeOptions itself)."""
    check_tile_size(options.tile_size)
    if options.max_size is not None and options.max_size < MIN_PHOTO_SIDE:
        raise StylenormError(f"--max-size {options.max_size} is below the {MIN_PHOTO_SIDE} px the network needs; pass "
                             f"at least {MIN_PHOTO_SIDE}")


def load_photo(src: Path, max_size: int | None, max_pixels: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB, alpha or None) of a photo, shrunk so that its long side is at most `max_size`."""
    image = load_image(src, max_pixels)
    rgb, alpha = image.rgb, image.alpha
    w, h = image.size
    if max_size and max(w, h) > max_size:
        scale = max_size / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
        rgb = _resize(rgb, (w, h), "RGB")
        alpha = None if alpha is None else _resize(alpha, (w, h), "L")
    if min(w, h) < MIN_PHOTO_SIDE:
        raise ImageError(f"{src} is {w}x{h} px; the network needs at least {MIN_PHOTO_SIDE} px on each side"
                         + (" (after --max-size)" if (w, h) != image.size else ""))
    return rgb, alpha


def stylize_file(choice: StyleChoice, src: Path, dst: Path, options: StylizeOptions | None = None, *,
                 progress: bool = False) -> Path:
    options = options or StylizeOptions()
    rgb, alpha = load_photo(src, options.max_size, options.max_pixels)
    y = stylize_tensor(choice, to_tensor(rgb), strength=options.strength, preserve_color=options.preserve_color,
                       style_scale=options.style_scale, tile_size=options.tile_size, progress=progress,
                       precision=options.precision)
    return save_image(dst, to_uint8(y), alpha)


def expand_inputs(inputs: list[Path]) -> tuple[list[Path], int, list[Path]]:
    """(files, earlier, others): files as given; folders contribute their images (sorted) except our
    own earlier outputs, counted in `earlier`; `others` are the folders' entries that are not images
    (clips, subfolders, other files; hidden ones aside), which a folder run does not search."""
    out: list[Path] = []
    earlier = 0
    others: list[Path] = []
    for p in inputs:
        if p.is_dir():
            images = list_images(p)
            for f in images:
                if made_by_stylenorm(f):
                    earlier += 1
                else:
                    out.append(f)
            others += sorted(e for e in p.iterdir() if e not in images and not e.name.startswith("."))
        else:
            out.append(p)
    return out, earlier, others


def _skipped_entry(path: Path) -> str:
    """One skipped folder entry as the note names it, with why."""
    from stylenorm.video import VIDEO_SUFFIXES

    if path.is_dir():
        return f"{path.name}/ (a subfolder: not searched)"
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return f"{path.name} (a clip: pass it by name)"
    return f"{path.name} (not an image)"


def _file_key(path: Path) -> tuple[int, int] | None:
    """(device, inode): the same for one file reached through symlinks and hard links."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _someone_elses(path: Path) -> bool:
    """Whether `path` exists and is not one of our earlier outputs (a photo the user made, a folder)."""
    return path.exists() and not made_by_stylenorm(path)


def output_paths(inputs: list[Path], given: list[Path], output: Path | None, label: str,
                 suffixes: dict[Path, str] | None = None, report: Callable[[str], None] | None = None) -> list[Path]:
    """Where each result goes: beside the input by default; -o is a file for one input, else a folder.

    Never an input's own path; two inputs with the same name get distinct outputs (_2, _3, ...).
    At a default name (no -o) only our own earlier output is replaced: a file the user made there
    (robin_starry_night.jpg) is kept and the next free name taken, with a note through `report`.
    suffixes: the output suffix of some inputs (clips; "" for a folder of frames).
    """
    suffixes = suffixes or {}
    single_file = len(inputs) == 1 and len(given) == 1 and (not given[0].is_dir() or given[0] in suffixes)
    if output is not None and not single_file and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise StylenormError(f"-o {output} names one image but there are {len(inputs)} inputs; pass a folder to -o")
    paths: list[Path] = []
    for src in inputs:
        suffix = suffixes.get(src, src.suffix if src.suffix.lower() in IMAGE_SUFFIXES else ".png")
        name = f"{src.stem}_{label}{suffix}"
        if output is None:
            dst = src.with_name(name)
        elif single_file and not output.is_dir() and output.suffix:
            dst = output
        else:
            dst = output / name
        # -o replaces as asked; clips and frame folders carry no tag telling ours from the user's
        keep_theirs = output is None and src not in suffixes
        candidate, n = dst, 1
        while candidate in paths or (keep_theirs and _someone_elses(candidate)):
            n += 1
            candidate = dst.with_name(f"{dst.stem}_{n}{dst.suffix}")
        if candidate != dst and keep_theirs and report is not None and _someone_elses(dst):
            report(f"note: {dst} is not a stylenorm output, so it is kept; writing {candidate}")
        paths.append(candidate)
    by_path = {src.resolve(): src for src in inputs}
    by_file = {key: src for src in inputs if (key := _file_key(src)) is not None}
    for dst in paths:
        clash = by_path.get(dst.resolve()) or by_file.get(_file_key(dst))
        if clash is not None:
            raise StylenormError(f"the output {dst} would overwrite the input {clash}; pass another -o")
        check_writable(dst)  # before the first photo is worked on
    return paths


def collect_inputs(inputs: list[Path], report: Callable[[str], None]) -> list[Path]:
    """The image files of `inputs`: folders expanded, and what a folder held besides its photos
    (our own earlier outputs, clips, subfolders, other files) named in one note each."""
    files, earlier, others = expand_inputs(inputs)
    if earlier:
        report(f"skipped {earlier} earlier stylenorm output(s) in the input folder(s)")
    if others:
        shown = ", ".join(_skipped_entry(p) for p in others[:3]) + (", ..." if len(others) > 3 else "")
        report(f"skipped {len(others)} entr{'y' if len(others) == 1 else 'ies'} of the input folder(s) that "
               f"are not photos: {shown}")
    return files


def process_each(pairs: list[tuple[Path, Path]], work: Callable[[Path, Path], object],
                 report: Callable[[str], None]) -> int:
    """work(src, dst) for every pair; one bad file does not stop the others. Returns the number of failures."""
    if not pairs:
        raise ImageError("no images to stylize; pass image files or a folder that holds some")
    failures = 0
    for src, dst in pairs:
        try:
            try:
                work(src, dst)
            except MemoryError:
                raise StylenormError(f"{src} does not fit in memory; use --max-size or a smaller --tile-size") from None
            report(f"wrote {dst}")
        except StylenormError as exc:
            if len(pairs) == 1:
                raise  # one input: its error is the command's one error line
            failures += 1
            report(f"error: {exc}")
    return failures
