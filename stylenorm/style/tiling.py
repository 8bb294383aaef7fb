"""Tiled inference for photos too large to stylize in one pass, without seams.

InstanceNorm normalises each channel with statistics of the whole image, so tiles
that each computed their own statistics would disagree in tone at the seams.
Two ways around it, both with every tile sharing one set of statistics:

- `exact_stylize` (the default): the whole-image statistics themselves, gathered
  layer by layer. The full-resolution layers run tile by tile: one sweep over the
  tiles per norm layer sums that layer's input (mean and variance from the sums),
  the next sweep normalises with them. The stride-4 middle of the network (the
  five residual blocks, 1/16 of the pixels) runs on the whole feature map at
  once, where IN sees the whole image by construction. The result equals the
  untiled forward pass (to float rounding) at about 1.6x its compute, and memory
  grows with 1/16 of the pixels instead of all of them.
- `tiled_stylize`: statistics from one pass at reduced resolution, then tiles with
  those statistics frozen. Faster and bounded by the tile size alone, but the
  statistics are approximate when the photo is larger than the statistics pass.

Tiles carry enough context around them (`margin`, beyond the network's ~56 px
receptive radius) that their centres are what the whole-image pass computes; tile
origins are multiples of 4 so tiles share the network's stride-4 grid.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from stylenorm.errors import StylenormError
from stylenorm.norms import NormKind, layer_kind, norm_kind

GRID = 4  # the network downsamples twice by 2


def _shares_statistics(kind: NormKind | None) -> bool:
    """Per-channel statistics of each image (IN): the tiles can share the whole image's."""
    return kind is not None and kind.image_statistics and kind.per_channel


def shares_image_statistics(spec: str) -> bool:
    """Whether tiles of a network with norm `spec` normalise with shared whole-image statistics (exact_stylize)."""
    return _shares_statistics(norm_kind(spec))


def _instance_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if _shares_statistics(layer_kind(m))]


def check_tileable(model: nn.Module) -> None:
    """Tiles agree with the whole image only where no norm takes statistics over the image (eval-mode BN,
    none) or the tiles share them (IN); statistics that mix channels (LN, GN, RMS) are not shared."""
    for name, m in model.named_modules():
        kind = layer_kind(m)
        if kind is not None and kind.image_statistics and not _shares_statistics(kind):
            raise StylenormError(
                f"layer {name} is a {kind.title}, which normalises with statistics of the whole image that tiles "
                "cannot share, so this network cannot stylize in tiles; stylize in one pass (--tile-size 0) or at "
                "a smaller size (--max-size)"
            )


@contextlib.contextmanager
def _hooks(model: nn.Module, fn) -> Iterator[None]:
    handles = [m.register_forward_hook(fn) for m in _instance_norms(model)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def capture_statistics(model: nn.Module, x: torch.Tensor, style) -> dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """Per IN layer: (mean, biased var) shaped (N, C, 1, 1) of its input in a pass over x."""
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module, inputs, output):
        h = inputs[0].float()
        var, mean = torch.var_mean(h, dim=(2, 3), keepdim=True, correction=0)
        stats[module] = (mean, var)

    with torch.no_grad(), _hooks(model, record):
        model(x, style)
    return stats


@contextlib.contextmanager
def frozen_statistics(model: nn.Module, stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]) -> Iterator[None]:
    """Within the block, every IN layer normalises with the given statistics instead of its input's."""

    def replace(module, inputs, output):
        if module not in stats:  # not frozen (yet): keep the layer's own statistics
            return None
        mean, var = stats[module]
        h = inputs[0]
        # In float32: a channel's mean can be large next to its spread, and in bf16
        # subtracting a rounded mean would shift the whole channel.
        y = ((h.float() - mean) * torch.rsqrt(var + module.eps)).to(h.dtype)
        if module.weight is not None:
            y = y * module.weight.view(1, -1, 1, 1) + module.bias.view(1, -1, 1, 1)
        return y

    with _hooks(model, replace):
        yield


def _ramp(length: int, fade_start: int, fade_end: int, device) -> torch.Tensor:
    """1 inside, rising linearly over `fade_start` px at the start and falling over `fade_end` at the end.

    Always positive, so the normalised blend is defined even where a narrow last
    tile has both ramps overlapping.
    """
    i = torch.arange(length, device=device, dtype=torch.float32)
    rise = ((i + 1) / (fade_start + 1)).clamp(max=1.0)
    fall = ((length - i) / (fade_end + 1)).clamp(max=1.0)
    return torch.minimum(rise, fall)


def _starts(size: int, tile: int) -> list[int]:
    return list(range(0, size, tile)) if size > tile else [0]


def tiled_stylize(model: nn.Module, x: torch.Tensor, style=None, tile: int = 512, margin: int = 64,
                  overlap: int = 16, stats_size: int = 1536, progress: bool = False) -> torch.Tensor:
    """Stylize x (1, 3, H, W) tile by tile with whole-image IN statistics; returns (1, 3, H, W) float32.

    stats_size: longest side of the statistics pass (the whole image when it is smaller).
    """
    check_tileable(model)
    if x.shape[0] != 1:
        raise ValueError("tiled_stylize takes one image at a time")
    tile = max(GRID, tile // GRID * GRID)
    margin = -(-margin // GRID) * GRID
    overlap = -(-overlap // GRID) * GRID
    _, _, h, w = x.shape
    scale = min(1.0, stats_size / max(h, w))
    small = x if scale >= 1.0 else F.interpolate(x, scale_factor=scale, mode="area")
    stats = capture_statistics(model, small, style)

    out = torch.zeros(1, 3, h, w)
    weight = torch.zeros(1, 1, h, w)
    positions = [(y0, x0) for y0 in _starts(h, tile) for x0 in _starts(w, tile)]
    iterator = positions
    if progress and len(positions) > 1:
        from tqdm.auto import tqdm

        iterator = tqdm(positions, desc="tiles", leave=False)
    with torch.no_grad(), frozen_statistics(model, stats):
        for y0, x0 in iterator:
            # output region: the core tile widened by `overlap` into its neighbours
            oy0, ox0 = max(0, y0 - overlap), max(0, x0 - overlap)
            oy1, ox1 = min(h, y0 + tile + overlap), min(w, x0 + tile + overlap)
            # input region: the output region with `margin` of context (clipped at the image edge)
            iy0, ix0 = max(0, oy0 - margin), max(0, ox0 - margin)
            iy1, ix1 = min(h, oy1 + margin), min(w, ox1 + margin)
            y = model(x[..., iy0:iy1, ix0:ix1], style).float()
            y = y[..., oy0 - iy0:oy1 - iy0, ox0 - ix0:ox1 - ix0].cpu()
            wy = _ramp(oy1 - oy0, 2 * overlap if oy0 > 0 else 0, 2 * overlap if oy1 < h else 0, "cpu")
            wx = _ramp(ox1 - ox0, 2 * overlap if ox0 > 0 else 0, 2 * overlap if ox1 < w else 0, "cpu")
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[..., oy0:oy1, ox0:ox1] += y * mask
            weight[..., oy0:oy1, ox0:ox1] += mask
    return out / weight


# ---------------------------------------------------------------- exact statistics


def _in_layer(norm_wrapper: nn.Module) -> nn.Module:
    """The InstanceNorm inside a TransformerNet norm wrapper (plain or conditional)."""
    layer = norm_wrapper.layer
    inner = getattr(layer, "norm", layer)
    if not _shares_statistics(layer_kind(inner)):
        raise StylenormError(f"exact tiling needs InstanceNorm layers, found {type(inner).__name__}; use --max-size")
    return inner


class _Sums:
    """Per-channel running sums for exact mean/variance over a whole image, in float64."""

    def __init__(self) -> None:
        self.total = self.squares = None
        self.count = 0

    def add(self, h: torch.Tensor) -> None:
        h = h.double()
        s, q = h.sum(dim=(0, 2, 3)), h.pow(2).sum(dim=(0, 2, 3))
        self.total = s if self.total is None else self.total + s
        self.squares = q if self.squares is None else self.squares + q
        self.count += h.shape[0] * h.shape[2] * h.shape[3]

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count
        var = (self.squares / self.count - mean.pow(2)).clamp(min=0)
        return mean.float().view(1, -1, 1, 1), var.float().view(1, -1, 1, 1)


def _windows(size: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(core start, core end, input start, input end) along one axis."""
    out = []
    for c0 in range(0, size, tile):
        c1 = min(size, c0 + tile)
        out.append((c0, c1, max(0, c0 - margin), min(size, c1 + margin)))
    return out


def _sweep(x: torch.Tensor, fn, tile: int, margin: int, tick=None):
    """Run fn over tiles of x with context; yield (fn output cropped to the core, core box in output pixels)."""
    _, _, h, w = x.shape
    for (y0, y1, iy0, iy1), (x0, x1, ix0, ix1) in _boxes(h, w, tile, margin):
        out = fn(x[..., iy0:iy1, ix0:ix1])
        f = out.shape[-1] / (ix1 - ix0)  # output pixels per input pixel of this stage
        cy0, cy1 = round((y0 - iy0) * f), round((y1 - iy0) * f)
        cx0, cx1 = round((x0 - ix0) * f), round((x1 - ix0) * f)
        if tick is not None:
            tick()
        yield out[..., cy0:cy1, cx0:cx1], (round(y0 * f), round(y1 * f), round(x0 * f), round(x1 * f))


def _boxes(h: int, w: int, tile: int, margin: int) -> list:
    return [(a, b) for a in _windows(h, tile, margin) for b in _windows(w, tile, margin)]


def exact_stylize(model: nn.Module, x: torch.Tensor, style=None, tile: int = 512, margin: int = 32,
                  progress: bool = False) -> torch.Tensor:
    """TransformerNet forward of x (1, 3, H, W) with whole-image IN statistics, in tiles; float32 on the CPU.

    Equal to model(x, style) up to float rounding, with peak memory set by the
    tile size and the stride-4 feature map (128 channels at H/4 x W/4).
    """
    if x.shape[0] != 1:
        raise ValueError("exact_stylize takes one image at a time")
    net = model
    s = net.style_tensor(style, 1, x.device)
    tile = max(2 * GRID, tile // GRID * GRID)
    margin = -(-margin // GRID) * GRID
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % GRID, (-w) % GRID
    if pad_h or pad_w:  # as the network's own forward does
        mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    norms = [net.norm1, net.norm2, net.norm3, net.norm4, net.norm5]
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    small_tile, small_margin = max(2, tile // GRID), max(2, margin // GRID)
    hp, wp = x.shape[-2] // GRID, x.shape[-1] // GRID
    # one bar for the whole job: 4 encoder sweeps, the residual blocks, 3 decoder sweeps
    total = 4 * len(_boxes(x.shape[-2], x.shape[-1], tile, margin)) + len(net.res) + 3 * len(_boxes(hp, wp, small_tile, small_margin))
    bar = None
    if progress and total > 4 + len(net.res) + 3:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="stylize (tiles)", leave=False)
    tick = bar.update if bar is not None else None

    def encoder(t: torch.Tensor, upto: int) -> torch.Tensor:
        t = net.conv1(t)
        if upto == 1:
            return t
        t = net.conv2(F.relu(net.norm1(t, s)))
        if upto == 2:
            return t
        t = net.conv3(F.relu(net.norm2(t, s)))
        if upto == 3:
            return t
        return F.relu(net.norm3(t, s))

    def decoder(t: torch.Tensor, upto: int) -> torch.Tensor:
        t = net.up1(t)
        if upto == 4:
            return t
        t = net.up2(F.relu(net.norm4(t, s)))
        if upto == 5:
            return t
        return net.to_rgb(F.relu(net.norm5(t, s)))

    with torch.no_grad(), frozen_statistics(net, stats):
        for k in (1, 2, 3):
            sums = _Sums()
            for core, _ in _sweep(x, lambda t: encoder(t, k), tile, margin, tick):
                sums.add(core)
            stats[_in_layer(norms[k - 1])] = sums.stats()
        features = torch.empty(1, 128, hp, wp, device=x.device)
        for core, (a0, a1, b0, b1) in _sweep(x, lambda t: encoder(t, 4), tile, margin, tick):
            features[..., a0:a1, b0:b1] = core
        for block in net.res:  # the stride-4 middle sees the whole map: IN statistics are exact
            features = block(features, s)
            if tick is not None:
                tick()
        for k in (4, 5):
            sums = _Sums()
            for core, _ in _sweep(features, lambda t: decoder(t, k), small_tile, small_margin, tick):
                sums.add(core)
            stats[_in_layer(norms[k - 1])] = sums.stats()
        out = torch.empty(1, 3, x.shape[-2], x.shape[-1])
        for core, (a0, a1, b0, b1) in _sweep(features, lambda t: decoder(t, 6), small_tile, small_margin, tick):
            out[..., a0:a1, b0:b1] = core.float().cpu()
    if bar is not None:
        bar.close()
    return out[..., :h, :w]
