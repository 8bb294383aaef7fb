"""Safe image loading and atomic saving.

Loading applies the EXIF orientation, converts every mode (grayscale, palette,
CMYK, 16-bit, float) to 8-bit RGB, keeps an alpha channel aside so it can be put
back unchanged, and refuses decompression bombs beyond a pixel limit that the
caller may raise. Saving writes through `atomic_output`, in the format that the
extension names, so a failed run never leaves a half-written picture.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from stylenorm.atomic import atomic_output
from stylenorm.config import DEFAULT_MAX_PIXELS
from stylenorm.errors import StylenormError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_SAVE_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
}


class ImageError(StylenormError, ValueError):
    """An input that is not a readable image, or an output we cannot write."""


@dataclass
class LoadedImage:
    rgb: np.ndarray  # uint8 (H, W, 3)
    alpha: np.ndarray | None  # uint8 (H, W), the original alpha when the image had one

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.rgb.shape[1], self.rgb.shape[0]


def _to_8bit_rgb(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Any PIL mode -> (RGB image, alpha band or None)."""
    alpha = None
    if img.mode == "P":
        # palette images may carry transparency in the palette
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        if img.mode in ("RGBa", "La"):  # premultiplied: undo before splitting
            img = img.convert(img.mode.replace("a", "A"))
        alpha = img.getchannel("A")
        img = img.convert("RGB") if img.mode == "RGBA" else img.convert("L").convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return img, alpha


@contextlib.contextmanager
def _open_within_limit(path: Path, max_pixels: int | None) -> Iterator[Image.Image]:
    """PIL's image of `path` once its size is known to be within the pixel limit; every read
    error (also while the caller decodes it) becomes one ImageError naming the file."""
    if not path.exists():
        raise ImageError(f"input not found: {path}; check the path")
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image; pass image files or use a folder where folders are accepted")
    limit = max_pixels if max_pixels else None
    # PIL refuses images over twice its own global limit before we can apply ours;
    # lift it for this call only, so that our (overridable) limit is the one that counts.
    pil_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as img:
            w, h = img.size
            if limit is not None and w * h > limit:
                raise ImageError(
                    f"{path} is {w}x{h} = {w * h / 1e6:.0f} MP, over the {limit / 1e6:.0f} MP limit that guards "
                    "against decompression bombs (where a command has --max-pixels, raise it if you trust the file)"
                )
            yield img
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image stylenorm can read (JPEG, PNG, WebP, BMP, TIFF); pass an image file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{path} is damaged or truncated ({exc}); re-export or re-download the image") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit


def load_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as 8-bit RGB (+ alpha), upright, with a pixel limit.

    max_pixels=None or 0 disables the limit (for trusted huge inputs).
    """
    with _open_within_limit(Path(path), max_pixels) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb, alpha = _to_8bit_rgb(img)
        return LoadedImage(np.array(rgb, dtype=np.uint8), None if alpha is None else np.array(alpha, dtype=np.uint8))


def check_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Refuse (ImageError) a file that does not open as an image, is over the pixel limit or fails
    PIL's structure check, without decoding its pixels: fast enough to scan a training folder."""
    with _open_within_limit(Path(path), max_pixels) as img:
        img.verify()


def usable_images(files: list[Path], what: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[list[Path], list[Path]]:
    """(usable, skipped) of a training set's image files, checked once before training, so that one
    bad file is skipped with one warning (`what`: the folder, as the user knows it) instead of
    ending the run at the step that draws it."""
    usable, skipped, first_reason = [], [], ""
    for path in files:
        try:
            check_image(path, max_pixels)
            usable.append(path)
        except ImageError as exc:
            skipped.append(path)
            first_reason = first_reason or str(exc)
    warn_skipped(skipped, what, first_reason)
    return usable, skipped


def skipped_record(skipped: list[Path]) -> dict[str, object]:
    """What a model card says about a training set's skipped images."""
    return {"count": len(skipped), "files": [p.name for p in skipped[:20]]}


def warn_skipped(skipped: list[Path], what: str, reason: str) -> None:
    """One warning line on stderr for a training set's unusable images (count, first names, first reason)."""
    if skipped:
        names = ", ".join(p.name for p in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        print(f"warning: skipped {len(skipped)} unusable image(s) in {what} ({names}); the first: {reason}",
              file=sys.stderr)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) in [0, 1] -> uint8 (H, W, 3), clamped and rounded."""
    if x.dim() == 4:
        x = x[0]
    return x.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def save_image(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None, quality: int = 95) -> Path:
    """Write uint8 RGB (+ alpha) atomically, in the format that the extension names.

    Formats without alpha (JPEG, BMP) get the picture without its alpha channel.
    """
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot tell the output format from {path.name!r}; use one of {', '.join(_SAVE_FORMATS)}")
    img = Image.fromarray(rgb, "RGB")
    if alpha is not None and fmt in ("PNG", "WEBP", "TIFF"):
        img.putalpha(Image.fromarray(alpha, "L"))
    options: dict = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt in _EXIF_FORMATS:
        exif = Image.Exif()
        exif[EXIF_SOFTWARE] = SOFTWARE_TAG  # lets a later run over the folder skip its own outputs
        options["exif"] = exif
    try:
        with atomic_output(path) as tmp:
            img.save(tmp, format=fmt, **options)
    except OSError as exc:
        raise ImageError(f"could not write {path} ({exc}); check the folder exists and is writable") from None
    return path


EXIF_SOFTWARE = 0x0131  # the EXIF "Software" tag
SOFTWARE_TAG = "stylenorm"
_EXIF_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")


def made_by_stylenorm(path: str | os.PathLike) -> bool:
    """Whether an image file is one of our outputs (save_image tags them in EXIF "Software")."""
    try:
        with Image.open(path) as img:
            return str(img.getexif().get(EXIF_SOFTWARE, "")).startswith(SOFTWARE_TAG)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files in a folder (not recursive), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
