"""results.csv, plots and report.md of an ablation grid, with a verdict on each claim of the seeds."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from stylenorm.ablation.claims import (
    LABELS,
    Convergence,
    check_claims,
    fmt_difference,
    fmt_metric,
    group_count_claim,
    group_counts,
    highest_stable_lr,
    lr_claim,
    lr_stability,
    stability_rule,
    without_verdict,
)
from stylenorm.ablation.presets import preset_dict
from stylenorm.ablation.records import FINISHED, Grid, Table, collect, difference_interval, run_dir, run_name
from stylenorm.ablation.tasks import TASKS, AblationTask, get_task
from stylenorm.atomic import atomic_output
from stylenorm.norms import Smallest, norm_layer_inputs, smallest_statistic

# One schema for every task, so that the CSVs of different tasks line up (a task leaves the
# columns it does not measure empty); it holds every task's metrics (tests/test_ablation_grid.py).
CSV_COLUMNS = ["task", "norm", "batch_size", "seed", "status", "steps", "images", "lr", "test_error", "heldout_loss",
               "fid", "heldout_content", "heldout_style", "bn_train_mode_error", "bn_eval_mode_error",
               "bn_train_mode_loss", "bn_eval_mode_loss", "images_per_s", "memory_mb", "error"]
# A grid with a learning-rate axis adds its value after the seed (`lr` is the rate the run used at its batch size).
LR_AXIS_COLUMN = "base_lr"


def csv_columns(grid: Grid) -> list[str]:
    if not grid.lrs:
        return CSV_COLUMNS
    at = CSV_COLUMNS.index("seed") + 1
    return [*CSV_COLUMNS[:at], LR_AXIS_COLUMN, *CSV_COLUMNS[at:]]


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] = CSV_COLUMNS) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    with atomic_output(path) as tmp:
        tmp.write_text(buffer.getvalue())


# ---------------------------------------------------------------- plots
def was_measured(table: Table, key: str) -> bool:
    """Whether any finished run recorded `key` (a task without a memory probe leaves memory_mb empty)."""
    return any(r.get(key) is not None for r in table.ok)


def _batch_ticks(ax, grid: Grid) -> None:
    from matplotlib.ticker import NullLocator

    ax.set_xticks(list(grid.batch_sizes), [str(b) for b in grid.batch_sizes])
    ax.xaxis.set_minor_locator(NullLocator())  # log-scale minor labels would overprint the batch sizes


def make_plots(out_dir: Path, grid: Grid, task: AblationTask, rows: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = Table(at_lr(rows, reference_lr(grid, task)))
    written = []

    def save(fig, name: str, dpi: int = 110) -> None:
        fig.tight_layout()
        with atomic_output(out_dir / name) as tmp:
            fig.savefig(tmp, dpi=dpi)
        plt.close(fig)
        written.append(name)

    # loss curves, one panel per batch size
    fig, axes = plt.subplots(1, len(grid.batch_sizes), figsize=(4.2 * len(grid.batch_sizes), 3.4), squeeze=False)
    for ax, bs in zip(axes[0], grid.batch_sizes):
        for norm in grid.norms:
            curves = [r["loss_curve"] for r in table.ok if r["norm"] == norm and r["batch_size"] == bs and r.get("loss_curve")]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            xs = [curves[0][i][0] for i in range(length)]
            ys = [statistics.fmean(c[i][1] for c in curves) for i in range(length)]
            ax.plot(xs, ys, label=norm)
        ax.set(title=f"batch {bs}", xlabel="training images", ylabel="training loss", yscale="log")
    axes[0][-1].legend(fontsize=7)
    save(fig, "loss_curves.png")

    # metric vs batch size (the shape of Figure 1 of the GroupNorm paper)
    metrics = task.metrics
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6), squeeze=False)
    for ax, key in zip(axes[0], metrics):
        for norm in grid.norms:
            pts = [(bs, table.mean(norm, bs, key), table.half_interval(norm, bs, key)) for bs in grid.batch_sizes]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3, label=norm)
        ax.set(xscale="log", xlabel="batch size", ylabel=LABELS[key], title=f"{LABELS[key]} vs batch size (95 % intervals)")
        if key == "test_error":  # the GroupNorm paper's Figure 1 reads in percent
            from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

            # log: a norm that fails (tens of percent) would flatten the others' 1-3 % into one line
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(FixedLocator([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{100 * value:g} %"))
            ax.set_ylim(top=1.0)  # an error cannot pass 100 %, however wide a failed run makes the interval
        _batch_ticks(ax, grid)
    axes[0][-1].legend(fontsize=7)
    save(fig, "metric_vs_batch_size.png")

    if task.epoch_error_curves:  # has the budget converged? test error after each epoch
        fig, axes = plt.subplots(1, len(grid.batch_sizes), figsize=(4.2 * len(grid.batch_sizes), 3.4), squeeze=False)
        for ax, bs in zip(axes[0], grid.batch_sizes):
            for norm in grid.norms:
                curves = [r["error_curve"] for r in table.ok if r["norm"] == norm and r["batch_size"] == bs]
                if curves:
                    length = min(len(c) for c in curves)
                    ax.plot([curves[0][i][0] for i in range(length)],
                            [statistics.fmean(c[i][1] for c in curves) for i in range(length)], marker=".", label=norm)
            ax.set(title=f"batch {bs}", xlabel="epoch", ylabel="test error", yscale="log")
        axes[0][-1].legend(fontsize=7)
        save(fig, "test_error_curves.png")

    # throughput and memory: a panel only for what the task measured (classification has no memory probe)
    measured = [k for k in ("images_per_s", "memory_mb") if was_measured(table, k)] or ["images_per_s"]
    fig, axes = plt.subplots(1, len(measured), figsize=(4.5 * len(measured), 3.6), squeeze=False)
    for ax, key in zip(axes[0], measured):
        for norm in grid.norms:
            pts = [(bs, table.mean(norm, bs, key)) for bs in grid.batch_sizes]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=norm)
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel=LABELS[key], title=LABELS[key])
        _batch_ticks(ax, grid)
    axes[0][-1].legend(fontsize=7)
    save(fig, "speed_memory.png")

    # image grids: one per norm, from the smallest batch size (the most optimizer steps) and the first seed
    picture = task.picture
    bs, seed = min(grid.batch_sizes), grid.seeds[0]
    shown = [(n, run_dir(out_dir, n, bs, seed, reference_lr(grid, task)) / picture.file) for n in grid.norms] if picture else []
    shown = [(n, p) for n, p in shown if p.is_file()]
    if shown:
        from PIL import Image

        cols = min(4, len(shown))
        rows_n = (len(shown) + cols - 1) // cols
        aspect = Image.open(shown[0][1]).size
        width = picture.inches
        fig, axes = plt.subplots(rows_n, cols, figsize=(width * cols, width * aspect[1] / aspect[0] * rows_n + 0.4 * rows_n),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (norm, path) in zip(axes.flat, shown):
            ax.imshow(Image.open(path), cmap=picture.cmap, interpolation="nearest")
            ax.set_title(norm)
        fig.suptitle(f"{picture.caption}, batch {bs}, seed {seed}")
        save(fig, "image_grids.png", dpi=80)

    if len(grid.lrs) > 1:  # the quality metric against the learning rate, where each norm becomes unstable
        from matplotlib.ticker import NullLocator, PercentFormatter

        sweep, q = Table(rows), task.quality
        label = task.lr_axis_label(task.preset(grid.preset))
        fig, axes = plt.subplots(1, len(grid.batch_sizes), figsize=(5.2 * len(grid.batch_sizes), 3.8), squeeze=False)
        for ax, bs in zip(axes[0], grid.batch_sizes):
            for i, norm in enumerate(grid.norms):
                color = f"C{i % 10}"
                # the mean and every seed (with a few seeds a 95 % interval spans the whole axis; the table has it)
                pts = [(lr, sweep.mean(norm, bs, q, lr)) for lr in grid.lrs if sweep.mean(norm, bs, q, lr) is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color, label=norm)
                seeds = [(lr, v) for lr in grid.lrs for v in sweep.values(norm, bs, q, lr)]
                ax.scatter([p[0] for p in seeds], [p[1] for p in seeds], s=10, color=color, alpha=0.4)
                diverged = [lr for lr in grid.lrs if sweep.diverged_seeds(norm, bs, lr)]
                ax.scatter(diverged, [1.0] * len(diverged), marker="x", color=color, zorder=3)
            ax.axhline(task.stable_below, color="grey", linestyle="--", linewidth=0.8)
            ax.set(xscale="log", yscale="log", xlabel=label, ylabel=LABELS[q],
                   title=f"batch {bs}: mean and seeds; × at the top = a seed diverged; dashed: stable below")
            ax.title.set_fontsize(8)
            ax.set_xticks(list(grid.lrs), [f"{lr:g}" for lr in grid.lrs])
            ax.xaxis.set_minor_locator(NullLocator())
            if q == "test_error":
                ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes[0][-1].legend(fontsize=7)
        save(fig, f"{q}_vs_lr.png")
    return written


# ---------------------------------------------------------------- report
def reference_lr(grid: Grid, task: AblationTask) -> float | None:
    """On a learning-rate axis, the rate whose runs fill the tables by batch size and the claims on them:
    the preset's own if the grid has it, else the grid's smallest. None without an axis (every run)."""
    if not grid.lrs:
        return None
    lr = task.preset(grid.preset).lr
    return lr if lr in grid.lrs else min(grid.lrs)


def at_lr(rows: list[dict[str, Any]], lr: float | None) -> list[dict[str, Any]]:
    return rows if lr is None else [r for r in rows if r.get("base_lr") == lr]


def _with_diverged(text: str | None, diverged: int, seeds: int) -> str:
    """A table cell: the finished seeds' numbers, and how many seeds diverged."""
    if not diverged:
        return text or "—"
    return "diverged" if text is None else f"{text} ({diverged} of {seeds} diverged)"


def lr_section(grid: Grid, task: AblationTask, sweep: Table) -> list[str]:
    q, label = task.quality, task.lr_axis_label(task.preset(grid.preset))
    lines = ["## Learning rate", "",
             f"{LABELS[q]} by {label} (mean ± 95 % interval over seeds {', '.join(map(str, grid.seeds))}). A rate is "
             f"stable for a norm when {stability_rule(grid, task)}; \"(not stable)\": a seed finished above it. "
             "The highest stable rate is the highest at which the norm and every lower rate are stable.", ""]
    for bs in grid.batch_sizes:
        states = lr_stability(grid, task, sweep, bs)
        lines += [f"Batch {bs}:", "", "| norm | " + " | ".join(f"{lr:g}" for lr in grid.lrs) + " | highest stable |",
                  "|---|" + "---|" * (len(grid.lrs) + 1)]
        for norm in grid.norms:
            cells = []
            for lr in grid.lrs:
                mean = sweep.mean(norm, bs, q, lr)
                text = None if mean is None else f"{fmt_metric(q, mean)} ± {fmt_metric(q, sweep.half_interval(norm, bs, q, lr))}"
                diverged = sweep.diverged_seeds(norm, bs, lr)
                cell = _with_diverged(text, diverged, len(grid.seeds))
                cells.append(cell + (" (not stable)" if states[norm][lr] == "unstable" and not diverged else ""))
            highest = highest_stable_lr(states[norm])
            lines.append(f"| {norm} | " + " | ".join(cells) + f" | {'none' if highest is None else f'{highest:g}'} |")
        claim, verdict, evidence = lr_claim(grid, task, sweep, bs)
        lines += ["", f"- **{claim}: {verdict}.** {evidence}", ""]
    return lines


def group_count_section(grid: Grid, task: AblationTask, table: Table, convergence: Convergence) -> list[str]:
    """The GroupNorm paper's Table 3 at this model's widths, when the grid varies G only."""
    q, widths = task.quality, task.widths(task.preset(grid.preset))
    groups = group_counts(grid, widths)
    if groups is None:
        return []
    shown = "/".join(map(str, sorted(widths)))
    lines = ["## Group count (the GroupNorm paper's Table 3)", "",
             "The paper varies G for ResNet-50 on ImageNet. The seeds do not give its numbers, so none are quoted "
             "here; what they say is that G = 1 is LayerNorm, G = C is InstanceNorm, and a G between them is "
             "\"a sweet spot\". Here G is fixed across the layers, so channels per group grow with the width.", ""]
    order = sorted(groups, key=lambda n: (groups[n][max(widths)], n))
    for bs in grid.batch_sizes:
        means = {n: table.mean(n, bs, q) for n in order if table.mean(n, bs, q) is not None}
        if not means:
            continue
        best = min(means, key=means.get)
        lines += [f"Batch {bs}, {LABELS[q]} (mean ± 95 % interval over seeds {', '.join(map(str, grid.seeds))}):", "",
                  f"| norm | G at widths {shown} | channels per group | {LABELS[q]} | difference to the best G ({best}), "
                  "95 % interval |", "|---|---|---|---|---|"]
        for n in order:
            mean = means.get(n)
            text = None if mean is None else f"{fmt_metric(q, mean)} ± {fmt_metric(q, table.half_interval(n, bs, q))}"
            diff = difference_interval(table.values(n, bs, q), table.values(best, bs, q))
            gap = ("best" if n == best else "—" if diff is None else
                   f"{fmt_difference(q, diff[0])} ({fmt_difference(q, diff[1])} … {fmt_difference(q, diff[2])})")
            lines.append(f"| {n} | {'/'.join(map(str, groups[n].values()))} | "
                         f"{'/'.join(str(w // g) for w, g in groups[n].items())} | "
                         f"{_with_diverged(text, table.diverged_seeds(n, bs), len(grid.seeds))} | {gap} |")
        claim = group_count_claim(grid, task, table, bs, widths)
        claim, verdict, evidence = claim if convergence.converged else without_verdict(claim, convergence)
        lines += ["", f"- **{claim}: {verdict}.** {evidence}", ""]
    return lines


# Fewer values than this per statistic is flagged: a result there says more about the statistic than about the
# norm (InstanceNorm over one value outputs its shift alone; BatchNorm over two maps any two values to -1 and +1).
SMALL_STATISTIC = 16


def statistic_sizes(grid: Grid, task: AblationTask, preset) -> dict[str, dict[int, Smallest]]:
    """For each norm and batch size of the grid, its statistic over the fewest values in the task's model
    (nothing for a task without an example input, or a norm that computes no statistics)."""
    example = task.example_input(preset)
    if example is None:
        return {}
    sizes = {}
    for norm in grid.norms:
        layers = norm_layer_inputs(task.build_model(grid, preset, norm), example)
        sizes[norm] = {bs: smallest for bs in grid.batch_sizes if (smallest := smallest_statistic(norm, layers, bs))}
    return sizes


def is_small(sizes: dict[str, dict[int, Smallest]], norm: str, batch_size: int) -> bool:
    smallest = sizes.get(norm, {}).get(batch_size)
    return smallest is not None and smallest[0] < SMALL_STATISTIC


def statistic_section(grid: Grid, sizes: dict[str, dict[int, Smallest]]) -> list[str]:
    lines = ["## Values per statistic", "",
             "The fewest values one normalisation statistic (a mean, a variance or an RMS) is computed over in this "
             "model, at each batch size, and the layer where: BatchNorm's per channel over the batch and the map, "
             "InstanceNorm's per image and channel over the map, GroupNorm's per image and group of channels, "
             "LayerNorm's and RMSNorm's per image over every channel and position. "
             f"⚠ marks fewer than {SMALL_STATISTIC} values, here and in the results.", "",
             "| norm | " + " | ".join(f"batch {b}" for b in grid.batch_sizes) + " | where |",
             "|---|" + "---|" * (len(grid.batch_sizes) + 1)]
    for norm in grid.norms:
        per_batch = sizes.get(norm, {})
        if not per_batch:
            lines.append(f"| {norm} | " + " | ".join("–" for _ in grid.batch_sizes) + " | no statistics |")
            continue
        _, layer, (channels, *spatial) = per_batch[min(per_batch)]
        cells = [f"{per_batch[bs][0]}" + (" ⚠" if is_small(sizes, norm, bs) else "") for bs in grid.batch_sizes]
        lines.append(f"| {norm} | " + " | ".join(cells) + f" | {layer} ({channels} ch, {'×'.join(map(str, spatial))} px) |")
    return lines + [""]


def render(grid: Grid, task: AblationTask, rows: list[dict[str, Any]], plots: list[str]) -> str:
    everything = Table(rows)
    ref_lr = reference_lr(grid, task)
    table = Table(at_lr(rows, ref_lr))
    preset = task.preset(grid.preset)
    failed = [r for r in rows if r.get("status") not in FINISHED]
    diverged = everything.diverged
    lines = [f"# Norm ablation: {grid.task} ({grid.preset} preset)", ""]
    if grid.command:
        lines += ["Produced by:", "", "```", grid.command, "```", ""]
    lines += [
        f"{len(everything.ok)} of {len(grid.runs())} runs finished"
        + (f", {len(diverged)} diverged (a non-finite loss; below)" if diverged else "")
        + (f", {len(failed)} failed (below)" if failed else "") + ".",
        "",
        "## Setup",
        "",
        task.budget_line(grid, preset),
    ]
    if ref_lr is not None:
        lines.append(f"- Learning rates: the tables by batch size, the plots by batch size and the claims after them use "
                     f"the runs at {task.lr_axis_label(preset)} {ref_lr:g} ("
                     + ("the preset's" if ref_lr == preset.lr else "the grid's smallest; the preset's is not in it")
                     + "); the section \"Learning rate\" uses every run.")
    convergence = task.convergence(grid, table)
    lines += [
        f"- Convergence: {'converged' if convergence.converged else 'not converged; the claims on quality below make no verdict'}"
        f" ({convergence.evidence}).",
        f"- Preset values: `{json.dumps(preset_dict(preset))}`",
        "- " + task.model_line(grid, preset),
        "- Throughput: training images/s over the run's steps (first three left out)."
        + (" Memory: one training step of a fresh model; on CUDA the allocator's peak, on CPU the bytes autograd saves "
           "for backward (the activations: the CPU allocator keeps no peak statistics)."
           if was_measured(table, "memory_mb") else " Memory: not measured for this task."),
        "",
    ]
    sizes = statistic_sizes(grid, task, preset)
    if sizes:
        lines += statistic_section(grid, sizes)
    lines += ["## Results", ""]
    for key in [k for k in [*task.metrics, "images_per_s", "memory_mb"] if was_measured(table, k)]:
        lines += [f"{LABELS[key]} (mean ± std over seeds {', '.join(map(str, grid.seeds))}; the plots show 95 % intervals)", "",
                  "| norm | " + " | ".join(f"batch {b}" for b in grid.batch_sizes) + " |",
                  "|---|" + "---|" * len(grid.batch_sizes)]
        for norm in grid.norms:
            cells = []
            for bs in grid.batch_sizes:
                m = table.mean(norm, bs, key)
                cells.append(_with_diverged(None if m is None else f"{m:.4g} ± {table.std(norm, bs, key):.2g}",
                                            table.diverged_seeds(norm, bs), len(grid.seeds))
                             + (" ⚠" if key in task.metrics and is_small(sizes, norm, bs) else ""))
            lines.append(f"| {norm} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## The seeds' claims against these measurements", ""]
    for claim, verdict, evidence in check_claims(grid, task, list(TASKS.values()), table, convergence):
        lines += [f"- **{claim}: {verdict}.** {evidence}"]
    lines.append("")
    lines += group_count_section(grid, task, table, convergence)
    if len(grid.lrs) > 1:
        lines += lr_section(grid, task, everything)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    for title, listed in (("Diverged runs", diverged), ("Failed runs", failed)):
        if listed:
            lines += [f"## {title}", "", "| run | error |", "|---|---|"]
            lines += [f"| {run_name(r['norm'], r['batch_size'], r['seed'], r.get('base_lr'))} | {r.get('error', '')} |"
                      for r in listed]
            lines.append("")
    return "\n".join(lines)


def write_report(out_dir: Path, grid: Grid) -> Path:
    task = get_task(grid.task)
    rows = collect(out_dir, grid)
    write_csv(out_dir / "results.csv", rows, csv_columns(grid))
    plots = make_plots(out_dir, grid, task, rows)
    path = out_dir / "report.md"
    with atomic_output(path) as tmp:
        tmp.write_text(render(grid, task, rows, plots))
    return path
