"""`stylenorm ablate style | diffusion | classification`: train every (norm, batch size, seed) under one
budget and report which normalization wins where. One subcommand per task, so each task's options
(the painting of `style`, the learning-rate axis of `classification`) stay with it."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from stylenorm.ablation.presets import GRID_DEFAULTS, PRESETS
from stylenorm.cli.options import App, check_finite, config_options
from stylenorm.config import HELP_CPU, HELP_THREADS, setting
from stylenorm.errors import StylenormError

app = App(help="Train every (norm, batch size, seed) under one budget and report which normalization wins where.",
          no_args_is_help=True)

Output = Annotated[Path, typer.Option("-o", "--output", help="Folder for runs.json, results.csv, report.md and plots.")]


@dataclass
class GridOptions:
    """The options every task's grid takes: its axes and how its runs are run."""

    norms: list[str] | None = setting(None, help="Norm specs, comma-separated (default: the task's grid).")
    batch_sizes: list[int] | None = setting(None, help="Batch sizes, comma-separated (default: the task's grid).")
    seeds: list[int] | None = setting(None, help="Seeds, comma-separated (default: the task's grid).")
    cpu: bool = setting(False, help=HELP_CPU)
    threads: int | None = setting(None, help=HELP_THREADS)
    keep_weights: bool = setting(False, help="Keep every run's weights and checkpoints.")
    workers: int = setting(1, help="Runs in parallel, one thread each (e.g. the CPU's cores).")


def _preset_option(task: str, notes: str) -> typer.models.OptionInfo:
    return typer.Option("small", help=f"{' / '.join(PRESETS[task])}: {notes}")


def _distinct(values: list | None, name: str) -> tuple | None:
    if values is not None and len(set(values)) != len(values):
        raise StylenormError(f"{name} lists a value twice: {','.join(map(str, values))}")
    return tuple(values) if values is not None else None


def _rates(text: str | None) -> list[float] | None:
    """--lrs 0.1,0.4: finite numbers (one option holding a list: the finite-float check of the others cannot see it)."""
    if text is None:
        return None
    try:
        return [check_finite("--lrs", float(v)) for v in text.split(",") if v.strip()]
    except ValueError:
        raise StylenormError(f"--lrs must be a comma-separated list of numbers, got {text!r}") from None


def _run(task: str, preset: str, output: Path, given: dict, **task_options) -> None:
    from stylenorm.ablation.grid import Grid, run_grid

    options = GridOptions(**given)
    if options.workers < 1:
        raise StylenormError(f"--workers {options.workers} is below 1; pass how many runs go at once")
    defaults = GRID_DEFAULTS[task]
    grid = Grid(
        task=task, preset=preset,
        norms=_distinct(options.norms, "--norms") or defaults.norms,
        batch_sizes=_distinct(options.batch_sizes, "--batch-sizes") or defaults.batch_sizes,
        seeds=_distinct(options.seeds, "--seeds") or defaults.seeds,
        cpu=options.cpu, threads=options.threads, keep_weights=options.keep_weights, workers=options.workers,
        command="stylenorm " + " ".join(shlex.quote(a) for a in sys.argv[1:]), **task_options,
    )
    typer.echo(f"wrote {run_grid(grid, output)}")


@app.command("classification")
@config_options(GridOptions)
def classification(
    output: Output,
    preset: str = _preset_option("classification", "small (a 2-core CPU, minutes), full (one GPU)."),
    lrs: Optional[str] = typer.Option(
        None, "--lrs", help="Comma-separated learning rates at batch 32 (scaled linearly to the other batch sizes), each run for every "
        "norm, batch size and seed; the report adds error against learning rate and each norm's highest stable one "
        "(default: the preset's rate only)."),
    **given,
) -> None:
    """The GroupNorm paper's experiment: a small ResNet on MNIST, test error against batch size per norm."""
    _run("classification", preset, output, given, lrs=_distinct(_rates(lrs), "--lrs") or ())


@app.command("diffusion")
@config_options(GridOptions)
def diffusion(
    output: Output,
    preset: str = _preset_option("diffusion", "small (a 2-core CPU, minutes), converged (samples are digits; "
                                              "a 2-core CPU, hours), full (one GPU)."),
    **given,
) -> None:
    """The diffusion U-Net on MNIST: held-out loss and Fréchet distance of samples per norm and batch size."""
    _run("diffusion", preset, output, given)


@app.command("style")
@config_options(GridOptions)
def style(
    output: Output,
    preset: str = _preset_option("style", "small (a 2-core CPU, minutes), long (32x small; a 2-core CPU, an hour, "
                                          "not converged), full (one GPU)."),
    style_image: Optional[Path] = typer.Option(None, "--style-image", help="The painting."),
    data: Optional[Path] = typer.Option(None, help="Folder of content photos."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="Local VGG16 file (default: torchvision's)."),
    **given,
) -> None:
    """The style network: style and content losses on held-out photos per norm and batch size."""
    _run("style", preset, output, given, style_image=str(style_image) if style_image else None,
         data=str(data) if data else None, vgg_weights=str(vgg_weights) if vgg_weights else None)
