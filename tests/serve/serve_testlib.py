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
