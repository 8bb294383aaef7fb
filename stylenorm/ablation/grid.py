"""The ablation grid: every (norm, batch size, seed[, learning rate]) trained and scored, resumable.

Layout of the output folder:
    settings.json           what the grid is; a rerun with other settings is refused, one that only adds
                            norms, batch sizes, seeds or rates extends it
    runs.json               one record per run: status "ok" with its metrics, "diverged" (the loss
                            became NaN or inf) or "failed" with the error
    runs/<run>/*.png        its generated digits or stylized photos (train/ with weights only if kept)
    results.csv, report.md, *.png   rebuilt from the run results after every grid pass
"""

from __future__ import annotations

import json
import shutil
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from stylenorm.ablation.presets import Preset, preset_dict, steps_for
from stylenorm.ablation.records import FINISHED, RECORDS, Cell, Grid, read_records, run_dir, run_name, write_result
from stylenorm.ablation.report import write_report
from stylenorm.ablation.tasks import get_task
from stylenorm.atomic import atomic_output, check_writable
from stylenorm.devices import set_threads
from stylenorm.errors import StylenormError
from stylenorm.norms import NormSpecError, norm_kind
from stylenorm.training import NonFiniteLossError

# (norm, batch size, seed, run folder) -> result; on a learning-rate axis also base_lr=<its value>
Runner = Callable[..., dict[str, Any]]


def settings(grid: Grid) -> dict[str, Any]:
    """What makes two grids the same experiment (not where files are or how many threads)."""
    task = get_task(grid.task)
    return {
        "task": grid.task, "preset": grid.preset, "preset_values": preset_dict(task.preset(grid.preset)),
        "norms": list(grid.norms), "batch_sizes": list(grid.batch_sizes), "seeds": list(grid.seeds),
        **({"lrs": list(grid.lrs)} if grid.lrs else {}),  # absent without the axis: older grids stay resumable
        **task.input_settings(grid),
    }


def validate(grid: Grid) -> None:
    """Every error that would stop a run, raised before the first one starts."""
    task = get_task(grid.task)
    preset = task.preset(grid.preset)
    if not grid.norms or not grid.batch_sizes or not grid.seeds:
        raise StylenormError("the grid is empty; give at least one norm, one batch size and one seed")
    if grid.lrs and task.stable_below is None:
        raise StylenormError(f"--lrs is implemented for the classification task only; the {grid.task} task has no "
                             "threshold that tells a stable run from a failed one")
    if grid.lrs and min(grid.lrs) <= 0:
        raise StylenormError(f"learning rates must be positive, got {min(grid.lrs)}")
    if len({run_name(*cell) for cell in grid.runs()}) < len(grid.runs()):  # run names keep 6 digits of a rate
        raise StylenormError(f"--lrs {', '.join(map(repr, grid.lrs))}: two rates agree to 6 digits; give distinct ones")
    for norm in grid.norms:
        try:
            kind = norm_kind(norm)
        except NormSpecError as exc:
            raise StylenormError(f"--norms: {exc}") from None
        if kind.batch_statistics and min(grid.batch_sizes) < 2:
            raise StylenormError(
                f"BatchNorm cannot train with a batch of {min(grid.batch_sizes)} (one value per channel); "
                "drop batch sizes below 2 or drop bn from --norms"
            )
    if min(grid.batch_sizes) < 1:
        raise StylenormError(f"batch sizes must be at least 1, got {min(grid.batch_sizes)}")
    if max(grid.batch_sizes) > preset.images:
        raise StylenormError(f"batch size {max(grid.batch_sizes)} exceeds the preset's {preset.images} training images per run")
    for norm in grid.norms:  # a spec like gn7 parses but does not divide every layer's width: find out now
        try:
            task.build_model(grid, preset, norm)
        except NormSpecError as exc:
            raise StylenormError(f"norm {norm!r} does not fit the {grid.task} model: {exc}") from None
    task.check_inputs(grid)


# The grid's axes: a rerun may add values to them (more seeds, another norm), and the runs already
# finished stay valid because every run depends only on its own cell and the settings outside the axes.
AXES = ("norms", "batch_sizes", "seeds", "lrs")


def extends(saved: dict[str, Any], wanted: dict[str, Any], differing: list[str]) -> bool:
    """Whether `wanted` only adds axis values to `saved` (no run of the saved grid leaves the report)."""
    return all(k in AXES and k in saved and k in wanted and set(saved[k]) <= set(wanted[k]) for k in differing)


def check_settings(out_dir: Path, grid: Grid) -> None:
    """Refuse a folder that holds another experiment; record the grid (or its extension) in settings.json."""
    path = out_dir / "settings.json"
    wanted = settings(grid)
    if path.is_file():
        saved = json.loads(path.read_text())
        differing = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        if not differing:
            return
        if not extends(saved, wanted, differing):
            raise StylenormError(
                f"{out_dir} holds a grid with other settings ({', '.join(differing)} differ); pass another -o "
                "folder, the same options to resume it, or every value it has plus new ones to extend it"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(wanted, indent=2) + "\n")


def _runner(grid: Grid, preset: Preset) -> Runner:
    task = get_task(grid.task)

    def run(norm: str, bs: int, seed: int, folder: Path, base_lr: float | None = None) -> dict[str, Any]:
        # the axis value is the preset's lr, so the task's own scaling with the batch size still applies
        return task.run(grid, preset if base_lr is None else replace(preset, lr=base_lr), norm, bs, seed, folder)
    return run


def _execute(run: Runner, grid: Grid, cell: Cell, folder: Path) -> dict[str, Any]:
    """One run, as the record runs.json holds; a crashed or diverged run is data, not the end of the grid."""
    record: dict[str, Any] = {"task": grid.task, "norm": cell.norm, "batch_size": cell.batch_size, "seed": cell.seed}
    axis = {} if cell.base_lr is None else {"base_lr": cell.base_lr}
    record.update(axis)
    shutil.rmtree(folder / "train", ignore_errors=True)  # a failed attempt's checkpoints: the run starts afresh
    try:
        record.update(run(cell.norm, cell.batch_size, cell.seed, folder, **axis))
        record["status"] = "ok"
    except KeyboardInterrupt:
        raise
    except NonFiniteLossError as exc:
        record.update(status="diverged", error=str(exc).splitlines()[0])
    except Exception as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                      traceback=traceback.format_exc())
    if record["status"] in FINISHED and not grid.keep_weights:  # megabytes per run; the scores and pictures stay
        shutil.rmtree(folder / "train", ignore_errors=True)
    return record


def _execute_in_worker(grid: Grid, preset: Preset, cell: Cell, folder: Path) -> dict[str, Any]:
    torch.set_num_threads(1)  # the workers share the cores between them
    return _execute(_runner(grid, preset), grid, cell, folder)


def run_grid(grid: Grid, out_dir: str | Path, progress: bool = True, runner: Runner | None = None) -> Path:
    """Run every missing or failed run of the grid, then write results.csv, plots and report.md.

    With grid.workers > 1 the runs go to that many processes of one thread each (runs are
    independent, and small models use one core better than two threads do).
    """
    out_dir = Path(out_dir)
    check_writable(out_dir, folder=True)
    validate(grid)
    check_settings(out_dir, grid)
    set_threads(grid.threads)
    from tqdm.auto import tqdm

    preset = get_task(grid.task).preset(grid.preset)  # as this process sees it (the workers are given it)
    done = read_records(out_dir)
    todo = [(cell, run_dir(out_dir, *cell)) for cell in grid.runs()
            if done.get(run_name(*cell), {}).get("status") not in FINISHED]
    bar = tqdm(total=len(todo), desc=f"ablate {grid.task}", unit="run", disable=not progress, dynamic_ncols=True)

    def save(record: dict[str, Any], cell: Cell, folder: Path) -> None:
        if record["status"] != "ok":
            bar.write(f"{folder.name} {record['status']}: {record['error']}")
        write_result(out_dir, cell, record)
        bar.set_postfix_str(folder.name)
        bar.update()

    if grid.workers > 1 and runner is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(grid.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_execute_in_worker, grid, preset, cell, folder): (cell, folder) for cell, folder in todo}
            for future in as_completed(futures):
                save(future.result(), *futures[future])
    else:
        run = runner or _runner(grid, preset)
        for cell, folder in todo:
            bar.set_postfix_str(f"{folder.name}: {steps_for(preset, cell.batch_size)} steps")
            save(_execute(run, grid, cell, folder), cell, folder)
    bar.close()
    report = write_report(out_dir, grid)
    records = read_records(out_dir)
    if not any(records.get(run_name(*cell), {}).get("status") in FINISHED for cell in grid.runs()):
        raise StylenormError(f"every run of the grid failed (the errors are in {report} and {out_dir / RECORDS}); "
                             "fix the cause and run the same command again to retry them")
    return report
