"""Training images for the diffusion model, as one float tensor in [-1, 1] plus labels.

Sources: the bundled MNIST subset (offline default), any folder of images, or
torchvision's MNIST / Fashion-MNIST / CIFAR-10 (downloaded and cached on first use).
Everything is small enough to hold in memory, which keeps batching stateless.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stylenorm.errors import StylenormError
from stylenorm.images import IMAGE_SUFFIXES, ImageError, load_image, usable_images, warn_skipped

BUNDLED_MNIST = Path(__file__).resolve().parent.parent / "data" / "mnist5k.npz"
TORCHVISION_SETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
DATASET_NAMES = ("mnist5k", *TORCHVISION_SETS)


class DatasetError(StylenormError, ValueError):
    """A dataset that cannot be read or does not exist."""


@dataclass
class ImageData:
    images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1]
    labels: torch.Tensor | None  # (N,) long, or None for an unlabelled folder
    num_classes: int
    source: str
    skipped: tuple[Path, ...] = ()  # files of an image folder that could not be used


def _fit(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to `size` (antialiased) and center-crop to size×size."""
    h, w = images.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        images = F.interpolate(images, size=new, mode="bilinear", antialias=True, align_corners=False)
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        images = images[..., top:top + size, left:left + size]
    return images


def _to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if channels == 1:  # luminance, ITU-R 601
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images[:, :3] * weights).sum(1, keepdim=True)
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    raise DatasetError(f"cannot turn {images.shape[1]}-channel images into {channels} channels; use 1 or 3")


def _finish(uint8: np.ndarray, labels: np.ndarray | None, num_classes: int, size: int, channels: int,
            source: str) -> ImageData:
    images = torch.from_numpy(np.ascontiguousarray(uint8)).float() / 255.0
    if images.dim() == 3:
        images = images.unsqueeze(1)
    elif images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
        images = images.permute(0, 3, 1, 2)
    images = _fit(_to_channels(images[:, :3] if channels == 3 else images, channels), size)
    images = (images.clamp(0, 1) * 2 - 1).contiguous()
    label_tensor = torch.from_numpy(np.asarray(labels)).long() if labels is not None else None
    return ImageData(images, label_tensor, num_classes, source)


def _load_folder(folder: Path, size: int, channels: int) -> ImageData:
    from PIL import Image

    if not folder.is_dir():
        raise DatasetError(f"data folder {folder} does not exist; pass an existing folder of images or a dataset name "
                           f"({', '.join(DATASET_NAMES)})")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"data folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put images in it or "
                           f"pick another folder")
    files, skipped = usable_images(files, f"{folder}/")  # bombs and non-images, before decoding anything
    mode = "L" if channels == 1 else "RGB"
    tensors, failed, reason = [], [], ""
    for path in files:
        try:  # the shared loader: EXIF orientation, 16-bit and palette modes, the pixel limit
            img = Image.fromarray(load_image(path).rgb).convert(mode)
        except ImageError as exc:  # passed the scan but does not decode (e.g. a truncated JPEG)
            failed.append(path)
            reason = reason or str(exc)
            continue
        # Shrink before stacking so a folder of photos does not fill memory.
        if min(img.size) > size * 2:
            img.thumbnail((size * 2 * img.size[0] // min(img.size), size * 2 * img.size[1] // min(img.size)))
        array = np.asarray(img, dtype=np.uint8)
        t = torch.from_numpy(array.copy()).float().div(255)
        t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
        tensors.append(_fit(t.unsqueeze(0), size)[0])
    warn_skipped(failed, f"{folder}/", reason)
    if not tensors:
        bad = skipped + failed
        raise DatasetError(f"none of the images in {folder} can be read ({len(bad)} skipped, e.g. {bad[0].name}, see above); "
                           "replace them or pick another folder")
    images = torch.stack(tensors) * 2 - 1
    return ImageData(images.contiguous(), None, 0, str(folder), tuple(skipped + failed))


def _load_torchvision(name: str, size: int, channels: int, root: Path) -> ImageData:
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION_SETS[name])
    try:
        dataset = cls(root=str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types
        raise DatasetError(
            f"could not download {name} into {root} ({type(exc).__name__}: {exc}); check the internet "
            "connection, or train offline on the bundled subset with --data mnist5k"
        ) from None
    data = dataset.data.numpy() if isinstance(dataset.data, torch.Tensor) else np.asarray(dataset.data)
    targets = np.asarray(dataset.targets)
    return _finish(data, targets, len(dataset.classes), size, channels, f"torchvision:{name}")


def default_cache() -> Path:
    return Path(os.environ.get("STYLENORM_DATA", Path.home() / ".cache" / "stylenorm" / "datasets"))


def load_images(data: str, size: int, channels: int, cache_dir: Path | None = None) -> ImageData:
    """Load `data` (a dataset name or an image folder) at size×size with `channels` channels."""
    key = data.strip().lower()
    if key == "mnist5k":
        if not BUNDLED_MNIST.is_file():
            raise DatasetError(f"the bundled MNIST subset is missing ({BUNDLED_MNIST}); reinstall stylenorm")
        with np.load(BUNDLED_MNIST) as npz:
            return _finish(npz["images"], npz["labels"], 10, size, channels, "mnist5k (bundled)")
    if key in TORCHVISION_SETS:
        return _load_torchvision(key, size, channels, cache_dir or default_cache())
    path = Path(data).expanduser()
    if path.exists() or os.sep in data or data.startswith("."):
        return _load_folder(path, size, channels)
    raise DatasetError(f"unknown dataset {data!r}; use one of {', '.join(DATASET_NAMES)} or a folder of images")


def split_holdout(data: ImageData, holdout: int, seed: int) -> tuple[ImageData, ImageData | None]:
    """Set aside `holdout` images (a fixed seeded choice) for the held-out loss."""
    if holdout <= 0:
        return data, None
    if holdout >= len(data.images):
        raise DatasetError(f"the held-out set ({holdout}) must be smaller than the dataset ({len(data.images)}); lower --holdout")
    order = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed + 17))
    held, kept = order[:holdout], order[holdout:]

    def subset(idx: torch.Tensor) -> ImageData:
        labels = data.labels[idx] if data.labels is not None else None
        return ImageData(data.images[idx], labels, data.num_classes, data.source, data.skipped)

    return subset(kept), subset(held)
