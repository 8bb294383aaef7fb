"""results.csv, plots and report.md of an ablation grid, with a verdict on each claim of the seeds."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from stylenorm.ablation.claims import LABELS, check_claims
from stylenorm.ablation.presets import preset_dict
from stylenorm.ablation.records import Grid, Table, collect, run_dir, run_name
from stylenorm.ablation.tasks import TASKS, AblationTask, get_task
from stylenorm.atomic import atomic_output

# One schema for every task, so that the CSVs of different tasks line up (a task leaves the
# columns it does not measure empty); it holds every task's metrics (tests/test_ablation_grid.py).
CSV_COLUMNS = ["task", "norm", "batch_size", "seed", "status", "steps", "images", "lr", "test_error", "heldout_loss",
               "fid", "heldout_content", "heldout_style", "bn_train_mode_error", "bn_eval_mode_error",
               "bn_train_mode_loss", "bn_eval_mode_loss", "images_per_s", "memory_mb", "error"]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    with atomic_output(path) as tmp:
        tmp.write_text(buffer.getvalue())


# ---------------------------------------------------------------- plots
def _batch_ticks(ax, grid: Grid) -> None:
    from matplotlib.ticker import NullLocator

    ax.set_xticks(list(grid.batch_sizes), [str(b) for b in grid.batch_sizes])
    ax.xaxis.set_minor_locator(NullLocator())  # log-scale minor labels would overprint the batch sizes


def make_plots(out_dir: Path, grid: Grid, task: AblationTask, rows: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = Table(rows)
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
            from matplotlib.ticker import PercentFormatter

            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
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

    # throughput and memory
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
    for ax, key in zip(axes[0], ("images_per_s", "memory_mb")):
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
    shown = [(n, run_dir(out_dir, n, bs, seed) / picture.file) for n in grid.norms] if picture else []
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
    return written


# ---------------------------------------------------------------- report
def render(grid: Grid, task: AblationTask, rows: list[dict[str, Any]], plots: list[str]) -> str:
    table = Table(rows)
    preset = task.preset(grid.preset)
    failed = [r for r in rows if r.get("status") != "ok"]
    lines = [f"# Norm ablation: {grid.task} ({grid.preset} preset)", ""]
    if grid.command:
        lines += ["Produced by:", "", "```", grid.command, "```", ""]
    lines += [
        f"{len(table.ok)} of {len(grid.runs())} runs finished" + (f", {len(failed)} failed (below)" if failed else "") + ".",
        "",
        "## Setup",
        "",
        task.budget_line(grid, preset),
        f"- Preset values: `{json.dumps(preset_dict(preset))}`",
        "- " + task.model_line(grid, preset),
        "- Throughput: training images/s over the run's steps (first three left out). Memory: one training step of a "
        "fresh model; on CUDA the allocator's peak, on CPU the bytes autograd saves for backward (the activations: "
        "the CPU allocator keeps no peak statistics).",
        "",
        "## Results",
        "",
    ]
    for key in [k for k in [*task.metrics, "images_per_s", "memory_mb"] if any(r.get(k) is not None for r in table.ok)]:
        lines += [f"{LABELS[key]} (mean ± std over seeds {', '.join(map(str, grid.seeds))}; the plots show 95 % intervals)", "",
                  "| norm | " + " | ".join(f"batch {b}" for b in grid.batch_sizes) + " |",
                  "|---|" + "---|" * len(grid.batch_sizes)]
        for norm in grid.norms:
            cells = []
            for bs in grid.batch_sizes:
                m = table.mean(norm, bs, key)
                cells.append("—" if m is None else f"{m:.4g} ± {table.std(norm, bs, key):.2g}")
            lines.append(f"| {norm} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## The seeds' claims against these measurements", ""]
    for claim, verdict, evidence in check_claims(grid, task, list(TASKS.values()), table):
        lines += [f"- **{claim}: {verdict}.** {evidence}"]
    lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    if failed:
        lines += ["## Failed runs", "", "| run | error |", "|---|---|"]
        lines += [f"| {run_name(r['norm'], r['batch_size'], r['seed'])} | {r.get('error', '')} |" for r in failed]
        lines.append("")
    return "\n".join(lines)


def write_report(out_dir: Path, grid: Grid) -> Path:
    task = get_task(grid.task)
    rows = collect(out_dir, grid)
    write_csv(out_dir / "results.csv", rows)
    plots = make_plots(out_dir, grid, task, rows)
    path = out_dir / "report.md"
    with atomic_output(path) as tmp:
        tmp.write_text(render(grid, task, rows, plots))
    return path
