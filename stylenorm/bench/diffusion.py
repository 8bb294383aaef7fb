"""`stylenorm bench diffusion`: our U-Net against diffusers.UNet2DModel at the same shape.

Both networks get the same widths, depth, attention placement, time-embedding
width, class embedding, GroupNorm groups and FiLM ("scale_shift") time modulation,
and both are sampled through the same DDIM loop, so the table compares networks,
not samplers. diffusers is an optional extra (`pip install stylenorm[bench]`);
without it the comparison row is skipped and the report says so.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from stylenorm.bench.common import resolve_devices, time_samples_ms, write_report
from stylenorm.devices import set_threads
from stylenorm.diffusion.schedule import Diffusion
from stylenorm.diffusion.unet import UNet, UNetConfig


@dataclass
class BenchShape:
    image_size: int = 28
    in_channels: int = 1
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (7,)
    head_dim: int = 16
    groups: int = 8  # GroupNorm groups in every layer of both networks (the shipped model's gn8)
    num_classes: int = 10
    batch_size: int = 64
    num_samples: int = 64
    ddim_steps: int = 50
    train_repeats: int = 5
    sample_repeats: int = 2


FULL = BenchShape()  # the shipped weights/mnist architecture
QUICK = BenchShape(image_size=8, base_channels=8, channel_mults=(1, 2), attention_resolutions=(4,), head_dim=4,
                   batch_size=8, num_samples=8, ddim_steps=3, train_repeats=1, sample_repeats=1)


def build_ours(shape: BenchShape) -> UNet:
    widths = [shape.base_channels * m for m in shape.channel_mults]
    return UNet(UNetConfig(
        image_size=shape.image_size, in_channels=shape.in_channels, base_channels=shape.base_channels,
        channel_mults=shape.channel_mults, num_res_blocks=shape.num_res_blocks,
        attention_resolutions=shape.attention_resolutions, num_heads=max(1, widths[-1] // shape.head_dim),
        dropout=0.1, norm=f"gn{shape.groups}", num_classes=shape.num_classes,
    ))


def build_diffusers(shape: BenchShape) -> torch.nn.Module:
    """diffusers.UNet2DModel with our layout; raises ImportError without diffusers."""
    from diffusers import UNet2DModel

    widths = tuple(shape.base_channels * m for m in shape.channel_mults)
    sizes = UNetConfig(image_size=shape.image_size, channel_mults=shape.channel_mults).feature_sizes()
    attn = [s in shape.attention_resolutions for s in sizes]
    return UNet2DModel(
        sample_size=shape.image_size, in_channels=shape.in_channels, out_channels=shape.in_channels,
        block_out_channels=widths, layers_per_block=shape.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        attention_head_dim=shape.head_dim, norm_num_groups=shape.groups, resnet_time_scale_shift="scale_shift",
        downsample_type="conv", upsample_type="conv", dropout=0.1, num_class_embeds=shape.num_classes + 1,
        time_embedding_type="positional", flip_sin_to_cos=True, freq_shift=0,
    )


def _forward(model: torch.nn.Module, is_diffusers: bool):
    if is_diffusers:
        return lambda x, t, y: model(x, t, class_labels=y).sample
    return lambda x, t, y: model(x, t, y)


def measure(model: torch.nn.Module, is_diffusers: bool, shape: BenchShape, device: torch.device) -> dict[str, float]:
    """Training images/s (forward, backward, AdamW step) and DDIM sampling seconds."""
    model = model.to(device).train()
    forward = _forward(model, is_diffusers)
    diffusion = Diffusion("cosine", 1000)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    size = (shape.batch_size, shape.in_channels, shape.image_size, shape.image_size)
    x0 = (torch.rand(size, generator=generator) * 2 - 1).to(device)
    noise = torch.randn(size, generator=generator).to(device)
    t = torch.randint(0, 1000, (shape.batch_size,), generator=generator).to(device)
    labels = torch.randint(0, shape.num_classes, (shape.batch_size,), generator=generator).to(device)

    def train_step() -> None:
        loss = diffusion.loss(forward(diffusion.q_sample(x0, t, noise), t, labels), x0, t, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train_ms = statistics.median(time_samples_ms(train_step, device, repeats=shape.train_repeats, warmup=1))
    model.eval()
    sample_labels = torch.arange(shape.num_samples, device=device) % shape.num_classes
    sample_shape = (shape.num_samples, shape.in_channels, shape.image_size, shape.image_size)

    @torch.no_grad()
    def sample() -> None:
        diffusion.ddim_sample(lambda x, tt: forward(x, tt, sample_labels), sample_shape,
                              torch.Generator().manual_seed(0), steps=shape.ddim_steps, device=device)

    sample_ms = statistics.median(time_samples_ms(sample, device, repeats=shape.sample_repeats, warmup=0))
    return {"params": sum(p.numel() for p in model.parameters()), "train_ms": train_ms,
            "img_s": shape.batch_size / (train_ms / 1e3), "sample_s": sample_ms / 1e3}


def run_diffusion_benchmark(output: str | os.PathLike = "results/bench_diffusion.md", device: str | None = None,
                            quick: bool = False, threads: int | None = None, echo=print) -> str:
    set_threads(threads)
    shape = QUICK if quick else FULL
    devices = resolve_devices(device)
    rows, notes = [], []
    try:
        import diffusers

        have_diffusers = True
        notes.append(f"diffusers {diffusers.__version__}: UNet2DModel with the same widths, blocks, attention, "
                     "GroupNorm groups, scale-shift time modulation and class embedding.")
    except ImportError:
        have_diffusers = False
        notes.append("diffusers is not installed: its comparison row was skipped "
                     "(install the benchmark extra: pip install 'stylenorm[bench]').")
    widths = ",".join(str(shape.base_channels * m) for m in shape.channel_mults)
    notes.append(
        f"Shape: {shape.image_size}×{shape.image_size}×{shape.in_channels}, widths {widths}, "
        f"{shape.num_res_blocks} res block(s) per level, attention at {list(shape.attention_resolutions)}, "
        f"GroupNorm with {shape.groups} groups, "
        f"{shape.num_classes} classes. Training: batch {shape.batch_size}, forward + backward + AdamW, "
        f"median of {shape.train_repeats}. Sampling: DDIM {shape.ddim_steps} steps, {shape.num_samples} samples, "
        f"no guidance (one network pass per step), median of {shape.sample_repeats}."
    )
    for dev in devices:
        candidates = [("stylenorm UNet", False)] + ([("diffusers UNet2DModel", True)] if have_diffusers else [])
        for name, is_diffusers in candidates:
            torch.manual_seed(0)
            model = build_diffusers(shape) if is_diffusers else build_ours(shape)
            result = measure(model, is_diffusers, shape, dev)
            rows.append([name, dev.type, f"{result['params'] / 1e6:.2f} M", f"{result['train_ms']:.0f}",
                         f"{result['img_s']:.1f}", f"{result['sample_s']:.2f}"])
    columns = ["model", "device", "parameters", "train step (ms)", "train images/s",
               f"DDIM-{shape.ddim_steps}, {shape.num_samples} samples (s)"]
    return write_report(Path(output), "Diffusion U-Net benchmark", columns, rows, devices=devices, notes=notes,
                        echo=echo)
