"""The bad-input catalogue: every case is one `error:` line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture()
def place(tmp_path, monkeypatch):
    """A working folder holding a good photo, two tiny ones, a broken YAML file and a plain file."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save("ok.png")
    Image.new("RGB", (1, 1)).save("tiny.png")
    Image.new("RGB", (3, 5)).save("t35.png")
    (tmp_path / "bad.yaml").write_text("steps: [1, 2\n")
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path


CASES = [
    (["stylize", "tiny.png", "-o", "out.png"], "1x1 px; the network needs at least 16 px"),
    (["stylize", "t35.png", "-o", "out.png"], "3x5 px"),
    (["stylize", "ok.png", "--max-size", "1", "-o", "out.png"], "--max-size 1 is below the 16 px"),
    (["stylize", "ok.png", "--device", "tpu", "-o", "out.png"], "unknown device 'tpu'"),
    (["stylize", "ok.png", "--max-pixels", "-1", "-o", "out.png"], "--max-pixels -1 is negative"),
    (["stylize", "ok.png", "-o", "afile/out.png"], "afile is a file, not a folder"),
    (["train-style", "--config", "bad.yaml"], "is not valid YAML at line 2"),
    (["diffusion", "sample", "--nrow", "0", "-o", "out.png"], "--nrow 0 is below 1"),
    (["diffusion", "sample", "-n", "2", "-o", "afile/out.png"], "afile is a file, not a folder"),
    (["diffusion", "train", "--ema-decay", "2", "--steps", "1", "-o", "run"], "ema_decay 2.0 is outside [0, 1)"),
    (["diffusion", "train", "--dropout", "1.5", "--steps", "1", "-o", "run"], "dropout 1.5 is outside [0, 1)"),
    (["diffusion", "train", "--channel-mults", "a,b", "--steps", "1", "-o", "run"], "comma-separated list of integers"),
    (["diffusion", "train", "--attention-resolutions", "5", "--steps", "1", "-o", "run"],
     "[5] are not feature-map sizes of this U-Net; its levels are [28, 14, 7]"),
    (["diffusion", "train-classifier", "--steps", "0", "-o", "c.safetensors"], "--steps 0 is below 1"),
    (["diffusion", "train-classifier", "--steps", "-3", "-o", "c.safetensors"], "--steps -3 is below 1"),
    (["diffusion", "train-classifier", "--holdout", "0", "-o", "c.safetensors"], "--holdout 0 is below 1"),
    (["ablate", "classification", "-o", "afile"], "afile is a file, not a folder"),
    (["bench", "norms", "--quick", "-o", "afile/bench.md"], "afile is a file, not a folder"),
    (["export", "onnx", "--style", "wave", "-o", "afile/m.onnx"], "afile is a file, not a folder"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_error_line_and_writes_nothing(place, run, args, message):
    before = sorted(p.name for p in place.rglob("*"))
    result = run(*args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in place.rglob("*")) == before  # no output, no temporary file, inputs intact


def test_one_bad_photo_among_several_does_not_stop_the_others(place, run):
    result = run("stylize", "tiny.png", "ok.png", "-o", "out")
    assert result.returncode == 2
    assert "tiny.png is 1x1 px" in result.stderr and "1 of the inputs failed" in result.stderr
    assert [p.name for p in (place / "out").iterdir()] == ["ok_starry_night.png"]
