"""Fixtures for the style tests: a random VGG16-shaped loss network, small photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from style_testlib import make_tiny_vgg, smooth_photo


@pytest.fixture(scope="session")
def tiny_vgg(tmp_path_factory) -> Path:
    return make_tiny_vgg(tmp_path_factory.mktemp("vgg") / "vgg_tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    content = root / "content"
    content.mkdir()
    for i in range(6):
        Image.fromarray(smooth_photo(40 + 4 * i, 48, i)).save(content / f"photo{i}.jpg", quality=95)
    styles = []
    for i, name in enumerate(["stripes", "dots"]):
        y, x = np.mgrid[0:64, 0:64]
        pattern = ((np.sin(x / (2 + i)) + np.cos(y / (3 - i * 0.5))) * 60 + 128).clip(0, 255).astype(np.uint8)
        rgb = np.stack([pattern, 255 - pattern, np.roll(pattern, 7, axis=1)], -1)
        Image.fromarray(rgb).save(root / f"{name}.png")
        styles.append(root / f"{name}.png")
    return {"content": content, "style_a": styles[0], "style_b": styles[1]}


