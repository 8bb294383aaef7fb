"""The ablation grid: validation before training, resume, failures recorded, report files."""

from __future__ import annotations

import csv
import json

import pytest

from stylenorm.ablation.grid import Grid, check_settings, run_grid, settings
from stylenorm.errors import StylenormError


def fake_runner(calls, fail=(), still_falling=False, fid_factor=100.0, memory=True):
    """A stand-in for training: quality depends on the norm and batch size, BN has a train/eval gap. The
    training loss levels off after the first half of the run unless `still_falling`; the Fréchet distance
    is `fid_factor` × the held-out loss (real digits score about 100)."""

    def run(norm, bs, seed, run_dir):
        calls.append((norm, bs, seed))
        if (norm, bs) in fail:
            raise RuntimeError(f"out of memory in {norm}")
        run_dir.mkdir(parents=True, exist_ok=True)
        loss = {"bn": 0.5 / bs ** 0.5 + 0.1, "gn8": 0.12, "ln": 0.13, "rms": 0.125}[norm] + 0.001 * seed
        steps = 64 // bs
        result = {"steps": steps, "images": 64, "lr": 1e-3, "heldout_loss": loss, "fid": fid_factor * loss,
                  "images_per_s": 50.0 * bs ** 0.5 * (1.1 if norm == "rms" else 1.0), "memory_mb": 2.0 * bs if memory else None,
                  "loss_curve": [[i * bs, 1.0 / (1 + (i if still_falling else min(i, steps // 2)))]
                                 for i in range(1, steps + 1)]}
        if norm == "bn":
            result.update(bn_train_mode_loss=loss * 0.7, bn_eval_mode_loss=loss)
        return result

    return run


def test_grid_writes_every_file_and_checks_the_claims(tmp_path):
    calls = []
    grid = Grid(task="diffusion", norms=("bn", "gn8", "ln", "rms"), batch_sizes=(2, 8), seeds=(0, 1))
    report = run_grid(grid, tmp_path, progress=False, runner=fake_runner(calls))
    assert len(calls) == 16
    for name in ("results.csv", "report.md", "loss_curves.png", "metric_vs_batch_size.png", "speed_memory.png", "settings.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    text = report.read_text()
    assert "| bn | 0.4541 ± 0.00071 | 0.2773 ± 0.00071 |" in text  # mean ± std over the two seeds
    assert "BatchNorm degrades at small batch sizes; GroupNorm, LayerNorm and InstanceNorm do not: supported" in text
    assert "BatchNorm behaves differently in training" in text and "(+43%)" in text
    assert "reproduces InstanceNorm: supported" in text
    assert "GroupNorm is the right choice for the diffusion U-Net: supported" in text
    assert "RMSNorm is cheaper than LayerNorm at equal quality: supported" in text
    assert "- Convergence: converged (the training loss of the last quarter" in text
    assert "Memory: one training step of a fresh model" in text


@pytest.mark.parametrize("memory", [True, False])
def test_the_speed_plot_has_a_panel_only_for_what_was_measured(tmp_path, memory):
    from PIL import Image

    grid = Grid(task="diffusion", norms=("bn", "gn8"), batch_sizes=(2, 8), seeds=(0,))
    report = run_grid(grid, tmp_path, progress=False, runner=fake_runner([], memory=memory))
    width = Image.open(tmp_path / "speed_memory.png").width
    assert (width > 800) == memory  # two panels of 4.5 inches at 110 dpi, or one
    assert ("Memory: not measured for this task." in report.read_text()) == (not memory)


@pytest.mark.parametrize("runner_options, why", [
    ({"still_falling": True}, "still learning in 8 of 8 (norm, batch size) cells"),
    ({"fid_factor": 3000.0}, "the best norm's Fréchet distance at each batch size: batch 2 362, batch 8 362 (digits: at most 2 "
                             "× real digits' 100)"),
])
def test_runs_that_have_not_converged_get_numbers_but_no_verdict(tmp_path, runner_options, why):
    grid = Grid(task="diffusion", norms=("bn", "gn8", "ln", "rms"), batch_sizes=(2, 8), seeds=(0, 1))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_runner([], **runner_options)).read_text()
    assert "- Convergence: not converged; the claims on quality below make no verdict (" in text and why in text
    for claim in ("BatchNorm degrades at small batch sizes; GroupNorm, LayerNorm and InstanceNorm do not",
                  "BatchNorm behaves differently in training (batch statistics) and inference (running averages)",
                  "GroupNorm is the right choice for the diffusion U-Net", "RMSNorm is cheaper than LayerNorm at equal quality"):
        assert f"**{claim}: no verdict (not converged).** What the runs show: " in text
    assert "reproduces InstanceNorm: supported" in text  # not a claim on the runs


def test_a_claim_the_metrics_disagree_on_is_inconclusive(tmp_path):
    plain = fake_runner([])

    def fid_favours_bn(norm, bs, seed, run_dir):  # bn draws the best digits while denoising the worst
        result = plain(norm, bs, seed, run_dir)
        result["fid"] = 10.0 if norm == "bn" else 20.0 + bs
        return result

    grid = Grid(task="diffusion", norms=("bn", "gn8", "ln", "rms"), batch_sizes=(2, 8), seeds=(0, 1))
    text = run_grid(grid, tmp_path, progress=False, runner=fid_favours_bn).read_text()
    line = next(row for row in text.splitlines() if row.startswith("- **BatchNorm degrades at small batch sizes"))
    assert ": inconclusive.** By held-out loss: supported." in line
    assert "By Fréchet distance (MNIST features): not supported." in line and line.endswith("The metrics disagree.")
    right = next(row for row in text.splitlines() if row.startswith("- **GroupNorm is the right choice for the diffusion U-Net"))
    assert ": inconclusive.**" in right


def test_a_gap_in_the_means_that_the_seeds_do_not_show_is_inconclusive(tmp_path):
    plain = fake_runner([])

    def noisy_bn(norm, bs, seed, run_dir):  # bn behind on average at batch 2, but one seed is as good as gn8
        result = plain(norm, bs, seed, run_dir)
        if norm == "bn" and bs == 2:
            result["heldout_loss"] = [0.12, 1.2][seed]
            result["fid"] = 100 * result["heldout_loss"]
        return result

    grid = Grid(task="diffusion", norms=("bn", "gn8"), batch_sizes=(2, 8), seeds=(0, 1))
    text = run_grid(grid, tmp_path, progress=False, runner=noisy_bn).read_text()
    line = next(row for row in text.splitlines() if row.startswith("- **BatchNorm degrades at small batch sizes"))
    assert ": inconclusive.** By held-out loss: inconclusive." in line
    assert "the 95 % interval (Welch) of bn − gn8 at batch 2 above 0: +0.5395 (-6.3" in line


def test_a_train_eval_gap_that_the_seeds_do_not_show_is_inconclusive(tmp_path):
    plain = fake_runner([])

    def noisy_modes(norm, bs, seed, run_dir):  # eval mode much worse for seed 1, much better for seed 0
        result = plain(norm, bs, seed, run_dir)
        if norm == "bn":
            result.update(bn_train_mode_loss=result["heldout_loss"], bn_eval_mode_loss=result["heldout_loss"] * [0.5, 2.0][seed])
        return result

    grid = Grid(task="diffusion", norms=("bn", "gn8"), batch_sizes=(2, 8), seeds=(0, 1))
    text = run_grid(grid, tmp_path, progress=False, runner=noisy_modes).read_text()
    line = next(row for row in text.splitlines() if row.startswith("- **BatchNorm behaves differently in training"))
    assert ": inconclusive.**" in line and "whose 95 % interval (Welch) of eval − train mode excludes 0: batch 2 +0.1" in line


@pytest.mark.parametrize("spread, verdict", [(0.002, "not supported"), (0.2, "inconclusive")])
def test_a_rival_norm_beats_the_right_norm_only_where_the_seeds_show_it(tmp_path, spread, verdict):
    plain = fake_runner([])

    def ln_ahead(norm, bs, seed, run_dir):  # ln 25 % better than gn8 on average, by `spread` between seeds
        result = plain(norm, bs, seed, run_dir)
        if norm == "ln":
            result["heldout_loss"] = result["fid"] = 0.09 + spread * (seed - 0.5)
        return result

    grid = Grid(task="diffusion", norms=("bn", "gn8", "ln"), batch_sizes=(2, 8), seeds=(0, 1))
    text = run_grid(grid, tmp_path, progress=False, runner=ln_ahead).read_text()
    line = next(row for row in text.splitlines() if row.startswith("- **GroupNorm is the right choice for the diffusion U-Net"))
    assert f": {verdict}.** By held-out loss: {verdict}." in line
    assert "batch 2: gn8 0.1205, best other ln 0.09, gn8 − ln +0.0305 (" in line
    assert "no other norm is shown to beat gn" in line


@pytest.mark.parametrize("spread, verdict", [(0.0, "supported"), (20.0, "inconclusive")])
def test_rmsnorm_counts_as_faster_only_where_the_seeds_show_it(tmp_path, spread, verdict):
    plain = fake_runner([])

    def noisy_speed(norm, bs, seed, run_dir):  # rms 10 % faster on average, by `spread` images/s between seeds
        result = plain(norm, bs, seed, run_dir)
        if norm == "rms":
            result["images_per_s"] += spread * (seed - 0.5)
        return result

    grid = Grid(task="diffusion", norms=("bn", "gn8", "ln", "rms"), batch_sizes=(2, 8), seeds=(0, 1))
    text = run_grid(grid, tmp_path, progress=False, runner=noisy_speed).read_text()
    line = next(row for row in text.splitlines() if row.startswith("- **RMSNorm is cheaper than LayerNorm at equal quality"))
    assert f": {verdict}.**" in line and "batch 2: speed rms/ln ×1.10, rms − ln +7.071 (" in line


def test_resume_skips_finished_runs_and_retries_failed_ones(tmp_path):
    grid = Grid(task="diffusion", norms=("bn", "gn8"), batch_sizes=(2, 8), seeds=(0,))
    first = []
    run_grid(grid, tmp_path, progress=False, runner=fake_runner(first, fail={("gn8", 8)}))
    assert len(first) == 4  # the failure did not stop the grid
    failed = json.loads((tmp_path / "runs.json").read_text())["gn8_bs8_seed0"]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: out of memory in gn8"
    assert "gn8_bs8_seed0 | RuntimeError: out of memory in gn8" in (tmp_path / "report.md").read_text()
    second = []
    run_grid(grid, tmp_path, progress=False, runner=fake_runner(second))
    assert second == [("gn8", 8, 0)]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [r["status"] for r in rows] == ["ok"] * 4


def test_a_grid_of_per_run_result_files_is_read_and_folded_into_one_records_file(tmp_path):
    grid = Grid(task="diffusion", norms=("bn", "gn8"), batch_sizes=(2, 8), seeds=(0,))
    run_grid(grid, tmp_path, progress=False, runner=fake_runner([], fail={("gn8", 8)}))
    records = json.loads((tmp_path / "runs.json").read_text())
    for name, record in records.items():  # the layout grids had before runs.json
        (tmp_path / "runs" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "runs" / name / "result.json").write_text(json.dumps(record))
    (tmp_path / "runs.json").unlink()
    again = []
    run_grid(grid, tmp_path, progress=False, runner=fake_runner(again))
    assert again == [("gn8", 8, 0)]  # the finished runs were read from their old files and skipped
    assert json.loads((tmp_path / "runs.json").read_text())["gn8_bs8_seed0"]["status"] == "ok"
    assert not list((tmp_path / "runs").glob("*/result.json"))


@pytest.mark.parametrize("changes, message", [
    (dict(norms=("bn", "gn7")), "does not fit the diffusion model"),
    (dict(norms=("bn", "groupy")), "--norms: unknown norm spec"),
    (dict(batch_sizes=(1, 8)), "BatchNorm cannot train with a batch of 1"),
    (dict(preset="huge"), "unknown preset 'huge'"),
    (dict(task="segmentation"), "unknown ablation task"),
])
def test_bad_grids_fail_before_any_training(tmp_path, changes, message):
    calls = []
    grid = Grid(**{**dict(task="diffusion", norms=("bn", "gn8"), batch_sizes=(2, 8), seeds=(0,)), **changes})
    with pytest.raises(StylenormError, match=message):
        run_grid(grid, tmp_path / "out", progress=False, runner=fake_runner(calls))
    assert calls == [] and not (tmp_path / "out").exists()


def test_a_folder_with_another_grid_is_refused(tmp_path):
    run_grid(Grid(task="diffusion", norms=("gn8",), batch_sizes=(2,), seeds=(0,)), tmp_path, progress=False,
             runner=fake_runner([]))
    calls = []
    with pytest.raises(StylenormError, match="holds a grid with other settings \\(norms differ\\)"):
        run_grid(Grid(task="diffusion", norms=("ln",), batch_sizes=(2,), seeds=(0,)), tmp_path, progress=False,
                 runner=fake_runner(calls))
    assert calls == []


def test_a_grid_rerun_with_more_axis_values_extends_the_folder(tmp_path):
    run_grid(Grid(task="diffusion", norms=("bn", "gn8"), batch_sizes=(2, 8), seeds=(0,)), tmp_path, progress=False,
             runner=fake_runner([]))
    calls = []
    wider = Grid(task="diffusion", norms=("bn", "gn8", "ln"), batch_sizes=(2, 8), seeds=(0, 1))
    run_grid(wider, tmp_path, progress=False, runner=fake_runner(calls))
    assert sorted(calls) == sorted([(n, b, 1) for n in ("bn", "gn8") for b in (2, 8)] + [("ln", b, s) for b in (2, 8) for s in (0, 1)])
    assert json.loads((tmp_path / "settings.json").read_text())["seeds"] == [0, 1]
    assert len(list(csv.DictReader((tmp_path / "results.csv").open()))) == 12
    calls.clear()  # the extended grid is now the folder's: resuming it runs nothing
    run_grid(wider, tmp_path, progress=False, runner=fake_runner(calls))
    assert calls == []


@pytest.mark.parametrize("changes, differ", [
    (dict(seeds=(1, 2)), "seeds"),  # seed 0 would silently leave the report
    (dict(lrs=(0.1,)), "lrs"),  # a learning-rate axis where the runs used the preset's rate
    (dict(preset="full", seeds=(0, 1, 2)), "preset, preset_values, seeds"),
])
def test_a_rerun_that_drops_runs_or_changes_the_experiment_is_not_an_extension(tmp_path, changes, differ):
    base = dict(task="classification", norms=("gn4",), batch_sizes=(2,), seeds=(0, 1))
    grid = Grid(**base)
    (tmp_path / "settings.json").write_text(json.dumps(settings(grid)))
    with pytest.raises(StylenormError, match=f"other settings \\({differ} differ\\)"):
        check_settings(tmp_path, Grid(**{**base, **changes}))


def test_cli_rejects_bad_lists(tmp_path):
    from typer.testing import CliRunner

    from stylenorm import cli

    result = CliRunner().invoke(cli.app, ["ablate", "diffusion", "--batch-sizes", "2,x", "-o", str(tmp_path / "o")])
    assert result.exit_code != 0 and "--batch-sizes must be a comma-separated list of integers" in str(result.exception)
