"""The package carries its shipped weights and presets (so an installed wheel finds them)."""

from __future__ import annotations

from pathlib import Path

import stylenorm
from stylenorm.checkpoints import WEIGHTS_DIR
from stylenorm.config import CONFIG_DIR, resolve_config

PACKAGE = Path(stylenorm.__file__).resolve().parent


def test_weights_and_configs_are_found_inside_the_package():
    assert WEIGHTS_DIR.parent == PACKAGE and CONFIG_DIR.parent == PACKAGE
    assert {"styles.safetensors", "mnist.safetensors", "mnist_classifier.safetensors"} <= {p.name for p in WEIGHTS_DIR.iterdir()}
    assert resolve_config("diffusion_mnist").is_file()


def test_the_wheel_lists_them_as_package_data():
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]["stylenorm"]
    assert "weights/*.safetensors" in data and "weights/*.json" in data and "configs/*.yaml" in data
