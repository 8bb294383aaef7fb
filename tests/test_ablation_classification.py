"""The classification ablation (the GroupNorm paper's Figure 1 protocol): model, budget, verdicts, command."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import pytest
import torch

from stylenorm.ablation import presets
from stylenorm.ablation.classification_task import ResNetClassifier, map_sizes, run_classification
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


def test_the_layout_is_resnet50s_stem_and_three_stages_down_to_4x4():
    model = ResNetClassifier("bn", width=4)
    seen = []
    for stage in model.stages:
        stage.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape[1:])))
    model(torch.randn(2, 1, 28, 28))
    assert seen == [(4, 7, 7), (8, 4, 4), (16, 4, 4)]
    assert map_sizes() == [7, 7, 4, 4]


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


def fake_figure1(bn_rise: float, gn_rise: float, train_mode_factor: float = 0.8, gn_noise: float = 0.0):
    """Test errors shaped like Figure 1: bn rises by bn_rise from batch 32 to 2, gn4 by gn_rise; bn's
    train-mode error is train_mode_factor times its eval-mode error; gn4's seeds differ by gn_noise at batch 2."""

    def run(norm, bs, seed, run_dir):
        small = {32: 0.0, 8: 0.5, 2: 1.0}[bs]
        rise = {"bn": bn_rise, "gn4": gn_rise, "gn2": 0.03, "ln": 0.002}[norm]  # gn2 rises, when it is in the grid
        error = 0.02 + rise * small + 0.0005 * (seed - 1) + (gn_noise * (seed - 1) if norm == "gn4" and bs == 2 else 0)
        result = {"steps": 64 // bs, "images": 64, "lr": 0.1 * bs / 32, "test_error": error, "images_per_s": 100.0,
                  "error_curve": [[1, error * 2], [2, error], [3, error]], "loss_curve": [[64, 0.5], [128, 0.2]]}
        if norm == "bn":
            result.update(bn_train_mode_error=error * train_mode_factor, bn_eval_mode_error=error)
        return result

    return run


@pytest.mark.parametrize("bn_rise, gn_rise, gn_noise, verdict", [
    (0.05, 0.0, 0.0, "supported"),       # the paper's shape
    (0.0, 0.0, 0.0, "not supported"),    # BatchNorm does not degrade
    (0.05, 0.03, 0.0, "not supported"),  # GroupNorm degrades too
    (0.05, 0.004, 0.01, "inconclusive"),  # GroupNorm's interval reaches from below 0 to above the +0.5-point bound
])
def test_the_figure1_verdict_follows_from_the_intervals(tmp_path, bn_rise, gn_rise, gn_noise, verdict):
    grid = Grid(task="classification", norms=("bn", "gn4", "ln"), batch_sizes=(2, 8, 32), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_figure1(bn_rise, gn_rise, gn_noise=gn_noise)).read_text()
    assert (f"GroupNorm's stays flat (Wu & He 2018, Figure 1: BN 23.6 % → 34.7 %, GN 24.1 % → 24.1 % from 32 to 2 images per "
            f"batch): {verdict}.") in text
    assert "95 % interval" in text
    for name in ("results.csv", "metric_vs_batch_size.png", "test_error_curves.png", "loss_curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {"task", "norm", "batch_size", "seed", "test_error"} <= set(rows[0])
    assert len(rows) == 27 and all(r["task"] == "classification" for r in rows)



def test_a_test_error_still_falling_at_the_largest_batch_gets_no_figure1_verdict(tmp_path):
    shaped = fake_figure1(0.05, 0.0)

    def short(norm, bs, seed, run_dir):  # gn4 still learning at batch 32: 1.2 points down in the last epoch
        result = shaped(norm, bs, seed, run_dir)
        if norm == "gn4" and bs == 32:
            result["error_curve"][-1][1] -= 0.012
        return result

    grid = Grid(task="classification", norms=("bn", "gn4", "ln"), batch_sizes=(2, 32), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=short).read_text()
    assert ("- Convergence: not converged; the claims on quality below make no verdict (the test error's change over "
            "the last epoch at batch 32, mean over seeds: bn +0.00%, gn4 -1.20%, ln +0.00%") in text
    assert "still moving: gn4)" in text
    assert "from 32 to 2 images per batch): no verdict (not converged).** What the runs show: bn: " in text

def test_one_group_count_flat_and_another_rising_is_partly_supported(tmp_path):
    grid = Grid(task="classification", norms=("bn", "gn4", "gn2"), batch_sizes=(2, 32), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_figure1(0.05, 0.0)).read_text()
    line = next(row for row in text.splitlines() if "GroupNorm's stays flat" in row)
    assert "): partly supported." in line and "gn4 flat, gn2 rises." in line


@pytest.mark.parametrize("factor, explained", [(0.8, True), (1.5, False)])
def test_the_bn_modes_evidence_explains_only_a_worse_eval_mode(tmp_path, factor, explained):
    grid = Grid(task="classification", norms=("bn", "gn4", "ln"), batch_sizes=(2, 8, 32), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_figure1(0.0, 0.0, factor)).read_text()
    line = next(row for row in text.splitlines() if "behaves differently in training" in row)
    assert "supported" in line
    assert ("still remember their initial values" in line) == explained
    assert ("eval mode is the better of the two at every batch size" in line) == (not explained)


def test_the_command_runs_the_task_grid_in_parallel_workers(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stylenorm import cli

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


# ---------------------------------------------------------------- the learning-rate axis
# 64 training digits for one epoch: a run takes seconds, most of them scoring the test split
LR_TINY = replace(TINY, images=64, test_images=5000 - 64, epochs=1)


def test_the_lr_axis_names_runs_fills_a_column_and_records_a_diverged_run(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stylenorm import cli

    monkeypatch.setitem(presets.PRESETS["classification"], "small", LR_TINY)
    out = tmp_path / "ablate"
    args = ["ablate", "classification", "--norms", "none", "--batch-sizes", "8", "--seeds", "0", "--lrs", "0.1,100000",
            "--workers", "2", "-o", str(out)]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output  # a diverged run is a result, not a failure
    assert sorted(json.loads((out / "runs.json").read_text())) == ["none_bs8_lr0.1_seed0", "none_bs8_lr100000_seed0"]
    rows = {float(r["base_lr"]): r for r in csv.DictReader((out / "results.csv").open())}
    assert rows[0.1]["status"] == "ok" and float(rows[0.1]["lr"]) == pytest.approx(0.1 * 8 / 32)  # scaled to batch 8
    assert rows[100000]["status"] == "diverged" and "nan" in rows[100000]["error"]
    assert json.loads((out / "settings.json").read_text())["lrs"] == [0.1, 100000.0]
    report = (out / "report.md").read_text()
    # the lr table's row: one epoch of 64 digits leaves lr 0.1 at chance (not stable), 100000 diverges
    assert re.search(r"^\| none \| [\d.]+% ± [\d.]+% \(not stable\) \| diverged \| none \|$", report, re.M), report
    assert "## Diverged runs" in report and "## Failed runs" not in report
    stamp = (out / "runs.json").stat().st_mtime_ns
    assert CliRunner().invoke(cli.app, args).exit_code == 0
    assert (out / "runs.json").stat().st_mtime_ns == stamp  # nothing rerun, the diverged run included


def test_without_lrs_the_names_and_columns_are_as_before(tmp_path):
    from stylenorm.ablation.report import CSV_COLUMNS

    grid = Grid(task="classification", norms=("bn", "gn4", "ln"), batch_sizes=(2, 8, 32), seeds=(0, 1, 2))
    run_grid(grid, tmp_path, progress=False, runner=fake_figure1(0.05, 0.0))
    assert "bn_bs2_seed0" in json.loads((tmp_path / "runs.json").read_text())
    assert next(csv.reader((tmp_path / "results.csv").open())) == CSV_COLUMNS
    assert "lrs" not in json.loads((tmp_path / "settings.json").read_text())
    assert "Learning rate" not in (tmp_path / "report.md").read_text()


def fake_lr_sweep(limits: dict[str, float], calls: list | None = None):
    """Test errors of 2 % up to each norm's limit; above it a run ends at 70 % error (not stable) and
    above twice its limit its loss becomes NaN."""
    from stylenorm.training import NonFiniteLossError

    def run(norm, bs, seed, run_dir, base_lr):
        if calls is not None:
            calls.append((norm, base_lr, seed))
        if base_lr > 2 * limits[norm]:
            raise NonFiniteLossError(f"the loss became nan at step 7 (lr {base_lr})")
        error = (0.02 if base_lr <= limits[norm] else 0.7) + 0.001 * seed
        result = {"steps": 10, "images": 320, "lr": base_lr * bs / 32, "test_error": error, "images_per_s": 100.0,
                  "error_curve": [[1, error], [2, error]], "loss_curve": [[320, 0.5]]}
        if norm == "bn":
            result.update(bn_train_mode_error=error, bn_eval_mode_error=error)
        return result

    return run


LR_CLAIM = "BatchNorm allows a higher learning rate than the other norms"


@pytest.mark.parametrize("limits, verdict, highest", [
    ({"bn": 1.6, "gn4": 0.8, "none": 0.2}, "supported", {"bn": "1.6", "gn4": "0.8", "none": "0.2"}),
    ({"bn": 0.8, "gn4": 0.8, "none": 0.2}, "not supported", {"bn": "0.8", "gn4": "0.8", "none": "0.2"}),
    ({"bn": 0.4, "gn4": 0.8, "none": 0.05}, "not supported", {"bn": "0.4", "gn4": "0.8", "none": "none"}),
    ({"bn": 9.0, "gn4": 9.0, "none": 0.2}, "inconclusive", {"bn": "3.2", "gn4": "3.2", "none": "0.2"}),  # both at the top
])
def test_the_highest_stable_lr_and_the_lr_verdict_follow_from_the_runs(tmp_path, limits, verdict, highest):
    grid = Grid(task="classification", norms=tuple(limits), batch_sizes=(32,), seeds=(0, 1), lrs=(0.1, 0.2, 0.4, 0.8, 1.6, 3.2))
    calls = []
    text = run_grid(grid, tmp_path, progress=False, runner=fake_lr_sweep(limits, calls)).read_text()
    table = {line.split(" | ")[0][2:]: line.rstrip(" |").split(" | ")[-1] for line in text.splitlines()
             if line.startswith("| ") and line.count("|") == len(grid.lrs) + 3}  # the lr table
    assert {n: table[n] for n in limits} == highest
    assert f"**{LR_CLAIM} (the seeds: \"BN enables significantly higher learning rates\"): {verdict}.**" in text
    claim_line = next(line for line in text.splitlines() if LR_CLAIM in line)
    for norm, value in highest.items():  # the verdict cites the numbers it rests on
        assert (f"{norm}: {value} (test error there 2." if value != "none" else f"{norm}: not stable even at 0.1") in claim_line
    assert (tmp_path / "test_error_vs_lr.png").stat().st_size > 0
    run_grid(grid, tmp_path, progress=False, runner=fake_lr_sweep(limits, calls))
    assert len(calls) == len(grid.runs())  # the second pass reran nothing, the diverged runs included


def test_a_failed_run_above_the_limit_makes_the_lr_verdict_inconclusive(tmp_path):
    grid = Grid(task="classification", norms=("bn", "gn4"), batch_sizes=(32,), seeds=(0, 1), lrs=(0.1, 0.4, 1.6))
    sweep = fake_lr_sweep({"bn": 0.4, "gn4": 0.4})  # a tie at 0.4 ("not supported") but for the crash

    def crashing(norm, bs, seed, run_dir, base_lr):
        if norm == "gn4" and base_lr == 0.4 and seed == 1:
            raise RuntimeError("out of memory")
        return sweep(norm, bs, seed, run_dir, base_lr)

    text = run_grid(grid, tmp_path, progress=False, runner=crashing).read_text()
    assert f"{LR_CLAIM} (the seeds: \"BN enables significantly higher learning rates\"): inconclusive.**" in text
    assert "could raise the limit of gn4" in text and "## Failed runs" in text


# ---------------------------------------------------------------- the group count (Table 3)
def fake_group_count(errors: dict[str, float]):
    def run(norm, bs, seed, run_dir):
        error = errors[norm] + 0.001 * (seed - 1)
        return {"steps": 10, "images": 320, "lr": 0.1, "test_error": error, "images_per_s": 100.0,
                "error_curve": [[1, error], [2, error]], "loss_curve": [[320, 0.5]]}

    return run


GROUP_CLAIM = "An intermediate group count beats both ends, G = 1 (LayerNorm) and G = C (InstanceNorm)"


@pytest.mark.parametrize("errors, verdict", [
    ({"gn1": 0.05, "gn2": 0.03, "gn4": 0.02, "gn8": 0.025, "gn16": 0.03, "in": 0.06}, "supported"),
    ({"gn1": 0.05, "gn2": 0.03, "gn4": 0.03, "gn8": 0.035, "gn16": 0.03, "in": 0.02}, "not supported"),  # IN best
    ({"gn1": 0.0205, "gn2": 0.03, "gn4": 0.02, "gn8": 0.025, "gn16": 0.03, "in": 0.06}, "inconclusive"),  # gn1 within noise
])
def test_a_group_count_grid_gets_table3_and_its_verdict(tmp_path, errors, verdict):
    grid = Grid(task="classification", norms=tuple(errors), batch_sizes=(32,), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_group_count(errors)).read_text()
    assert "## Group count (the GroupNorm paper's Table 3)" in text
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in text.splitlines()
            if line.startswith("| gn") or line.startswith("| in ")}
    # G at widths 16/32/64, channels per group, the error, the difference to the best
    assert rows["gn1"][:2] == ["1/1/1", "16/32/64"] and rows["gn16"][:2] == ["16/16/16", "1/2/4"]
    assert rows["in"][:2] == ["16/32/64", "1/1/1"]
    best = min(errors, key=errors.get)
    assert rows[best][3].strip(" |") == "best"
    assert rows["gn2"][2].startswith(f"{errors['gn2']:.2%} ± ")
    assert (f"**{GROUP_CLAIM} (the seeds: GroupNorm is \"a sweet spot between the instance-level and layer-level "
            f"approaches\"): {verdict}.**") in text
    assert "Not counted as intermediate: gn16" in text


def test_only_a_grid_of_fixed_group_counts_gets_the_group_table(tmp_path):
    grid = Grid(task="classification", norms=("bn", "gn4", "ln"), batch_sizes=(2, 8, 32), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_figure1(0.05, 0.0)).read_text()
    assert "Group count" not in text  # bn is no GroupNorm


@pytest.mark.parametrize("task, lrs, message", [
    ("diffusion", (1e-3,), "implemented for the classification task only"),  # no threshold of stability
    ("classification", (0.1, -0.1), "must be positive"),
    ("classification", (0.1, 0.1000000001), "agree to 6 digits"),  # the two would share a run folder
])
def test_an_lr_axis_that_cannot_be_run_or_judged_is_refused_before_training(tmp_path, task, lrs, message):
    from stylenorm.errors import StylenormError

    with pytest.raises(StylenormError, match=message):
        run_grid(Grid(task=task, norms=("gn4",), batch_sizes=(32,), seeds=(0,), lrs=lrs), tmp_path, progress=False,
                 runner=lambda *args, **kwargs: pytest.fail("trained"))


def test_a_rate_stable_again_above_an_unstable_one_does_not_raise_the_limit(tmp_path):
    sweep, fine = fake_lr_sweep({"bn": 0.2, "gn4": 0.4}), fake_lr_sweep({"bn": 1.0})

    def lucky(norm, bs, seed, run_dir, base_lr):  # bn is unstable at 0.4, but both seeds land well at 0.8
        return (fine if (norm, base_lr) == ("bn", 0.8) else sweep)(norm, bs, seed, run_dir, base_lr)

    grid = Grid(task="classification", norms=("bn", "gn4"), batch_sizes=(32,), seeds=(0, 1), lrs=(0.1, 0.2, 0.4, 0.8))
    text = run_grid(grid, tmp_path, progress=False, runner=lucky).read_text()
    assert "| bn | " in text and re.search(r"^\| bn \|.* \| 0\.2 \|$", text, re.M)
    assert "Stable again above its first unstable rate (not counted): bn at 0.8." in text
    assert f"{LR_CLAIM} (the seeds: \"BN enables significantly higher learning rates\"): not supported.**" in text


@pytest.mark.parametrize("batch_size, onednn", [(2, False), (4, False), (8, False), (16, True), (32, True)])
def test_small_batches_train_without_onednn_and_the_switch_is_restored(tmp_path, monkeypatch, batch_size, onednn):
    from stylenorm.ablation import classification_task

    seen = []
    real_fit = classification_task.fit

    def fit(task, config):
        seen.append(torch._C._get_mkldnn_enabled())
        return real_fit(task, replace(config, steps=2 * task.per_epoch, eval_every=task.per_epoch))

    monkeypatch.setattr(classification_task, "fit", fit)
    before = torch._C._get_mkldnn_enabled()
    result = run_classification(replace(TINY, epochs=2), "gn2", batch_size, 0, tmp_path)
    assert seen == [onednn]
    assert torch._C._get_mkldnn_enabled() == before
    assert 0 <= result["test_error"] <= 1


@pytest.mark.parametrize("batch_size, onednn", [(2, False), (500, True)])
def test_the_test_split_is_scored_with_its_own_batch_sizes_onednn_choice(batch_size, onednn):
    from stylenorm.ablation.classification_task import load_split, test_error

    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x):
            seen.append(torch._C._get_mkldnn_enabled())
            return torch.zeros(len(x), 10)

    _, held = load_split(get_preset("classification", "small"))
    before = torch._C._get_mkldnn_enabled()
    torch.backends.mkldnn.enabled = not onednn
    try:
        assert test_error(Recorder().eval(), held, batch_size) == pytest.approx((held.labels != 0).float().mean().item())
        assert set(seen) == {onednn} and torch._C._get_mkldnn_enabled() == (not onednn)
    finally:
        torch.backends.mkldnn.enabled = before


def test_the_optimizer_updates_every_parameter_in_one_fused_step():
    from stylenorm.ablation.classification_task import ClassificationTask

    task = ClassificationTask(get_preset("classification", "small"), "gn4", 2, 0)
    model = ResNetClassifier("gn4", width=4)
    optimizer, scheduler = task.make_optimizer(model, 0.1)
    assert optimizer.defaults["fused"] and optimizer.defaults["nesterov"]
    before = [p.detach().clone() for p in model.parameters()]
    torch.nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([1, 2])).backward()
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if b.grad is not None)


def _statistic_rows(text: str) -> dict[str, list[str]]:
    section = text.split("## Values per statistic")[1].split("## Results")[0]
    return {line.split(" | ")[0][2:]: [c.strip(" |") for c in line.split(" | ")[1:]]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith("| norm")}


def test_the_report_lists_the_values_each_statistic_is_over(tmp_path):
    grid = Grid(task="classification", norms=("bn", "gn4", "ln"), batch_sizes=(2, 8, 32), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_figure1(0.05, 0.0)).read_text()
    rows = _statistic_rows(text)
    # the 4 x 4 px stages: bn per channel over batch x 16 px, gn4 over 32/4 channels x 16 px, ln over 32 x 16
    assert rows["bn"] == ["32", "128", "512", "stages.1.norm1 (32 ch, 4×4 px)"]
    assert rows["gn4"][:3] == ["128"] * 3 and rows["ln"][:3] == ["512"] * 3
    assert text.count("⚠") == 1  # the legend alone


def test_statistics_over_fewer_than_16_values_are_flagged_in_the_results(tmp_path, monkeypatch):
    from stylenorm.ablation import classification_task

    monkeypatch.setattr(classification_task, "STAGE_STRIDES", (1, 2, 2, 2))  # the earlier model, down to 1 x 1
    grid = Grid(task="classification", norms=("bn", "gn4", "ln"), batch_sizes=(2, 8, 32), seeds=(0, 1, 2))
    text = run_grid(grid, tmp_path, progress=False, runner=fake_figure1(0.05, 0.0)).read_text()
    assert _statistic_rows(text)["bn"] == ["2 ⚠", "8 ⚠", "32", "stages.3.norm1 (128 ch, 1×1 px)"]
    results = text.split("## Results")[1].split("## ")[0]
    bn_error_row = next(line for line in results.splitlines() if line.startswith("| bn "))
    assert bn_error_row.count("⚠") == 2  # batch 2 and 8; images/s is not a result about the statistic
    assert json.loads((tmp_path / "settings.json").read_text())["feature_maps"] == [7, 7, 4, 2, 1]
