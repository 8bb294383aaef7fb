"""The ablation grid: every (norm, batch size, seed) trained and scored, resumable.

Layout of the output folder:
    settings.json           what the grid is; a rerun with other settings is refused
    runs/<run>/result.json  one per run: status "ok" with its metrics, or "failed" with the error
    runs/<run>/*.png        its generated digits or stylized photos (train/ with weights only if kept)
    results.csv, report.md, *.png   rebuilt from the run results after every grid pass
"""

from __future__ import annotations

import json
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from stylenorm.ablation.presets import (
    DEFAULT_BATCH_SIZES, DEFAULT_NORMS, DEFAULT_SEEDS, get_preset, preset_dict, steps_for,
)
from stylenorm.atomic import atomic_output, check_writable
from stylenorm.errors import StylenormError
from stylenorm.norms import NormSpecError, parse_spec


@dataclass
class Grid:
    task: str  # diffusion, style or classification
    preset: str = "small"
    norms: tuple[str, ...] = DEFAULT_NORMS
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    # style task inputs (ignored by diffusion)
    style_image: str | None = None
    data: str | None = None
    vgg_weights: str | None = None
    cpu: bool = False
    threads: int | None = None
    keep_weights: bool = False  # keep each run's train/ folder (weights, checkpoints) after scoring it
    workers: int = 1  # runs in parallel, each in its own one-thread process
    command: str = ""  # how the grid was launched, for the report

    def runs(self) -> list[tuple[str, int, int]]:
        return [(n, b, s) for n in self.norms for b in self.batch_sizes for s in self.seeds]

    def settings(self) -> dict[str, Any]:
        """What makes two grids the same experiment (not where files are or how many threads)."""
        return {
            "task": self.task, "preset": self.preset, "preset_values": preset_dict(get_preset(self.task, self.preset)),
            "norms": list(self.norms), "batch_sizes": list(self.batch_sizes), "seeds": list(self.seeds),
            **({"style_image": Path(self.style_image).name} if self.task == "style" and self.style_image else {}),
        }


def run_name(norm: str, batch_size: int, seed: int) -> str:
    return f"{norm}_bs{batch_size}_seed{seed}"


def validate(grid: Grid) -> None:
    """Every error that would stop a run, raised before the first one starts."""
    get_preset(grid.task, grid.preset)
    if not grid.norms or not grid.batch_sizes or not grid.seeds:
        raise StylenormError("the grid is empty; give at least one norm, one batch size and one seed")
    for norm in grid.norms:
        try:
            spec = parse_spec(norm)
        except NormSpecError as exc:
            raise StylenormError(f"--norms: {exc}") from None
        if spec.kind == "bn" and min(grid.batch_sizes) < 2:
            raise StylenormError(
                f"BatchNorm cannot train with a batch of {min(grid.batch_sizes)} (one value per channel); "
                "drop batch sizes below 2 or drop bn from --norms"
            )
    if min(grid.batch_sizes) < 1:
        raise StylenormError(f"batch sizes must be at least 1, got {min(grid.batch_sizes)}")
    preset = get_preset(grid.task, grid.preset)
    if max(grid.batch_sizes) > preset.images:
        raise StylenormError(f"batch size {max(grid.batch_sizes)} exceeds the preset's {preset.images} training images per run")
    _check_models_build(grid)
    if grid.task == "style":
        for name, value in (("--style-image", grid.style_image), ("--data", grid.data)):
            if not value or not Path(value).exists():
                raise StylenormError(f"{name} {value!r} not found; the style ablation needs a painting (--style-image) "
                                     "and a folder of photos (--data)")
        from stylenorm.style.loss import load_vgg  # the offline / missing-file error, before training

        load_vgg(grid.vgg_weights, "auto", ["relu2_2"])


def _check_models_build(grid: Grid) -> None:
    """A spec like gn7 parses but does not divide every layer's width: find out now."""
    preset = get_preset(grid.task, grid.preset)
    for norm in grid.norms:
        try:
            if grid.task == "classification":
                from stylenorm.ablation.classification_task import ResNetClassifier

                ResNetClassifier(norm, preset.width)
            elif grid.task == "diffusion":
                from stylenorm.ablation.diffusion_task import train_config
                from stylenorm.diffusion.unet import UNet

                UNet(train_config(preset, norm, max(grid.batch_sizes), 0, Path("."), True, None).unet_config(10))
            else:
                from stylenorm.style.net import TransformerNet

                TransformerNet(norm, 1)
        except NormSpecError as exc:
            raise StylenormError(f"norm {norm!r} does not fit the {grid.task} model: {exc}") from None


def check_settings(out_dir: Path, grid: Grid) -> None:
    path = out_dir / "settings.json"
    wanted = grid.settings()
    if path.is_file():
        saved = json.loads(path.read_text())
        differing = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        if differing:
            raise StylenormError(
                f"{out_dir} holds a grid with other settings ({', '.join(differing)} differ); "
                "pass another -o folder, or the same options to resume it"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(wanted, indent=2) + "\n")


def read_result(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "result.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _runner(grid: Grid, preset=None) -> Callable[[str, int, int, Path], dict[str, Any]]:
    preset = preset or get_preset(grid.task, grid.preset)
    if grid.task == "classification":
        from stylenorm.ablation.classification_task import run_classification

        return lambda norm, bs, seed, run_dir: run_classification(preset, norm, bs, seed, run_dir, threads=grid.threads)
    if grid.task == "diffusion":
        from stylenorm.ablation.diffusion_task import run_diffusion

        return lambda norm, bs, seed, run_dir: run_diffusion(preset, norm, bs, seed, run_dir, cpu=grid.cpu, threads=grid.threads)
    from stylenorm.ablation.style_task import run_style

    return lambda norm, bs, seed, run_dir: run_style(
        preset, norm, bs, seed, run_dir, style_image=str(grid.style_image), data=str(grid.data),
        vgg_weights=grid.vgg_weights, cpu=grid.cpu, threads=grid.threads)


def _execute(run: Callable[[str, int, int, Path], dict[str, Any]], grid: Grid, norm: str, bs: int, seed: int,
             run_dir: Path) -> dict[str, Any]:
    """One run, as the record its result.json holds; a crashed run is data, not the end of the grid."""
    record: dict[str, Any] = {"task": grid.task, "norm": norm, "batch_size": bs, "seed": seed}
    try:
        record.update(run(norm, bs, seed, run_dir))
        record["status"] = "ok"
        if not grid.keep_weights:  # megabytes per run; the scores and pictures stay
            shutil.rmtree(run_dir / "train", ignore_errors=True)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                      traceback=traceback.format_exc())
    return record


def _execute_in_worker(grid: Grid, preset, norm: str, bs: int, seed: int, run_dir: Path) -> dict[str, Any]:
    torch.set_num_threads(1)  # the workers share the cores between them
    return _execute(_runner(grid, preset), grid, norm, bs, seed, run_dir)


def run_grid(grid: Grid, out_dir: str | Path, progress: bool = True,
             runner: Callable[[str, int, int, Path], dict[str, Any]] | None = None) -> Path:
    """Run every missing or failed run of the grid, then write results.csv, plots and report.md.

    With grid.workers > 1 the runs go to that many processes of one thread each (runs are
    independent, and small models use one core better than two threads do).
    """
    out_dir = Path(out_dir)
    check_writable(out_dir, folder=True)
    validate(grid)
    check_settings(out_dir, grid)
    if grid.threads:
        torch.set_num_threads(grid.threads)
    from tqdm.auto import tqdm

    todo = []
    for norm, bs, seed in grid.runs():
        run_dir = out_dir / "runs" / run_name(norm, bs, seed)
        previous = read_result(run_dir)
        if not (previous and previous.get("status") == "ok"):
            todo.append((norm, bs, seed, run_dir))
    bar = tqdm(total=len(todo), desc=f"ablate {grid.task}", unit="run", disable=not progress, dynamic_ncols=True)

    def save(record: dict[str, Any], run_dir: Path) -> None:
        if record["status"] != "ok":
            bar.write(f"{run_dir.name} failed: {record['error']}")
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(run_dir / "result.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=float) + "\n")
        bar.set_postfix_str(run_dir.name)
        bar.update()

    if grid.workers > 1 and runner is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(grid.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            preset = get_preset(grid.task, grid.preset)  # as this process sees it
            futures = {pool.submit(_execute_in_worker, grid, preset, *job): job[3] for job in todo}
            for future in as_completed(futures):
                save(future.result(), futures[future])
    else:
        run = runner or _runner(grid)
        for norm, bs, seed, run_dir in todo:
            bar.set_postfix_str(f"{run_dir.name}: {steps_for(get_preset(grid.task, grid.preset), bs)} steps")
            save(_execute(run, grid, norm, bs, seed, run_dir), run_dir)
    bar.close()

    from stylenorm.ablation.report import write_report

    return write_report(out_dir, grid)
