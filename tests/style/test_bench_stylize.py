"""The fast stylize path: faithful to the float32 forward, and its benchmark."""

from __future__ import annotations

import pytest
import torch

from stylenorm.bench.stylize import photo, psnr_db
from stylenorm.errors import StylenormError
from stylenorm.style import stylize as sty
from stylenorm.style.stylize import resolve_precision, resolve_style, stylize_tensor


def _eager(choice, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return choice.model.net(x, choice.style_arg()).clamp(0, 1)


@pytest.mark.parametrize("style", ["starry_night", "udnie"])
def test_bf16_path_is_faithful_to_float32_on_the_shipped_weights(style):
    # coffee at 128 px: with every layer in bf16 these fell to 38.7 and 41.7 dB
    x = photo(128, 128, "coffee.png")
    choice = resolve_style(style)
    reference = _eager(choice, x)
    assert psnr_db(stylize_tensor(choice, x, precision="bf16", style_scale=None), reference) >= 40
    # the tiled forward (whole-image statistics) stays as close
    assert psnr_db(stylize_tensor(choice, x, precision="bf16", tile_size=64, style_scale=None), reference) >= 40


def test_fp32_path_is_the_plain_forward():
    x = photo(96, 80)
    choice = resolve_style("wave")
    assert torch.equal(stylize_tensor(choice, x, precision="fp32", style_scale=None), _eager(choice, x))


def test_auto_precision_follows_the_device(monkeypatch):
    monkeypatch.setattr(sty, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr(sty, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == torch.float32
    assert resolve_precision("fp16", "cpu") == torch.float16
    with pytest.raises(StylenormError, match="auto, fp32, bf16 or fp16"):
        resolve_precision("fp8", "cpu")


def test_bad_precision_is_one_line_and_exit_code_2(tmp_path, run):
    from PIL import Image

    src = tmp_path / "p.png"
    Image.new("RGB", (16, 16), (90, 120, 150)).save(src)
    result = run("stylize", str(src), "--precision", "fp8")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: ") and "fp8" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_quick_benchmark_writes_every_row_with_psnr(tmp_path, run):
    out = tmp_path / "bench.md"
    result = run("bench", "stylize", "--quick", "--device", "cpu", "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| device"))
    assert "PSNR vs eager (dB)" in header and "peak memory" in header
    rows = [line.split(" | ") for line in lines if line.startswith("| cpu")]
    onnx = [r for r in rows if r[2].startswith("onnxruntime")]  # with the onnx extra installed
    rows = [r for r in rows if r not in onnx]
    assert [(r[1], r[2].startswith("stylize")) for r in rows] == [
        ("64x64", False), ("64x64", True), ("96x64", False), ("96x64", True)]
    for row in rows[1::2] + onnx:
        assert float(row[-1].rstrip(" |")) >= 40
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    assert [(r[1], r[2]) for r in onnx] == [("64x64", "onnxruntime CPU, float32"), ("96x64", "onnxruntime CPU, float32")]
