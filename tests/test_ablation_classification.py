"""The classification ablation (the GroupNorm paper's Figure 1 protocol): model, budget, verdicts, command."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch

from stylenorm.ablation import presets
from stylenorm.ablation.classification_task import ResNetClassifier, run_classification
from stylenorm.ablation.grid import Grid, run_grid
from stylenorm.ablation.presets import get_preset, lr_for, steps_for

# 400 training digits, the other 4600 of the bundled subset as the test split; a 4-wide network
TINY = replace(get_preset("classification", "small"), images=400, test_images=4600, width=4, epochs=4)


@pytest.mark.parametrize("norm", ["bn", "ln", "in", "gn2", "rms", "none"])
def test_every_norm_builds_a_classifier_with_a_norm_after_every_conv(norm):
    model = ResNetClassifier(norm, width=4)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    if norm != "none":
        norms = [m for m in model.modules() if m.__class__.__module__ == "stylenorm.norms"]
        assert len(norms) == len(convs)  # shortcut projections included


def test_the_budget_is_epochs_with_the_learning_rate_linear_in_the_batch():
    preset = get_preset("classification", "small")
    assert steps_for(preset, 2) == preset.epochs * preset.images // 2
    assert steps_for(preset, 32) * 32 == steps_for(preset, 2) * 2  # the same images at every batch size
    assert lr_for(preset, 2) == pytest.approx(preset.lr * 2 / preset.reference_batch)
    assert lr_for(preset, 32) == pytest.approx(16 * lr_for(preset, 2))


def test_a_run_learns_and_scores_batchnorm_in_both_modes(tmp_path, one_thread):
    result = run_classification(TINY, "bn", 8, 0, tmp_path)
    assert result["steps"] == 4 * 400 // 8 and result["images"] == 1600
    assert [epoch for epoch, _ in result["error_curve"]] == [1, 2, 3, 4]
    assert result["test_error"] < 0.7  # chance is 0.9; measured 0.45
    assert result["test_error"] == result["bn_eval_mode_error"]
    assert 0 <= result["bn_train_mode_error"] <= 1


def fake_figure1(bn_rise: float, gn_rise: float):
    """Test errors shaped like Figure 1: bn rises by bn_rise from batch 32 to 2, gn4 by gn_rise."""

    def run(norm, bs, seed, run_dir):
        small = {32: 0.0, 8: 0.5, 2: 1.0}[bs]
        rise = {"bn": bn_rise, "gn4": gn_rise, "ln": 0.002}[norm]
        error = 0.02 + rise * small + 0.0005 * (seed - 1)
        result = {"steps": 64 // bs, "images": 64, "lr": 0.1 * bs / 32, "test_error": error, "images_per_s": 100.0,
                  "error_curve": [[1, error * 2], [2, error]], "loss_curve": [[64, 0.5], [128, 0.2]]}
        if norm == "bn":
            result.update(bn_train_mode_error=error * 0.8, bn_eval_mode_error=error)
        return result

    return run


@pytest.mark.parametrize("bn_rise, gn_rise, verdict", [
    (0.05, 0.0, "supported"),       # the paper's shape
    (0.0, 0.0, "not supported"),    # BatchNorm does not degrade
    (0.05, 0.03, "not supported"),  # GroupNorm degrades too
])
def test_the_figure1_verdict_follows_from_the_intervals(tmp_path, bn_rise, gn_rise, verdict):
    grid = Grid(task="classification", norms=("bn", "gn4", "ln"), batch_sizes=(2, 8, 32), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_figure1(bn_rise, gn_rise)).read_text()
    assert f"GroupNorm's stays flat (Wu & He 2018, Figure 1: BN 23.6 % → 34.7 %, GN 24.1 % → 24.1 % from 32 to 2 images per batch): {verdict}." in text
    assert "95 % interval" in text
    for name in ("results.csv", "metric_vs_batch_size.png", "test_error_curves.png", "loss_curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {"task", "norm", "batch_size", "seed", "test_error"} <= set(rows[0])
    assert len(rows) == 27 and all(r["task"] == "classification" for r in rows)


def test_the_command_runs_the_task_grid_in_parallel_workers(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import cli

    monkeypatch.setitem(presets.PRESETS["classification"], "small", TINY)
    out = tmp_path / "ablate"
    result = CliRunner().invoke(cli.app, ["ablate", "classification", "--norms", "bn,gn2", "--batch-sizes", "8,16",
                                          "--seeds", "0", "--workers", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted((r["norm"], r["batch_size"]) for r in rows) == [("bn", "16"), ("bn", "8"), ("gn2", "16"), ("gn2", "8")]
    assert all(r["status"] == "ok" and 0 <= float(r["test_error"]) <= 1 for r in rows)
    assert json.loads((out / "settings.json").read_text())["task"] == "classification"


def test_the_task_defaults_are_figure1s_grid():
    defaults = presets.GRID_DEFAULTS["classification"]
    assert defaults.batch_sizes == (2, 4, 8, 16, 32) and len(defaults.seeds) >= 3
    widths = {get_preset("classification", "small").width * m for m in (1, 2, 4)}
    gn = [n for n in defaults.norms if n.startswith("gn")]
    assert len(gn) == 3 and all(all(w // int(n[2:]) > 1 for w in widths) for n in gn)  # none of them is IN
