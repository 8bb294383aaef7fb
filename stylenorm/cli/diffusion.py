"""`stylenorm diffusion train | sample | export | train-classifier`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stylenorm.cli.options import App, Config, Device, config_options
from stylenorm.config import HELP_FORCE, build_config
from stylenorm.diffusion.config import ClassifierConfig, DiffusionTrainConfig
from stylenorm.errors import StylenormError

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
def diffusion_sample(
    # A str, not a Path: Path would drop the trailing slash that asks for a folder.
    output: str = typer.Option("samples.png", "-o", "--output", help="grid.png, or DIR/ for one PNG per sample plus grid.png."),
    weights: Optional[str] = typer.Option(None, help="Model .safetensors, a run directory, or a shipped name; default: the "
                                                     "shipped MNIST model."),
    num_samples: int = typer.Option(64, "--num-samples", "-n", help="How many images."),
    sampler: Optional[str] = typer.Option(None, help="dpm++sde (DPM-Solver++ 2M SDE; default), dpm++ (its ODE form), ddim or ddpm."),
    steps: Optional[int] = typer.Option(None, help="Steps of dpm++sde / dpm++ / ddim (default 10; ddpm uses every training step)."),
    eta: float = typer.Option(0.0, help="DDIM noise: 0 = deterministic, 1 = DDPM-like."),
    labels: Optional[str] = typer.Option(None, help="Class labels, e.g. 7 or 0,1,2 (cycled); default: all classes in turn."),
    guidance: Optional[float] = typer.Option(None, help="Classifier-free guidance scale (1 = none; default 1.5 for dpm++sde, 2 "
                                                        "for the others)."),
    seed: int = typer.Option(0, help="Seed of the sampling noise."),
    nrow: Optional[int] = typer.Option(None, help="Images per grid row (default: square grid)."),
    device: Device = "cpu",
) -> None:
    """Draw samples from a trained diffusion model (works offline with the shipped MNIST model)."""
    from stylenorm.diffusion.sample import check_output, generate, load_diffusion_model, parse_labels, save_samples

    check_output(output, num_samples)  # before minutes of sampling, not after
    if nrow is not None and nrow < 1:
        raise StylenormError(f"--nrow {nrow} is below 1; pass the number of images per grid row")
    loaded = load_diffusion_model(weights, device)
    label_tensor = parse_labels(labels, num_samples, loaded.model.config.num_classes)
    images = generate(loaded, num_samples, sampler, steps, label_tensor, guidance, eta, seed, progress=True)
    if nrow is None and label_tensor is not None and labels is None and num_samples % loaded.model.config.num_classes == 0:
        nrow = loaded.model.config.num_classes  # one class per column
    typer.echo(f"wrote {save_samples(images, output, nrow)}")


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
