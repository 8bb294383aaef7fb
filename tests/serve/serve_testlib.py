"""Helpers for the web-app tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

DEMO = Path(__file__).resolve().parents[2] / "stylenorm" / "data" / "demo"


def demo_cat(folder: Path, size: tuple[int, int]) -> Path:
    """The bundled cat photo resized to `size` (pick sides not divisible by 4), as folder/cat.png."""
    path = folder / "cat.png"
    with Image.open(DEMO / "chelsea.png") as img:
        img.convert("RGB").resize(size).save(path)
    return path


def tiny_vgg(path: Path) -> Path:
    """A VGG16-shaped loss network with random weights (the style tests' own), for the any-painting tab."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "style"))
    from style_testlib import make_tiny_vgg

    return make_tiny_vgg(path)


def tiny_clip(folder: Path, frames: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    """A short clip with sound: the camera panning over the demo cat, as folder/clip.mp4."""
    from stylenorm.bench.video import camera_clip, write_clip

    pictures, _ = camera_clip("chelsea.png", size, frames, seed=0)
    return write_clip(folder / "clip.mp4", pictures, rate=24)
