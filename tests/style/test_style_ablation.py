"""A real (tiny) style ablation grid, with held-out photos that training never sees."""

from __future__ import annotations

import csv

import pytest

from stylenorm.ablation import presets
from stylenorm.ablation.grid import Grid, run_grid
from stylenorm.errors import StylenormError

TINY = presets.StylePreset(images=4, image_size=32, style_size=48, lr=1e-3, style_weight=0.15, tv_weight=0.3,
                           holdout=2, eval_photos=2, mixed_precision="no")


def test_tiny_style_grid(tmp_path, monkeypatch, tiny_vgg, tiny_data):
    monkeypatch.setitem(presets.PRESETS["style"], "tiny", TINY)
    grid = Grid(task="style", preset="tiny", norms=("in", "bn"), batch_sizes=(2, 4), seeds=(0,),
                style_image=str(tiny_data["style_a"]), data=str(tiny_data["content"]), vgg_weights=str(tiny_vgg), cpu=True)
    report = run_grid(grid, tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [r["status"] for r in rows] == ["ok"] * 4, [r["error"] for r in rows]
    for r in rows:
        assert float(r["heldout_content"]) > 0 and float(r["heldout_style"]) > 0
        assert float(r["heldout_loss"]) == pytest.approx(float(r["heldout_content"]) + 0.15 * float(r["heldout_style"]))
    assert all(r["bn_train_mode_loss"] for r in rows if r["norm"] == "bn")
    assert (tmp_path / "runs" / "in_bs2_seed0" / "stylized.png").is_file()
    assert (tmp_path / "image_grids.png").is_file()
    assert "InstanceNorm is the right choice for style transfer:" in report.read_text()


def test_style_grid_needs_its_inputs(tmp_path, tiny_vgg):
    grid = Grid(task="style", norms=("in",), batch_sizes=(2,), seeds=(0,), style_image=str(tmp_path / "missing.jpg"),
                data=str(tmp_path), vgg_weights=str(tiny_vgg))
    with pytest.raises(StylenormError, match="--style-image .* not found"):
        run_grid(grid, tmp_path / "out", progress=False)
