"""VGG16 perceptual losses: Gatys et al. 2016 (the optimisation mode) and Johnson et al. 2016
(the feed-forward networks), one module: Gram-matrix style, feature content, TV.

The loss network is VGG16's convolutional trunk up to the deepest layer a recipe uses, with module indices
as in `torchvision.models.vgg16().features` so both weight sources load by key:

- torchvision's `VGG16_Weights.IMAGENET1K_V1` (downloaded once into the torch hub
  cache; expects RGB in [0, 1] normalised by the ImageNet mean/std), or
- a local file (`--vgg-weights PATH`, .safetensors or torchvision's .pth) in
  torchvision format or caffe format (BGR, 0-255, minus the BGR mean).

Caffe-format features are about 255 * 0.226 times larger than torchvision-format
ones for the same picture; we divide them by that factor so that the loss weights
mean roughly the same thing with either loss network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stylenorm.errors import StylenormError
from stylenorm.style.config import VGG_FORMATS
from stylenorm.style.loss_recipes import LOSS_NAMES, LOSS_RECIPES, LossRecipe, LossWeights, loss_recipe  # noqa: F401

# relu taps in torchvision's vgg16().features numbering
LAYER_INDEX = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13,
    "relu3_3": 15, "relu4_1": 18, "relu4_2": 20, "relu4_3": 22, "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}
# conv channel plan of VGG16's trunk; "M" is a 2x2 max pool
_PLAN: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
CAFFE_FEATURE_SCALE = 255.0 * 0.226  # mean ImageNet std in 0-255 units
TORCHVISION_URL_NAME = "vgg16-397923af.pth"
FILE_FORMATS = tuple(f for f in VGG_FORMATS if f != "auto")  # what a weights file can be in


class VGGWeightsError(StylenormError):
    """The loss network's weights cannot be found or read."""


def vgg16_trunk(last_index: int = LAYER_INDEX["relu5_3"]) -> nn.Sequential:
    """VGG16 features[0..last_index] with torchvision's indices (no classifier: 59 MB, not 528)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _PLAN:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(item)
    return nn.Sequential(*layers[: last_index + 1])


def _strip_features_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if k.startswith("features."):
            out[k[len("features."):]] = v
        elif k.split(".")[0].isdigit():
            out[k] = v
    return out


def _torchvision_state() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG16, from the hub cache or downloaded into it."""
    try:
        from torchvision.models import VGG16_Weights

        return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_URL_NAME
        raise VGGWeightsError(
            f"the VGG16 loss network is not in the torch cache ({cache}) and could not be downloaded "
            f"({type(exc).__name__}); connect to the internet once, or pass --vgg-weights PATH "
            "(a VGG16 file in torchvision or caffe format)"
        ) from None


def load_vgg_file(path: str | os.PathLike, fmt: str = "auto") -> tuple[dict[str, torch.Tensor], str]:
    """Read a local VGG16 file; return (features state dict, format 'caffe'|'torchvision')."""
    path = Path(path)
    if not path.is_file():
        raise VGGWeightsError(f"VGG weights file not found: {path}; pass an existing file to --vgg-weights")
    metadata: dict[str, str] = {}
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
            sd = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise VGGWeightsError(f"{path} is not a readable safetensors file ({exc}); pass a VGG16 file to --vgg-weights") from None
    else:
        try:
            # weights_only: never run code from a file handed to us
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad file
            raise VGGWeightsError(f"{path} is not a readable VGG16 weights file ({type(exc).__name__}); pass a .safetensors or "
                                  f"torchvision .pth file") from None
        if not isinstance(sd, dict):
            raise VGGWeightsError(f"{path} does not hold a state dict; pass a VGG16 state dict file")
    sd = _strip_features_prefix(sd)
    first = sd.get("0.weight")
    if first is None or tuple(first.shape) != (64, 3, 3, 3):  # e.g. a style network: no format to tell
        raise VGGWeightsError(f"{path} is not a VGG16: it lacks the conv keys 0.weight, 2.weight, ... of torchvision's "
                              "vgg16().features (0.weight: 64x3x3x3); pass a VGG16 file to --vgg-weights")
    if fmt == "auto":
        fmt = metadata.get("format", "").lower()
        if fmt not in FILE_FORMATS:
            if path.name == TORCHVISION_URL_NAME or path.suffix in (".pth", ".pt"):
                fmt = "torchvision"
            else:
                raise VGGWeightsError(
                    f"cannot tell whether {path} is in caffe or torchvision format (no 'format' in its "
                    "metadata); say which with --vgg-format caffe|torchvision"
                )
    if fmt not in FILE_FORMATS:
        raise VGGWeightsError(f"unknown VGG format {fmt!r}; use {' or '.join(FILE_FORMATS)}")
    return sd, fmt


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), normalised by C*H*W so image size does not change its scale."""
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def resize_by(x: torch.Tensor, scale: float) -> torch.Tensor:
    """(N, C, H, W) resized by `scale` with antialiasing (identity at 1)."""
    if scale == 1.0:
        return x
    h, w = x.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


LAYOUT_POOL = 8  # layout cells of 8 x 8 px: 24-32 across a training crop, the scale of eval-style's 32 px structure


def layout_error(output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """1 - correlation of the output's and the photo's luminance, each averaged over 8 x 8 px cells.

    Per image, so a painting's palette and overall tone are free; only where it is light and
    where dark must follow the photo. The feature content loss alone cannot say this: it ties
    the output to the photo's fine features, so it fights the style, and when weakened enough
    for strong brushwork it lets the photo's layout dissolve into a uniform texture.
    """
    def cells(x: torch.Tensor) -> torch.Tensor:
        luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
        pooled = F.avg_pool2d(luma.unsqueeze(1), LAYOUT_POOL).flatten(1)
        return pooled - pooled.mean(dim=1, keepdim=True)

    a, b = cells(output.float()), cells(content.float())
    correlation = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)
    return (1 - correlation).mean()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


class VGGFeatures(nn.Module):
    """Frozen VGG16 trunk returning the activations at the requested relu layers."""

    def __init__(self, state_dict: dict[str, torch.Tensor], fmt: str, layers: Sequence[str]) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in LAYER_INDEX]
        if unknown:
            raise StylenormError(f"unknown VGG layer(s) {unknown}; valid: {', '.join(LAYER_INDEX)}")
        self.layers = list(layers)
        self.taps = {LAYER_INDEX[name]: name for name in layers}
        self.trunk = vgg16_trunk(max(self.taps))
        own = self.trunk.state_dict()
        missing = [k for k in own if k not in state_dict]
        if missing:
            raise VGGWeightsError(f"the VGG16 weights lack {missing[:3]}...; pass a VGG16 file with conv layers up to "
                                  f"{self.taps[max(self.taps)]}")
        self.trunk.load_state_dict({k: state_dict[k].float() for k in own})
        self.trunk.requires_grad_(False).eval()
        self.fmt = fmt
        if fmt == "caffe":
            self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
            self.register_buffer("std", torch.ones(1, 3, 1, 1))
        else:
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.out_scale = 1.0 / CAFFE_FEATURE_SCALE if fmt == "caffe" else 1.0

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # the loss network never leaves eval mode

    def preprocess(self, rgb01: torch.Tensor) -> torch.Tensor:
        if self.fmt == "caffe":
            x = rgb01.flip(1) * 255.0
        else:
            x = rgb01
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def mean_activations(self) -> dict[str, float]:
        """Each tapped layer's mean activation over the central 256 px of the bundled demo photos, computed once.

        Gatys et al. normalised their VGG so that each filter's mean activation over ImageNet is one;
        per layer here, from the photos every install has (on the project's 1000 training photos the
        means differ from these by 10-30 %; per filter, four photos are too few).
        """
        key = (self.out_scale, next(self.parameters()).device)  # tests rescale the network
        if getattr(self, "_mean_activations_key", None) != key:
            from stylenorm.style.config import DEMO_DIR
            from stylenorm.style.data import center_crop

            device = next(self.parameters()).device
            totals = dict.fromkeys(self.layers, 0.0)
            photos = sorted(DEMO_DIR.glob("*.*"))
            with torch.no_grad(), torch.autocast(device.type, enabled=False):
                for path in photos:
                    feats = self(center_crop(path, 256).unsqueeze(0).to(device))
                    for name in self.layers:
                        totals[name] += float(feats[name].mean()) / len(photos)
            self._mean_activations = {name: max(mean, 1e-12) for name, mean in totals.items()}
            self._mean_activations_key = key
        return self._mean_activations

    def forward(self, rgb01: torch.Tensor, upto: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = set(upto if upto is not None else self.layers)
        last = max(LAYER_INDEX[n] for n in wanted)
        x = self.preprocess(rgb01)
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if i in self.taps and self.taps[i] in wanted:
                out[self.taps[i]] = x * self.out_scale
            if i >= last:
                break
        return out


def load_vgg(vgg_weights: str | os.PathLike | None, fmt: str = "auto",
             layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")) -> tuple[VGGFeatures, str]:
    """The loss network and a one-line description of where its weights came from."""
    if vgg_weights:
        sd, fmt = load_vgg_file(vgg_weights, fmt)
        source = f"VGG16 {fmt} format from {Path(vgg_weights).name}"
    else:
        sd = _strip_features_prefix(_torchvision_state())
        fmt = "torchvision"
        source = "torchvision VGG16_Weights.IMAGENET1K_V1"
    return VGGFeatures(sd, fmt, layers), source


class PerceptualLoss(nn.Module):
    """content + style + TV, with style Gram targets precomputed per style image.

    `scales` adds the style loss of the output resized by each factor against the
    painting resized by the same factor (1 = as given): at half scale the same layers
    see the painting's larger motifs.

    `normalized_features`: every layer's features are divided by their mean activation on photos
    (`VGGFeatures.mean_activations`), Gatys et al.'s normalised VGG, so that each layer's Gram error
    is on the same footing whatever its activations' scale; the Gram errors stay absolute.

    `relative_gram`: each layer's Gram error is divided by the mean square of that style's
    target Gram and the layers are summed, so every layer counts alike. That was the first
    shipped networks' loss; it throws away what makes the shallow layers' Gram entries large,
    the palette and its darks, and its optimum is a pale uniform texture. Otherwise (Gatys,
    Johnson) the errors are absolute and averaged over the layers.
    """

    def __init__(self, vgg: VGGFeatures, style_images: Sequence[torch.Tensor], style_layers: Sequence[str],
                 content_layer: str, weights: LossWeights, scales: Sequence[float] = (1.0,),
                 relative_gram: bool = False, normalized_features: bool = False) -> None:
        super().__init__()
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise StylenormError(f"style scales must be in (0, 1], got {list(scales)}; e.g. [1.0, 0.5]")
        self.vgg = vgg
        self.style_layers = list(style_layers)
        self.content_layer = content_layer
        self.weights = weights
        self.scales = [float(s) for s in scales]
        self.relative_gram = relative_gram
        means = vgg.mean_activations() if normalized_features else {}
        self.feature_scale = {name: 1.0 / mean for name, mean in means.items()}
        # one Gram target per (scale, layer): buffer gram_{k}_{i} is scale k, layer i
        for k, scale in enumerate(self.scales):
            grams: dict[str, list[torch.Tensor]] = {name: [] for name in self.style_layers}
            with torch.no_grad():
                for img in style_images:
                    x = img.unsqueeze(0) if img.dim() == 3 else img
                    feats = self.features(resize_by(x, scale), self.style_layers)
                    for name in self.style_layers:
                        grams[name].append(gram_matrix(feats[name].float())[0])
            for i, name in enumerate(self.style_layers):
                target = torch.stack(grams[name])  # (num_styles, C, C)
                self.register_buffer(f"gram_{k}_{i}", target)
                power = target.pow(2).mean(dim=(1, 2)).clamp_min(1e-30) if relative_gram else torch.ones(len(target))
                self.register_buffer(f"gram_power_{k}_{i}", power)

    @classmethod
    def from_recipe(cls, vgg: VGGFeatures, style_images: Sequence[torch.Tensor], recipe: LossRecipe,
                    weights: LossWeights | None = None, scales: Sequence[float] = (1.0,)) -> "PerceptualLoss":
        return cls(vgg, style_images, recipe.style_layers, recipe.content_layer, weights or recipe.weights, scales,
                   recipe.relative_gram, recipe.normalized_features)

    def features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The loss network's features at `layers`, normalised where the loss says so."""
        feats = self.vgg(x, upto=layers)
        return {name: f * self.feature_scale[name] for name, f in feats.items()} if self.feature_scale else feats

    def style_error(self, feats: dict[str, torch.Tensor], style_index: torch.Tensor, scale_index: int = 0) -> torch.Tensor:
        """Per-image style loss at one scale."""
        total = 0.0
        for i, name in enumerate(self.style_layers):
            g = gram_matrix(feats[name].float())
            error = (g - getattr(self, f"gram_{scale_index}_{i}")[style_index]).pow(2).mean(dim=(1, 2))
            total = total + error / getattr(self, f"gram_power_{scale_index}_{i}")[style_index]
        return total if self.relative_gram else total / len(self.style_layers)

    def forward(self, output: torch.Tensor, content: torch.Tensor, style_index: torch.Tensor) -> dict[str, torch.Tensor]:
        layers = sorted(set(self.style_layers) | {self.content_layer}, key=LAYER_INDEX.get)
        out_feats = self.features(output, layers)
        with torch.no_grad():
            target = self.features(content, [self.content_layer])[self.content_layer]
        content_loss = F.mse_loss(out_feats[self.content_layer].float(), target.float())
        style_loss = output.new_zeros((), dtype=torch.float32)
        for k, scale in enumerate(self.scales):
            feats = out_feats if scale == 1.0 else self.features(resize_by(output, scale), self.style_layers)
            # summed over layers (as before scales existed), averaged over scales
            style_loss = style_loss + self.style_error(feats, style_index, k).mean() / len(self.scales)
        tv_loss = total_variation(output.float())
        total = self.weights.content * content_loss + self.weights.style * style_loss + self.weights.tv * tv_loss
        losses = {"content": content_loss, "style": style_loss, "tv": tv_loss}
        if self.weights.layout:
            losses["layout"] = layout_error(output, content)
            total = total + self.weights.layout * losses["layout"]
        return {"total": total, **losses}
