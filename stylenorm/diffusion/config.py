"""The options of `stylenorm diffusion train`, `diffusion sample` and `diffusion train-classifier`: one field each.

Torch-free, so their --help builds its options from these fields quickly; the methods that build
torch objects import them when called.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stylenorm.config import HELP_RESUME, LoopSettings, loop_default, setting
from stylenorm.diffusion.defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS
from stylenorm.errors import StylenormError
from stylenorm.norm_specs import SPEC_HELP, norm_kind

if TYPE_CHECKING:
    from stylenorm.diffusion.schedule import Diffusion
    from stylenorm.diffusion.unet import UNetConfig


def _int_list(value, name: str, example: str) -> tuple[int, ...]:
    """A tuple of ints from a config list or a comma-separated option."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(int(v) for v in items if str(v).strip())
    except (TypeError, ValueError):
        raise StylenormError(f"{name} must be a comma-separated list of integers such as {example}, got {value!r}") from None


@dataclass
class DiffusionTrainConfig(LoopSettings):
    # data
    data: str = setting("mnist5k", help="mnist5k (bundled), mnist, fashion-mnist, cifar10, or a folder of images.")
    data_cache: str | None = setting(None, help="Download folder for torchvision datasets (default ~/.cache/stylenorm).")
    image_size: int = setting(28, help="Model resolution; images are resized and center-cropped.")
    channels: int = setting(1, help="1 (grey) or 3 (RGB).")
    holdout: int = setting(256, help="Images set aside for the held-out loss.")
    holdout_seed: int | None = setting(0, help="Seed of the held-out split, the same for every training seed "
                                               "(a config file's null: the training seed).")
    # model
    base_channels: int = setting(32, help="Width of the first level.")
    channel_mults: tuple[int, ...] = setting((1, 2, 2), help="Width multipliers per level, e.g. 1,2,2.")
    num_res_blocks: int = setting(2, help="Residual blocks per level.")
    attention_resolutions: tuple[int, ...] = setting((7,), help="Feature-map sizes with self-attention, e.g. 7,14.")
    num_heads: int = setting(4, help="Attention heads.")
    dropout: float = setting(0.1, help="Dropout in residual blocks.")
    norm: str = setting("gn", help=f"Norm spec for every layer: {SPEC_HELP}.")
    # --unconditional: the old off-switch, in the README
    class_conditional: bool = setting(True, negative="--unconditional",
                                      help="Use the dataset's labels when it has them.")
    cond_drop_prob: float = setting(0.1, help="Share of labels dropped to the null label (for guidance).")
    # process
    schedule: str = setting("cosine", help="Beta schedule: cosine or linear.")
    diffusion_steps: int = setting(1000, help="Diffusion steps T.")
    prediction: str = setting("eps", help="eps or v.")
    min_snr_gamma: float | None = setting(None, help="Min-SNR loss weighting gamma (e.g. 5); off by default.")
    # optimisation (the loop's options are LoopSettings'; these defaults are diffusion's)
    steps: int = loop_default("steps", 5000)
    lr: float = loop_default("lr", 5e-4)
    grad_clip: float = loop_default("grad_clip", 1.0)
    run_dir: str | None = loop_default("run_dir", "runs/diffusion")
    checkpoint_every: int = loop_default("checkpoint_every", 250)
    preview_every: int = loop_default("preview_every", 500)
    batch_size: int = setting(64, help="Images per process and micro-batch.")
    warmup_steps: int = setting(200, help="Linear learning-rate warm-up.")
    weight_decay: float = setting(0.0, help="AdamW weight decay.")
    ema_decay: float = setting(0.999, help="EMA decay of the weights used for sampling.")
    eval_every: int = setting(250, help="Held-out loss every N steps.")
    sample_steps: int = setting(50, help="DDIM steps of the periodic sample grids.")
    sample_guidance: float = setting(2.0, help="Guidance scale of the periodic sample grids.")

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
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "preview_every",
                     "checkpoint_every", "keep_checkpoints", "image_size"):
            if getattr(self, name) < 1:
                raise StylenormError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.channels not in (1, 3):
            raise StylenormError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if norm_kind(self.norm).batch_statistics and self.batch_size < 2:
            raise StylenormError(
                f"norm 'bn' with a batch size of {self.batch_size} leaves BatchNorm one image per batch, and one value "
                "per channel where the U-Net is 1×1; use --batch-size 2 or more, or a batch-independent norm (gn, ln, rms)"
            )

    def unet_config(self, num_classes: int) -> UNetConfig:
        from stylenorm.diffusion.unet import UNetConfig

        return UNetConfig(
            image_size=self.image_size, in_channels=self.channels, base_channels=self.base_channels,
            channel_mults=self.channel_mults, num_res_blocks=self.num_res_blocks,
            attention_resolutions=self.attention_resolutions, num_heads=self.num_heads, dropout=self.dropout,
            norm=self.norm, num_classes=num_classes if self.class_conditional else 0,
        )

    def diffusion(self) -> Diffusion:
        from stylenorm.diffusion.schedule import Diffusion

        return Diffusion(self.schedule, self.diffusion_steps, self.prediction, self.min_snr_gamma)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["channel_mults"] = list(self.channel_mults)
        data["attention_resolutions"] = list(self.attention_resolutions)
        return data


@dataclass
class ClassifierConfig(LoopSettings):
    data: str = setting("mnist5k", help="Labelled digits: mnist5k (bundled) or mnist (downloaded).")
    holdout: int = setting(1000, help="Images kept aside to measure accuracy.")
    steps: int = loop_default("steps", 1500)
    checkpoint_every: int = loop_default("checkpoint_every", 0)  # the training takes a minute
    preview_every: int = loop_default("preview_every", 0)
    cpu: bool = loop_default("cpu", True)  # tensors this small train fastest on the CPU
    batch_size: int = setting(64, help="Images per step.")
    output: str | None = setting(None, short="-o", help="Weights to write (default: your data folder's "
                                                        "weights/mnist_classifier.safetensors; never the shipped one).")
    resume: str | None = setting(None, help=HELP_RESUME)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "holdout"):  # the held-out accuracy is the classifier's card
            if getattr(self, name) < 1:
                raise StylenormError(f"--{name} {getattr(self, name)} is below 1; pass at least 1")
        if self.lr <= 0:
            raise StylenormError(f"--lr {self.lr} must be positive, e.g. 1e-3")


@dataclass
class SampleOptions:
    """How `diffusion sample` draws, and the web page's diffusion tab: one field each."""

    num_samples: int = setting(64, short="-n", help="How many images.")
    sampler: str = setting(DEFAULT_SAMPLER, help=f"{DEFAULT_SAMPLER} (DPM-Solver++ 2M SDE; default), dpm++ (its ODE "
                                                 "form), ddim or ddpm.")
    steps: int | None = setting(None, help=f"Steps of dpm++sde / dpm++ / ddim (default {DEFAULT_STEPS}; ddpm uses every "
                                           "training step).")
    eta: float = setting(0.0, help="DDIM noise: 0 = deterministic, 1 = DDPM-like.")
    labels: str | None = setting(None, help="Class labels, e.g. 7 or 0,1,2 (cycled); default: all classes in turn.")
    guidance: float | None = setting(None, help=f"Classifier-free guidance scale (1 = none; default "
                                                f"{DEFAULT_GUIDANCE[DEFAULT_SAMPLER]} for {DEFAULT_SAMPLER}, "
                                                f"{DEFAULT_GUIDANCE['ddim']:g} for the others).")
    seed: int = setting(0, help="Seed of the sampling noise.")
    nrow: int | None = setting(None, help="Images per grid row (default: one class per column, else a square grid).")

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise StylenormError(f"--num-samples must be at least 1, got {self.num_samples}")
        if self.nrow is not None and self.nrow < 1:
            raise StylenormError(f"--nrow {self.nrow} is below 1; pass the number of images per grid row")

