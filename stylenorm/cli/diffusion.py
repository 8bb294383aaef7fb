"""`stylenorm diffusion train | sample | export | train-classifier`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stylenorm.cli.options import App, Config, Device, config_options
from stylenorm.config import HELP_FORCE, build_config
from stylenorm.diffusion.config import ClassifierConfig, DiffusionTrainConfig, SampleOptions

app = App(help="Diffusion U-Net (GroupNorm + FiLM): train and sample.", no_args_is_help=True)


@app.command("train")
@config_options(DiffusionTrainConfig)
def diffusion_train(
    config: Config = None,
    resume: Optional[Path] = typer.Option(None, help="Run folder or checkpoint to continue exactly (alone: with the "
                                                     "options it was started with)."),
    **overrides,
) -> None:
    """Train the diffusion U-Net (DDPM) and write <run-dir>/model.safetensors (EMA weights + card)."""
    from stylenorm.diffusion.train import train

    started_with = None
    if resume is not None:
        from stylenorm.checkpoints import run_directory, run_options

        # alone, --resume continues with the options the run was started with; a preset's run_dir
        # names where the run was started, not where it is now (it may have been moved)
        started_with = run_options(resume)
        overrides = {**overrides, "run_dir": overrides.get("run_dir") or str(run_directory(resume))}
    cfg = build_config(DiffusionTrainConfig, config, overrides, started_with)
    typer.echo(f"model written to {train(cfg, resume=resume)}")


@app.command("sample")
@config_options(SampleOptions)
def diffusion_sample(
    # A str, not a Path: Path would drop the trailing slash that asks for a folder.
    output: str = typer.Option("samples.png", "-o", "--output", help="grid.png, or DIR/ for one PNG per sample plus grid.png."),
    weights: Optional[str] = typer.Option(None, help="Model .safetensors, a run directory, or a shipped name; default: the "
                                                     "shipped MNIST model."),
    device: Device = "cpu",
    **given,
) -> None:
    """Draw samples from a trained diffusion model (works offline with the shipped MNIST model)."""
    from stylenorm.diffusion.sample import check_output, load_diffusion_model, sample, save_samples

    options = SampleOptions(**given)
    check_output(output, options.num_samples)  # before minutes of sampling, not after
    drawn = sample(load_diffusion_model(weights, device), options, progress=True)
    typer.echo(f"wrote {save_samples(drawn.images, output, drawn.nrow)}")


@app.command("export")
def diffusion_export(
    checkpoint: Path = typer.Argument(..., help="Run directory or checkpoint directory."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.safetensors; the .json card goes beside it)."),
    half: bool = typer.Option(False, help="Store float16 weights (half the size)."),
    force: bool = typer.Option(False, "--force", help=HELP_FORCE),
) -> None:
    """Write the EMA weights of a training checkpoint as a model with its card (e.g. into weights/)."""
    from stylenorm.diffusion.train import export_checkpoint

    typer.echo(f"model written to {export_checkpoint(checkpoint, output, half, force=force)}")


@app.command("train-classifier")
@config_options(ClassifierConfig)
def diffusion_train_classifier(config: Config = None, **overrides) -> None:
    """Train the MNIST feature classifier whose features score generated digits (the ablation's Fréchet distance)."""
    from stylenorm.diffusion.classifier import train_digit_classifier

    cfg = build_config(ClassifierConfig, config, overrides)
    path, accuracy = train_digit_classifier(cfg)
    typer.echo(f"held-out accuracy {accuracy:.4f} on {cfg.holdout} images; classifier written to {path}")
