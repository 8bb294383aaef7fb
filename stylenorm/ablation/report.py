"""results.csv, plots and report.md of an ablation grid, with a verdict on each claim of the seeds."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from stylenorm.ablation.grid import Grid, read_result, run_name
from stylenorm.ablation.presets import get_preset, preset_dict, steps_for
from stylenorm.atomic import atomic_output
from stylenorm.norms import default_groups, make_norm, parse_spec

CSV_COLUMNS = ["task", "norm", "batch_size", "seed", "status", "steps", "images", "lr", "test_error", "heldout_loss",
               "fid", "heldout_content", "heldout_style", "bn_train_mode_error", "bn_eval_mode_error",
               "bn_train_mode_loss", "bn_eval_mode_loss", "images_per_s", "memory_mb", "error"]
# Lower is better for every quality metric here.
# The claims are judged on the held-out loss: the Fréchet distance of a briefly trained
# model's samples is noisy (both are in the tables).
QUALITY = {"diffusion": "heldout_loss", "style": "heldout_loss", "classification": "test_error"}
METRICS = {"diffusion": ["heldout_loss", "fid"], "style": ["heldout_content", "heldout_style", "heldout_loss"],
           "classification": ["test_error"]}
LABELS = {"test_error": "test error", "heldout_loss": "held-out loss", "fid": "Fréchet distance (MNIST features)", "heldout_content": "held-out content loss",
          "heldout_style": "held-out style loss", "images_per_s": "training images/s", "memory_mb": "training memory (MB)"}
CLEAR_MARGIN = 0.05  # differences under 5% are called ties
FLAT_MARGIN = 0.005  # classification: a rise of the test error under half a percentage point is "flat"
BATCH_INDEPENDENT = ("ln", "in", "gn")  # kinds whose output does not depend on the rest of the batch


def collect(out_dir: Path, grid: Grid) -> list[dict[str, Any]]:
    rows = []
    for norm, bs, seed in grid.runs():
        result = read_result(out_dir / "runs" / run_name(norm, bs, seed))
        if result is not None:
            rows.append(result)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    with atomic_output(path) as tmp:
        tmp.write_text(buffer.getvalue())


class Table:
    """Seed-averaged metrics of the successful runs, by (norm, batch size)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.ok = [r for r in rows if r.get("status") == "ok"]

    def values(self, norm: str, bs: int, key: str) -> list[float]:
        return [float(r[key]) for r in self.ok if r["norm"] == norm and r["batch_size"] == bs and r.get(key) is not None]

    def mean(self, norm: str, bs: int, key: str) -> float | None:
        vals = self.values(norm, bs, key)
        return statistics.fmean(vals) if vals else None

    def std(self, norm: str, bs: int, key: str) -> float:
        vals = self.values(norm, bs, key)
        return statistics.stdev(vals) if len(vals) > 1 else 0.0

    def half_interval(self, norm: str, bs: int, key: str) -> float:
        """Half-width of the 95 % confidence interval of the mean over seeds (Student's t)."""
        vals = self.values(norm, bs, key)
        return t_quantile(len(vals) - 1) * statistics.stdev(vals) / len(vals) ** 0.5 if len(vals) > 1 else 0.0


# Student's t, two-sided 95 %, by degrees of freedom (exact for 1-10; beyond, the value at the
# smallest dof of the band, which makes the intervals slightly wider than exact)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def t_quantile(dof: int) -> float:
    if dof < 1:
        return float("inf")
    return _T95.get(dof, 2.228 if dof <= 20 else 2.086 if dof <= 30 else 1.96)


def difference_interval(a: list[float], b: list[float]) -> tuple[float, float, float] | None:
    """mean(a) - mean(b) and its 95 % interval (Welch's t, conservative degrees of freedom)."""
    if len(a) < 2 or len(b) < 2:
        return None
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    half = t_quantile(min(len(a), len(b)) - 1) * se
    return diff, diff - half, diff + half


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _fid_scale(preset) -> dict[str, float]:
    from stylenorm.ablation.diffusion_task import fid_scale

    return fid_scale(preset)


def model_widths(grid: Grid) -> set[int]:
    """Channel widths of the normalized layers of the grid's model."""
    if grid.task == "classification":
        from stylenorm.ablation.classification_task import model_widths as classifier_widths

        return classifier_widths(get_preset(grid.task, grid.preset))
    if grid.task == "diffusion":
        preset = get_preset(grid.task, grid.preset)
        return {preset.base_channels * m for m in (1, *preset.channel_mults)}
    return {32, 64, 128}  # TransformerNet


def _kind(norm: str) -> str:
    return parse_spec(norm).kind


# ---------------------------------------------------------------- plots
def _batch_ticks(ax, grid: Grid) -> None:
    from matplotlib.ticker import NullLocator

    ax.set_xticks(list(grid.batch_sizes), [str(b) for b in grid.batch_sizes])
    ax.xaxis.set_minor_locator(NullLocator())  # log-scale minor labels would overprint the batch sizes


def make_plots(out_dir: Path, grid: Grid, rows: list[dict[str, Any]]) -> list[str]:
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
    metrics = METRICS[grid.task]
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

    if grid.task == "classification":  # has the budget converged? test error after each epoch
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
    picture = "samples.png" if grid.task == "diffusion" else "stylized.png"
    bs, seed = min(grid.batch_sizes), grid.seeds[0]
    shown = [(n, out_dir / "runs" / run_name(n, bs, seed) / picture) for n in grid.norms]
    shown = [(n, p) for n, p in shown if p.is_file()]
    if shown:
        from PIL import Image

        cols = min(4, len(shown))
        rows_n = (len(shown) + cols - 1) // cols
        aspect = Image.open(shown[0][1]).size
        width = 3.2 if grid.task == "diffusion" else 4.5
        fig, axes = plt.subplots(rows_n, cols, figsize=(width * cols, width * aspect[1] / aspect[0] * rows_n + 0.4 * rows_n),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (norm, path) in zip(axes.flat, shown):
            ax.imshow(Image.open(path), cmap="gray" if grid.task == "diffusion" else None, interpolation="nearest")
            ax.set_title(norm)
        fig.suptitle(f"{'generated digits' if grid.task == 'diffusion' else 'held-out photos (top) and stylized (bottom)'}, "
                     f"batch {bs}, seed {seed}")
        save(fig, "image_grids.png", dpi=80)
    return written


# ---------------------------------------------------------------- claims
def _figure1_claim(grid: Grid, table: Table, bns: list[str], indep: list[str]) -> tuple[str, str, str]:
    """The GroupNorm paper's Figure 1, tested: BN's test error rises from the largest batch to the
    smallest (the 95 % interval of the difference lies above 0) and each GN's does not rise by more
    than FLAT_MARGIN (its interval lies below it)."""
    claim = ("BatchNorm's error rises as the batch shrinks while GroupNorm's stays flat "
             "(Wu & He 2018, Figure 1: BN 23.6 % → 34.7 %, GN 24.1 % → 24.1 % from 32 to 2 images per batch)")
    lo, hi = min(grid.batch_sizes), max(grid.batch_sizes)
    gns = [n for n in indep if _kind(n) == "gn"]
    if not bns or not gns or lo == hi:
        return claim, "not measured", "needs bn, a gn spec and two batch sizes in the grid"

    def rise(norm: str) -> tuple[float, float, float] | None:
        return difference_interval(table.values(norm, lo, "test_error"), table.values(norm, hi, "test_error"))

    rises = {n: rise(n) for n in bns[:1] + gns}
    if any(r is None for r in rises.values()):
        return claim, "not measured", "needs at least two seeds of bn and gn at the smallest and largest batch"
    parts = [f"{n}: {table.mean(n, hi, 'test_error'):.2%} at batch {hi} → {table.mean(n, lo, 'test_error'):.2%} at batch {lo}, "
             f"rise {d:+.2%} (95 % interval {a:+.2%} … {b:+.2%})" for n, (d, a, b) in rises.items()]
    bn_rises = rises[bns[0]][1] > 0
    flat = {n: rises[n][2] < FLAT_MARGIN for n in gns}
    test = (f"Test: the 95 % interval (Welch) of the test-error difference between batch {lo} and batch {hi}; bn must lie "
            f"above 0, gn below +{FLAT_MARGIN:.1%} (percentage points).")
    if not bn_rises:
        verdict = "not supported"
        test += " BatchNorm's rise is not distinguishable from 0."
    elif all(flat.values()):
        verdict = "supported"
    else:
        verdict = "inconclusive" if any(flat.values()) else "not supported"
        test += " " + ", ".join(f"{n} {'flat' if f else 'not shown flat'}" for n, f in flat.items()) + "."
    return claim, verdict, "; ".join(parts) + ". " + test


def _claims(grid: Grid, table: Table) -> list[tuple[str, str, str]]:
    """(claim, verdict, evidence) for every claim of the seeds."""
    q = QUALITY[grid.task]
    qname = LABELS[q]
    lo, hi = min(grid.batch_sizes), max(grid.batch_sizes)
    norms = list(grid.norms)
    claims = []

    # 1. BN degrades at small batch sizes, batch-independent norms do not
    claim = "BatchNorm degrades at small batch sizes; GroupNorm, LayerNorm and InstanceNorm do not"
    indep = [n for n in norms if _kind(n) in BATCH_INDEPENDENT]
    bns = [n for n in norms if _kind(n) == "bn"]
    if grid.task == "classification":
        claims.append(_figure1_claim(grid, table, bns, indep))
    elif not bns or not indep or lo == hi:
        claims.append((claim, "not measured", "needs bn, a batch-independent norm and two batch sizes in the grid"))
    else:
        # BN against its peers at the same batch size (same steps, same images), so the
        # budget's step count cancels out: the GroupNorm paper's Figure 1 comparison.
        def gap(bs: int) -> float | None:
            peers = [table.mean(n, bs, q) for n in indep if table.mean(n, bs, q) is not None]
            mine = table.mean(bns[0], bs, q)
            return None if mine is None or not peers or min(peers) <= 0 else mine / min(peers)
        gaps = {bs: gap(bs) for bs in grid.batch_sizes if gap(bs) is not None}
        if lo not in gaps or hi not in gaps:
            claims.append((claim, "not measured", "the runs it needs failed"))
        else:
            evidence = (f"{qname} of bn relative to the best batch-independent norm ({', '.join(indep)}) at the same "
                        "batch size: " + "; ".join(f"batch {bs} ×{_fmt(g, 3)}" for bs, g in gaps.items()) + ".")
            if gaps[lo] > 1 + CLEAR_MARGIN and gaps[lo] > gaps[hi] * (1 + CLEAR_MARGIN):
                verdict = "supported"
            elif gaps[lo] <= 1 + CLEAR_MARGIN or gaps[lo] <= gaps[hi]:
                verdict = "not supported"
                evidence += f" BatchNorm is not further behind at batch {lo} than at batch {hi}."
            else:
                verdict = "partly supported"
            claims.append((claim, verdict, evidence))

    # 2. BN train/eval discrepancy
    claim = "BatchNorm behaves differently in training (batch statistics) and inference (running averages)"
    gaps = []
    measure = "error" if grid.task == "classification" else "loss"
    for n in bns[:1]:
        for bs in grid.batch_sizes:
            tr, ev = table.mean(n, bs, f"bn_train_mode_{measure}"), table.mean(n, bs, f"bn_eval_mode_{measure}")
            if tr is not None and ev is not None and tr > 0:
                gaps.append((bs, tr, ev, ev / tr - 1))
    if not gaps:
        claims.append((claim, "not measured", "needs bn in the grid"))
    else:
        evidence = f"{'test error' if measure == 'error' else 'held-out loss'}, train mode → eval mode: " + "; ".join(
            f"batch {bs} ({steps_for(get_preset(grid.task, grid.preset), bs)} steps): {tr:.4g} → {ev:.4g} "
            f"({f'{gap:+.0%}' if abs(gap) < 10 else f'×{gap + 1:.3g}'})" for bs, tr, ev, gap in gaps)
        evidence += (". Eval mode uses running averages updated once per step (momentum 0.1), so after few steps "
                     "they still remember their initial values")
        largest = max(abs(g[3]) for g in gaps)
        verdict = "supported" if largest > CLEAR_MARGIN else "not supported"
        if verdict == "not supported":
            evidence += f". Every gap is under {CLEAR_MARGIN:.0%}."
        claims.append((claim, verdict, evidence))

    # 3. GN with G=1 is LN, with G=C is IN: checked on the layers this backend builds
    claim = "GroupNorm with G=1 reproduces LayerNorm and with G=C reproduces InstanceNorm"
    widths = (32, 64, 128)
    torch.manual_seed(0)
    worst_ln = worst_in = 0.0
    for c in widths:
        x = torch.randn(4, c, 8, 8, dtype=torch.float64) * 3 + 1
        worst_ln = max(worst_ln, (make_norm("gn1", c).double()(x) - make_norm("ln", c).double()(x)).abs().max().item())
        worst_in = max(worst_in, (make_norm(f"gn{c}", c).double()(x) - make_norm("in", c).double()(x)).abs().max().item())
    verdict = "supported" if max(worst_ln, worst_in) < 1e-9 else "not supported"
    evidence = f"largest difference at widths {widths} in float64: gn1 vs ln {worst_ln:.1e}, gnC vs in {worst_in:.1e}"
    if "gn" in norms and "in" in norms and grid.task == "diffusion":
        evidence += ("; note that plain `gn` (32 groups, or the largest divisor of C up to 32) is InstanceNorm at widths "
                     "up to 32")
    claims.append((claim, verdict, evidence))

    # 4 and 5. The right norm for each task
    for task, wanted, claim in (("style", ("in",), "InstanceNorm is the right choice for style transfer"),
                                ("diffusion", ("gn",), "GroupNorm is the right choice for the diffusion U-Net")):
        if grid.task != task:
            claims.append((claim, "not measured here", f"see the {task} ablation"))
            continue
        per_bs = []
        wins = 0
        for bs in grid.batch_sizes:
            means = {n: table.mean(n, bs, q) for n in norms if table.mean(n, bs, q) is not None}
            if not means:
                continue
            best = min(means, key=means.get)
            ours = [n for n in means if _kind(n) in wanted]
            if not ours:
                continue
            mine = min(ours, key=means.get)
            wins += means[mine] <= means[best] * (1 + CLEAR_MARGIN)
            per_bs.append(f"batch {bs}: {best} best ({_fmt(means[best])})" if mine == best else
                          f"batch {bs}: best {best} {_fmt(means[best])}, {mine} {_fmt(means[mine])}")
        if not per_bs:
            claims.append((claim, "not measured", f"needs {'/'.join(wanted)} in the grid"))
            continue
        verdict = "supported" if wins == len(per_bs) else ("not supported" if wins == 0 else "partly supported")
        evidence = (f"{qname} (lower is better; within {CLEAR_MARGIN:.0%} of the best counts as a tie): " + "; ".join(per_bs))
        widths = model_widths(grid)
        if task == "diffusion" and "gn" in norms and all(default_groups(w) == w for w in widths):
            evidence += (f". Caution: at this preset's widths ({', '.join(map(str, sorted(widths)))}) plain `gn` has one "
                         "channel per group in every layer, so `gn` here is InstanceNorm under another name")
        claims.append((claim, verdict, evidence))

    # 6. RMSNorm is cheaper than LayerNorm at equal quality
    claim = "RMSNorm is cheaper than LayerNorm at equal quality"
    if "rms" not in norms or "ln" not in norms:
        claims.append((claim, "not measured", "needs rms and ln in the grid"))
    else:
        parts, faster, equal = [], 0, 0
        for bs in grid.batch_sizes:
            s_r, s_l = table.mean("rms", bs, "images_per_s"), table.mean("ln", bs, "images_per_s")
            q_r, q_l = table.mean("rms", bs, q), table.mean("ln", bs, q)
            if None in (s_r, s_l, q_r, q_l):
                continue
            faster += s_r > s_l * 1.02
            equal += abs(q_r / q_l - 1) <= CLEAR_MARGIN
            parts.append(f"batch {bs}: speed rms/ln ×{s_r / s_l:.2f}, {qname} rms {_fmt(q_r)} vs ln {_fmt(q_l)}")
        if not parts:
            claims.append((claim, "not measured", "the runs it needs failed"))
        else:
            n = len(parts)
            verdict = ("supported" if faster == n and equal == n else
                       "not supported" if faster == 0 else "partly supported")
            claims.append((claim, verdict, "; ".join(parts) + " (faster means > 2% more images/s)"))
    return claims


# ---------------------------------------------------------------- report
def _budget_line(grid: Grid, preset) -> str:
    steps = ", ".join(f"batch {b}: {steps_for(preset, b)} steps" for b in grid.batch_sizes)
    if grid.task == "classification":
        return (f"- Budget: every run trains {preset.epochs} epochs of the same {preset.images} images, so steps = "
                f"{preset.epochs} × {preset.images} / batch size ({steps}); learning rate = {preset.lr} × batch / "
                f"{preset.reference_batch} (the paper's linear scaling rule); the data order is a function of the seed, "
                "the same for every norm.")
    return (f"- Budget: every run trains on the same {preset.images} images, so steps = {preset.images} / batch size "
            f"({steps}); learning rate = base × sqrt(batch / 8); the data order is a function of the seed, the same "
            "for every norm.")


def _classification_setup(grid: Grid, preset) -> str:
    widths = sorted(model_widths(grid))
    return (f"Model: a residual CNN (stem and one basic block per stage, widths {', '.join(map(str, widths))} at "
            "28, 14 and 7 px; the norm after every convolution, shortcut projections included) on the bundled MNIST "
            f"subset, {preset.test_images} digits held out as the test split (the same for every run). SGD with "
            f"Nesterov momentum 0.9, weight decay {preset.weight_decay}, a linear warm-up over {preset.warmup_epochs} "
            "epochs, then cosine decay. Test error: eval mode (BatchNorm with its running averages), after the last "
            "epoch. The GroupNorm paper trains ResNet-50 on ImageNet; this is its protocol at a size a CPU trains "
            "in minutes, so expect its shape, not its numbers.")


def render(grid: Grid, rows: list[dict[str, Any]], plots: list[str]) -> str:
    table = Table(rows)
    preset = get_preset(grid.task, grid.preset)
    failed = [r for r in rows if r.get("status") != "ok"]
    lines = [f"# Norm ablation: {grid.task} ({grid.preset} preset)", ""]
    if grid.command:
        lines += ["Produced by:", "", "```", grid.command, "```", ""]
    lines += [
        f"{len(table.ok)} of {len(grid.runs())} runs finished" + (f", {len(failed)} failed (below)" if failed else "") + ".",
        "",
        "## Setup",
        "",
        _budget_line(grid, preset),
        f"- Preset values: `{json.dumps(preset_dict(preset))}`",
        "- " + (_classification_setup(grid, preset) if grid.task == "classification" else"Model: the stylenorm diffusion U-Net (FiLM after every norm), class-conditional, on the bundled MNIST "
                f"subset; {preset.holdout} digits held out. Held-out loss: the EMA model's denoising loss averaged over "
                f"{preset.eval_timesteps} evenly spaced time steps with fixed noise. Fréchet distance: {preset.fid_samples} "
                f"DDIM-{preset.sample_steps} samples against the held-out digits in the 128-d features of the shipped "
                "MNIST classifier (weights/mnist_classifier.safetensors); for scale, "
                + ", ".join(f"{k} score {v:.0f}" for k, v in _fid_scale(preset).items()) + "."
                if grid.task == "diffusion" else
                f"Model: TransformerNet (Johnson et al.) trained on {Path(str(grid.style_image)).name} at "
                f"{preset.image_size}² crops; {preset.holdout} photos of the content folder held out (never trained on), "
                f"{preset.eval_photos} of them scored. Held-out loss = content + {preset.style_weight} × style "
                "(the training weights, no TV term)."),
        "- Throughput: training images/s over the run's steps (first three left out). Memory: one training step of a "
        "fresh model; on CUDA the allocator's peak, on CPU the bytes autograd saves for backward (the activations: "
        "the CPU allocator keeps no peak statistics).",
        "",
        "## Results",
        "",
    ]
    for key in [k for k in METRICS[grid.task] + ["images_per_s", "memory_mb"] if any(r.get(k) is not None for r in table.ok)]:
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
    for claim, verdict, evidence in _claims(grid, table):
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
    rows = collect(out_dir, grid)
    write_csv(out_dir / "results.csv", rows)
    plots = make_plots(out_dir, grid, rows)
    path = out_dir / "report.md"
    with atomic_output(path) as tmp:
        tmp.write_text(render(grid, rows, plots))
    return path
