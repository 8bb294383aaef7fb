"""A real (tiny) diffusion ablation grid: two norms x two batch sizes x a few steps."""

from __future__ import annotations

import csv

from stylenorm.ablation import presets
from stylenorm.ablation.grid import Grid, run_grid

TINY = presets.DiffusionPreset(images=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, lr=1e-3,
                               holdout=40, eval_timesteps=2, fid_samples=20, sample_steps=2, guidance=1.0)


def test_the_presets_score_samples_drawn_as_diffusion_sample_draws_them():
    from stylenorm.diffusion.sample import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS

    for name, preset in presets.PRESETS["diffusion"].items():  # 10 DDIM steps unguided: even the shipped model fails
        assert (preset.sampler, preset.sample_steps, preset.guidance) == (
            DEFAULT_SAMPLER, DEFAULT_STEPS, DEFAULT_GUIDANCE[DEFAULT_SAMPLER]), name


def test_tiny_grid_end_to_end_and_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(presets.PRESETS["diffusion"], "tiny", TINY)
    grid = Grid(task="diffusion", preset="tiny", norms=("bn", "gn8"), batch_sizes=(2, 4), seeds=(0,), cpu=True)
    report = run_grid(grid, tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(r["norm"], r["batch_size"], r["status"]) for r in rows] == [
        ("bn", "2", "ok"), ("bn", "4", "ok"), ("gn8", "2", "ok"), ("gn8", "4", "ok")]
    for r in rows:
        assert int(r["steps"]) * int(r["batch_size"]) == 8
        assert 0 < float(r["heldout_loss"]) < 10 and float(r["fid"]) > 0
        assert float(r["images_per_s"]) > 0 and float(r["memory_mb"]) > 0
    assert float(rows[0]["bn_train_mode_loss"]) > 0 and rows[2]["bn_train_mode_loss"] == ""
    for name in ("report.md", "loss_curves.png", "metric_vs_batch_size.png", "speed_memory.png", "image_grids.png"):
        assert (tmp_path / name).stat().st_size > 0
    run_dir = tmp_path / "runs" / "gn8_bs2_seed0"
    assert (run_dir / "samples.png").is_file() and not (run_dir / "train").exists()  # weights not kept
    assert "4 of 4 runs finished" in report.read_text()
    assert "Fréchet distance: 20 samples (dpm++sde, 2 steps, guidance 1) against" in report.read_text()

    before = (tmp_path / "runs.json").read_bytes()
    run_grid(grid, tmp_path, progress=False)  # everything finished: nothing retrains
    assert (tmp_path / "runs.json").read_bytes() == before
