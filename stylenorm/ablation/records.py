"""The bottom of the ablation: what a grid is, where each run's result lives, and the table of results.

Imports no model code, so the report and the claims read results without loading any.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from stylenorm.ablation.presets import DEFAULT_BATCH_SIZES, DEFAULT_NORMS, DEFAULT_SEEDS
from stylenorm.atomic import atomic_output


@dataclass
class Grid:
    task: str  # a name in stylenorm.ablation.tasks.TASKS
    preset: str = "small"
    norms: tuple[str, ...] = DEFAULT_NORMS
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    # style task inputs (ignored by the others)
    style_image: str | None = None
    data: str | None = None
    vgg_weights: str | None = None
    cpu: bool = False
    threads: int | None = None
    keep_weights: bool = False  # keep each run's train/ folder (weights, checkpoints) after scoring it
    workers: int = 1  # runs in parallel, each in its own one-thread process
    command: str = ""  # how the grid was launched, for the report
    # The learning-rate axis, each value the preset's `lr` (for classification: at batch 32, scaled
    # linearly to the others). Empty: no axis, every run at the preset's own learning rate.
    lrs: tuple[float, ...] = ()

    def runs(self) -> list[Cell]:
        return [Cell(n, b, s, lr) for n in self.norms for b in self.batch_sizes for lr in (self.lrs or (None,))
                for s in self.seeds]


class Cell(NamedTuple):
    """One run of a grid."""

    norm: str
    batch_size: int
    seed: int
    base_lr: float | None = None  # its value on the learning-rate axis; None: the grid has none


# A run that ended with a non-finite loss diverged: a result of its learning rate, not a crash, so
# a rerun skips it like a finished one (the same seed diverges again).
FINISHED = ("ok", "diverged")


def run_name(norm: str, batch_size: int, seed: int, base_lr: float | None = None) -> str:
    return f"{norm}_bs{batch_size}" + ("" if base_lr is None else f"_lr{base_lr:g}") + f"_seed{seed}"


def run_dir(out_dir: Path, norm: str, batch_size: int, seed: int, base_lr: float | None = None) -> Path:
    return Path(out_dir) / "runs" / run_name(norm, batch_size, seed, base_lr)


# Every run's record (status, metrics, curves) in one file per grid, keyed by run name: a grid of
# 120 runs is one file in the repository, not 120. Grids written before it kept runs/<run>/result.json,
# which read_records still reads (and the next write folds into RECORDS).
RECORDS = "runs.json"
LEGACY_RECORD = "result.json"


def _legacy_records(out_dir: Path) -> list[Path]:
    runs = Path(out_dir) / "runs"
    return sorted(runs.glob(f"*/{LEGACY_RECORD}")) if runs.is_dir() else []


def read_records(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every run record of the grid in `out_dir`, by run name."""
    out_dir = Path(out_dir)
    try:
        records = json.loads((out_dir / RECORDS).read_text())
    except (OSError, json.JSONDecodeError):
        records = {}
    for legacy in _legacy_records(out_dir):
        if legacy.parent.name not in records:
            try:
                records[legacy.parent.name] = json.loads(legacy.read_text())
            except (OSError, json.JSONDecodeError):
                pass
    return records


def write_result(out_dir: Path, cell: Cell, record: dict[str, Any]) -> None:
    """Add (or replace) one run's record; the file is replaced whole, so a crash leaves the previous one."""
    out_dir = Path(out_dir)
    records = read_records(out_dir)
    records[run_name(*cell)] = record
    with atomic_output(out_dir / RECORDS) as tmp:
        tmp.write_text(json.dumps(records, indent=1, default=float) + "\n")
    for legacy in _legacy_records(out_dir):  # folded in above
        legacy.unlink()


def collect(out_dir: Path, grid: Grid) -> list[dict[str, Any]]:
    """The results of the grid's runs that have one, in the grid's order."""
    records = read_records(out_dir)
    return [records[name] for cell in grid.runs() if (name := run_name(*cell)) in records]


class Table:
    """Seed-averaged metrics of the successful runs, by (norm, batch size) and, on a learning-rate
    axis, by its value (`lr`; None takes the runs at every value)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.ok = [r for r in rows if r.get("status") == "ok"]
        self.diverged = [r for r in rows if r.get("status") == "diverged"]

    def values(self, norm: str, bs: int, key: str, lr: float | None = None) -> list[float]:
        return [float(r[key]) for r in self.ok if r["norm"] == norm and r["batch_size"] == bs and r.get(key) is not None
                and (lr is None or r.get("base_lr") == lr)]

    def diverged_seeds(self, norm: str, bs: int, lr: float | None = None) -> int:
        return sum(r["norm"] == norm and r["batch_size"] == bs and (lr is None or r.get("base_lr") == lr)
                   for r in self.diverged)

    def mean(self, norm: str, bs: int, key: str, lr: float | None = None) -> float | None:
        vals = self.values(norm, bs, key, lr)
        return statistics.fmean(vals) if vals else None

    def std(self, norm: str, bs: int, key: str, lr: float | None = None) -> float:
        vals = self.values(norm, bs, key, lr)
        return statistics.stdev(vals) if len(vals) > 1 else 0.0

    def half_interval(self, norm: str, bs: int, key: str, lr: float | None = None) -> float:
        """Half-width of the 95 % confidence interval of the mean over seeds (Student's t)."""
        vals = self.values(norm, bs, key, lr)
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
