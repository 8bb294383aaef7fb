"""Presets merged into config dataclasses: YAML values, CLI overrides, type checks."""

from dataclasses import dataclass

import pytest

from stylenorm.config import build_config
from stylenorm.errors import StylenormError


@dataclass
class Example:
    steps: int = 10
    lr: float = 1e-3
    seed: int | None = None
    name: str = "x"


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_exponent_numbers_become_floats(tmp_path):
    # YAML 1.1 reads 5e4 (no dot) as a string; the config must still mean the number
    cfg = build_config(Example, write(tmp_path, "lr: 5e4\nsteps: 1e3\nseed: 3\n"), {})
    assert cfg.lr == 50000.0 and isinstance(cfg.lr, float)
    assert cfg.steps == 1000 and isinstance(cfg.steps, int)
    assert cfg.seed == 3


def test_cli_overrides_win_and_none_is_ignored(tmp_path):
    cfg = build_config(Example, write(tmp_path, "steps: 5\nname: a\n"), {"steps": 7, "name": None})
    assert (cfg.steps, cfg.name) == (7, "a")


@pytest.mark.parametrize("text, message", [
    ("steps: many\n", "steps must be an integer"),
    ("steps: 2.5\n", "steps must be an integer"),
    ("lr: fast\n", "lr must be a number"),
    ("lr: .nan\n", "lr is .* not a finite number"),
    ("lr: .inf\n", "lr is .* not a finite number"),
    ("batch: 3\n", "unknown config option(s) batch"),
    ("- 1\n- 2\n", "must be a mapping"),
])
def test_bad_values_name_the_option(tmp_path, text, message):
    with pytest.raises(StylenormError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(Example, write(tmp_path, text), {})
