"""`stylenorm ablate style | diffusion | classification`: train every (norm, batch size, seed) under one
budget and report which normalization wins where. One subcommand per task, so each task's options
(the painting of `style`, the learning-rate axis of `classification`) stay with it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from stylenorm.ablation.presets import GRID_DEFAULTS, PRESETS
from stylenorm.cli.options import App, Threads, check_finite
from stylenorm.errors import StylenormError

app = App(help="Train every (norm, batch size, seed) under one budget and report which normalization wins where.",
          no_args_is_help=True)

# The options every task shares.
Norms = Annotated[Optional[str], typer.Option(help="Comma-separated norm specs (default: the task's grid).")]
BatchSizes = Annotated[Optional[str], typer.Option("--batch-sizes", help="Comma-separated batch sizes (default: the task's grid).")]
Seeds = Annotated[Optional[str], typer.Option(help="Comma-separated seeds (default: the task's grid).")]
Output = Annotated[Path, typer.Option("-o", "--output", help="Folder for runs/, results.csv, report.md and plots.")]
Cpu = Annotated[bool, typer.Option("--cpu", help="Train on CPU even when a GPU is present.")]
KeepWeights = Annotated[bool, typer.Option("--keep-weights", help="Keep every run's weights and checkpoints.")]
Workers = Annotated[int, typer.Option("--workers", min=1, help="Runs in parallel, one thread each (e.g. the CPU's cores).")]


def _preset_option(task: str, notes: str) -> typer.models.OptionInfo:
    return typer.Option("small", help=f"{' / '.join(PRESETS[task])}: {notes}")


def _split(text: str, kind: type, name: str) -> tuple:
    try:
        values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise StylenormError(f"{name} must be a comma-separated list of {kind.__name__}s, got {text!r}") from None
    if kind is float:  # a list in one option: the finite-float check of the other options cannot see it
        values = tuple(check_finite(name, v) for v in values)
    if len(set(values)) != len(values):
        raise StylenormError(f"{name} lists a value twice: {text!r}")
    return values


def _run(task: str, preset: str, norms: str | None, batch_sizes: str | None, seeds: str | None, output: Path,
         cpu: bool, threads: int | None, keep_weights: bool, workers: int, **task_options) -> None:
    from stylenorm.ablation.grid import Grid, run_grid

    defaults = GRID_DEFAULTS[task]
    grid = Grid(
        task=task, preset=preset,
        norms=_split(norms, str, "--norms") if norms is not None else defaults.norms,
        batch_sizes=_split(batch_sizes, int, "--batch-sizes") if batch_sizes is not None else defaults.batch_sizes,
        seeds=_split(seeds, int, "--seeds") if seeds is not None else defaults.seeds,
        cpu=cpu, threads=threads, keep_weights=keep_weights, workers=workers,
        command="stylenorm " + " ".join(shlex.quote(a) for a in sys.argv[1:]), **task_options,
    )
    typer.echo(f"wrote {run_grid(grid, output)}")


@app.command("classification")
def classification(
    output: Output,
    norms: Norms = None, batch_sizes: BatchSizes = None, seeds: Seeds = None,
    preset: str = _preset_option("classification", "small (a 2-core CPU, minutes), full (one GPU)."),
    lrs: Optional[str] = typer.Option(
        None, "--lrs", help="Comma-separated learning rates at batch 32 (scaled linearly to the other batch sizes), "
        "each run for every norm, batch size and seed; the report adds error against learning rate and each norm's "
        "highest stable one (default: the preset's rate only)."),
    cpu: Cpu = False, threads: Threads = None, keep_weights: KeepWeights = False, workers: Workers = 1,
) -> None:
    """The GroupNorm paper's experiment: a small ResNet on MNIST, test error against batch size per norm."""
    _run("classification", preset, norms, batch_sizes, seeds, output, cpu, threads, keep_weights, workers,
         lrs=_split(lrs, float, "--lrs") if lrs is not None else ())


@app.command("diffusion")
def diffusion(
    output: Output,
    norms: Norms = None, batch_sizes: BatchSizes = None, seeds: Seeds = None,
    preset: str = _preset_option("diffusion", "small (a 2-core CPU, minutes), converged (samples are digits; "
                                              "a 2-core CPU, hours), full (one GPU)."),
    cpu: Cpu = False, threads: Threads = None, keep_weights: KeepWeights = False, workers: Workers = 1,
) -> None:
    """The diffusion U-Net on MNIST: held-out loss and Fréchet distance of samples per norm and batch size."""
    _run("diffusion", preset, norms, batch_sizes, seeds, output, cpu, threads, keep_weights, workers)


@app.command("style")
def style(
    output: Output,
    norms: Norms = None, batch_sizes: BatchSizes = None, seeds: Seeds = None,
    preset: str = _preset_option("style", "small (a 2-core CPU, minutes), long (32x small; a 2-core CPU, an hour, "
                                          "not converged), full (one GPU)."),
    style_image: Optional[Path] = typer.Option(None, "--style-image", help="The painting."),
    data: Optional[Path] = typer.Option(None, help="Folder of content photos."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="Local VGG16 file (default: torchvision's)."),
    cpu: Cpu = False, threads: Threads = None, keep_weights: KeepWeights = False, workers: Workers = 1,
) -> None:
    """The style network: style and content losses on held-out photos per norm and batch size."""
    _run("style", preset, norms, batch_sizes, seeds, output, cpu, threads, keep_weights, workers,
         style_image=str(style_image) if style_image else None, data=str(data) if data else None,
         vgg_weights=str(vgg_weights) if vgg_weights else None)
