"""The stylenorm command line: parses options, loads a config, calls the package.

The trainers' options are generated from their config dataclasses (stylenorm.cli_options.config_options);
options several commands share are the types in stylenorm.cli_options. Only main() formats a StylenormError.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from stylenorm import __version__
from stylenorm.cli_options import (
    App, BenchDevice, BenchOutput, Config, Device, Repeats, StyleChoice, StyleWeights, Threads, VggFormat,
    check_finite, config_options,
)
from stylenorm.config import HELP_FORCE, HELP_USER_WEIGHTS, build_config
from stylenorm.diffusion.config import ClassifierConfig, DiffusionTrainConfig
from stylenorm.errors import StylenormError
from stylenorm.style.config import STYLE_REFERENCE_SIZE, StyleTrainConfig
from stylenorm.style.loss_recipes import LOSS_NAMES, OPTIMIZE_ITERATIONS

app = App(
    help="Fast neural style transfer and small diffusion models on one normalization backend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = App(help="Benchmarks: results are printed and written to a file.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stylenorm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Fast neural style transfer and small diffusion models on one normalization backend."""


# ---------------------------------------------------------------- bench
@bench_app.command("norms")
def bench_norms(
    output: BenchOutput = Path("results/bench_norms.md"),
    device: BenchDevice = None,
    repeats: Repeats = 20,
    quick: bool = typer.Option(False, help="Small shapes and few repeats (a smoke run)."),
) -> None:
    """Time forward and forward+backward of every norm spec against torch.nn."""
    from stylenorm.atomic import check_writable

    check_writable(output)  # before minutes of measuring, not after
    from stylenorm.bench.norms import run_norm_benchmark

    run_norm_benchmark(output=output, device=device, repeats=repeats, quick=quick)


# ---- style
@app.command("train-style")
@config_options(StyleTrainConfig)
def train_style_cmd(config: Config = None, **overrides) -> None:
    """Train a style network (several --style images make one multi-style network)."""
    from stylenorm.style.train import train_style

    started_with = None
    if overrides.get("resume"):
        from stylenorm.checkpoints import run_options

        # alone, --resume continues with the options the run was started with; the run folder is
        # where the run is now (train_style finds it from --resume), not where it was started
        started_with = {k: v for k, v in run_options(overrides["resume"]).items() if k not in ("run_dir", "force")}
    typer.echo(f"wrote {train_style(build_config(StyleTrainConfig, config, overrides, started_with))}")


@app.command("stylize")
def stylize_cmd(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    style: StyleChoice = None,
    weights: StyleWeights = None,
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (one input) or folder."),
    max_size: Optional[int] = typer.Option(None, "--max-size", help="Shrink so the longest side is at most this."),
    strength: float = typer.Option(1.0, "--strength", help="1 = full style, 0 = the original photo."),
    preserve_color: bool = typer.Option(False, "--preserve-color", help="Keep the photo's colours, transfer only luminance."),
    style_scale: float = typer.Option(1.0, "--style-scale", help=f"Brush-stroke size relative to the picture: 2 = twice as big, 0.5 = half (every photo is stylized at {STYLE_REFERENCE_SIZE} px / scale on its long side, then resized back; any painting: the painting analysed at the photo's size x scale)."),
    device: Device = "cpu",
    tile_size: Optional[int] = typer.Option(None, "--tile-size", help="Process in tiles of this size (default: automatic for large photos; 0 never)."),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", help="Refuse larger images (decompression-bomb guard); 0 = no limit."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the device computes it natively, else fp32), fp32, bf16 or fp16 (GPUs)."),
    loss: str = typer.Option("gatys", "--loss", help=f"--style PAINTING.jpg: the loss optimized ({', '.join(LOSS_NAMES)})."),
    iterations: Optional[int] = typer.Option(None, "--iterations", help=f"--style PAINTING.jpg: loss evaluations of the optimization (default {OPTIMIZE_ITERATIONS})."),
    style_weight: Optional[float] = typer.Option(None, "--style-weight", help="--style PAINTING.jpg: weight of the painting's Gram loss (default: the loss's own)."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="--style PAINTING.jpg: local VGG16 file (default: torchvision's, downloaded once)."),
    vgg_format: VggFormat = "auto",
    stabilize: Optional[str] = typer.Option(None, "--stabilize", help="Clips: flow (the default: IN statistics carried across frames + blending along optical flow), norm (the statistics only) or none (per frame)."),
    frames: bool = typer.Option(False, "--frames", help="Clips as folders of numbered frames: folder inputs are one clip each, and clip outputs are frame folders unless -o names a clip file."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of a frame-folder input (default 25)."),
) -> None:
    """Stylize photos and clips; writes <name>_<style>.<ext> beside each input by default.

    --style PAINTING.jpg (an image, not weights) stylizes with any painting by optimizing the picture (slower)."""
    from stylenorm.style.optimize import is_painting_file
    from stylenorm.style.stylize import check_photo_options, resolve_precision, resolve_style, stylize_many, working_size

    check_photo_options(max_size=max_size, max_pixels=max_pixels, tile_size=tile_size)
    if style and is_painting_file(style):
        from stylenorm.style.optimize import stylize_with_painting

        failures = stylize_with_painting(
            inputs, Path(style), output, loss=loss, iterations=iterations, style_weight=style_weight, style_scale=style_scale,
            preserve_color=preserve_color, strength=strength, max_size=max_size, max_pixels=max_pixels,
            precision=precision, device=device, vgg_weights=vgg_weights, vgg_format=vgg_format,
            report=lambda line: typer.echo(line, err=line.startswith(("error", "note"))),
        )
        if failures:
            raise StylenormError(f"{failures} of the inputs failed (see above); the others were written")
        return

    resolve_precision(precision, device)  # bad values fail before the weights load
    working_size(1, 1, style_scale)
    from stylenorm.style.temporal import DEFAULT_STABILIZE, STABILIZE_MODES

    stabilize = stabilize or DEFAULT_STABILIZE
    if stabilize not in STABILIZE_MODES:
        raise StylenormError(f"--stabilize {stabilize!r} is not a mode; use one of {', '.join(STABILIZE_MODES)}")
    choice = resolve_style(style, weights, device)
    if choice.note:
        typer.echo(f"note: {choice.note}", err=True)
    failures = stylize_many(
        choice, inputs, output, report=lambda line: typer.echo(line, err=line.startswith(("error", "note"))),
        stabilize=stabilize, frames=frames, fps=fps,
        max_size=max_size, strength=strength, preserve_color=preserve_color, style_scale=style_scale, max_pixels=max_pixels,
        tile_size=tile_size, progress=True, precision=precision,
    )
    if failures:
        raise StylenormError(f"{failures} of the inputs failed (see above); the others were written")


@app.command("add-style")
def add_style_cmd(
    painting: Path = typer.Argument(..., help="The painting (an image file)."),
    name: str = typer.Option(..., "--name", help="The new style's name (stylize --style NAME)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps of the new style's gamma/beta (default 200)."),
    base: Optional[Path] = typer.Option(None, "--base", help="Multi-style network to extend (default: the shipped one)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of content photos (default: the bundled demo photos)."),
    holdout: int = typer.Option(0, "--holdout", help="Photos of --data never trained on (as train-style --holdout)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate of gamma/beta (default 0.01)."),
    style_weight: Optional[float] = typer.Option(None, "--style-weight", help="Default: the base network's."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="Local VGG16 file (default: torchvision's, downloaded once)."),
    vgg_format: VggFormat = "auto",
    output: Optional[Path] = typer.Option(None, "-o", "--output", help=f"Weights file; default: NAME.safetensors in {HELP_USER_WEIGHTS}."),
    resume: bool = typer.Option(False, "--resume", help="Continue the last add-style run of this NAME (or -o)."),
    force: bool = typer.Option(False, "--force", help=HELP_FORCE),
    threads: Threads = None,
) -> None:
    """Add a painting as a style of the shipped network, training only its gamma/beta (minutes, not hours)."""
    from stylenorm.style.add_style import add_style_config
    from stylenorm.style.train import train_style

    cfg = add_style_config(painting, name, steps=steps, base=base, data=data, holdout=holdout, lr=lr,
                           style_weight=style_weight, vgg_weights=vgg_weights, vgg_format=vgg_format, output=output,
                           resume=resume, force=force, threads=threads)
    if force and not resume:
        import shutil

        from stylenorm.style.train import check_config

        check_config(cfg)
        # add-style's run folder is its own, per NAME (it has no --run-dir): --force, which replaces the
        # model, starts it afresh too, or an earlier run's checkpoints would refuse the new run
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
    path = train_style(cfg)
    typer.echo(f"wrote {path}; use it with: stylenorm stylize PHOTO --style {name}")


@app.command("eval-style")
def eval_style_cmd(
    weights: Optional[list[Path]] = typer.Argument(None, help="Style weights files (default: every shipped style network); a painting image scores stylize --style PAINTING (optimization)."),
    paintings: Path = typer.Option(..., "--paintings", help="Folder holding the style images, named as in the model cards."),
    photos: Optional[list[Path]] = typer.Option(None, "--photos", help="Held-out photos or folders of them (repeatable)."),
    data: Optional[Path] = typer.Option(None, "--data", help="A training content folder: its fixed --holdout split is used."),
    holdout: int = typer.Option(0, "--holdout", help="Size of the held-out split of --data (as train-style --holdout)."),
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Also score the bundled demo photos."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="Local VGG16 file (torchvision or caffe format)."),
    vgg_format: VggFormat = "auto",
    output: Path = typer.Option(Path("results/eval_style"), "-o", "--output", help="Folder for eval.json, eval.md and contact sheets."),
    update_card: bool = typer.Option(False, "--update-card", help="Write the scores into each weights file's model card."),
    against_optimized: bool = typer.Option(False, "--against-optimized", help="Also score the optimization mode with each painting and the network's own loss on the same photos (its upper bound; minutes per photo and style)."),
    threads: Threads = None,
) -> None:
    """Score style networks on held-out photos: palette, deep style, style match, strength, structure kept."""
    from stylenorm.style.evaluate import evaluate_styles

    evaluate_styles(weights or [], paintings, photos=photos or [], data=data, holdout=holdout, demo=demo,
                    vgg_weights=vgg_weights, vgg_format=vgg_format, output=output, update_card=update_card,
                    threads=threads, against_optimized=against_optimized, report=typer.echo)


@app.command("styles")
def styles_cmd() -> None:
    """List the shipped styles (use the name with stylize --style NAME)."""
    from stylenorm.style.stylize import DEFAULT_WEIGHTS, list_shipped_styles

    rows = list_shipped_styles()
    if not rows:
        raise StylenormError("no shipped styles found in weights/; reinstall stylenorm")
    for name, path, card in rows:
        default = " (default)" if path.stem == DEFAULT_WEIGHTS and name == (card.get("default_style") or card["styles"][0]) else ""
        typer.echo(f"{name}{default}\t{path.name}\t{card.get('steps', '?')} steps, {card.get('image_size', '?')} px crops")
# ---- end style


# ---- diffusion
diffusion_app = App(help="Diffusion U-Net (GroupNorm + FiLM): train and sample.", no_args_is_help=True)
app.add_typer(diffusion_app, name="diffusion")


@diffusion_app.command("train")
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

        # alone, --resume continues with the options the run was started with; a preset's output_dir
        # names where the run was started, not where it is now (it may have been moved)
        started_with = run_options(resume)
        overrides = {**overrides, "output_dir": overrides.get("output_dir") or str(run_directory(resume))}
    cfg = build_config(DiffusionTrainConfig, config, overrides, started_with)
    typer.echo(f"model written to {train(cfg, resume=resume)}")


@diffusion_app.command("sample")
def diffusion_sample(
    # A str, not a Path: Path would drop the trailing slash that asks for a folder.
    output: str = typer.Option("samples.png", "-o", "--output", help="grid.png, or DIR/ for one PNG per sample plus grid.png."),
    weights: Optional[str] = typer.Option(None, help="Model .safetensors, a run directory, or a shipped name; default: the shipped MNIST model."),
    num_samples: int = typer.Option(64, "--num-samples", "-n", help="How many images."),
    sampler: Optional[str] = typer.Option(None, help="dpm++sde (DPM-Solver++ 2M SDE; default), dpm++ (its ODE form), ddim or ddpm."),
    steps: Optional[int] = typer.Option(None, help="Steps of dpm++sde / dpm++ / ddim (default 10; ddpm uses every training step)."),
    eta: float = typer.Option(0.0, help="DDIM noise: 0 = deterministic, 1 = DDPM-like."),
    labels: Optional[str] = typer.Option(None, help="Class labels, e.g. 7 or 0,1,2 (cycled); default: all classes in turn."),
    guidance: Optional[float] = typer.Option(None, help="Classifier-free guidance scale (1 = none; default 1.5 for dpm++sde, 2 for the others)."),
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


@diffusion_app.command("export")
def diffusion_export(
    checkpoint: Path = typer.Argument(..., help="Run directory or checkpoint directory."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.safetensors; the .json card goes beside it)."),
    half: bool = typer.Option(False, help="Store float16 weights (half the size)."),
    force: bool = typer.Option(False, "--force", help=HELP_FORCE),
) -> None:
    """Write the EMA weights of a training checkpoint as a model with its card (e.g. into weights/)."""
    from stylenorm.diffusion.train import export_checkpoint

    typer.echo(f"model written to {export_checkpoint(checkpoint, output, half, force=force)}")


@diffusion_app.command("train-classifier")
@config_options(ClassifierConfig)
def diffusion_train_classifier(config: Config = None, **overrides) -> None:
    """Train the MNIST feature classifier whose features score generated digits (the ablation's Fréchet distance)."""
    from stylenorm.diffusion.classifier import train_digit_classifier

    cfg = build_config(ClassifierConfig, config, overrides)
    path, accuracy = train_digit_classifier(cfg)
    typer.echo(f"held-out accuracy {accuracy:.4f} on {cfg.holdout} images; classifier written to {path}")


@bench_app.command("diffusion")
def bench_diffusion(
    output: BenchOutput = Path("results/bench_diffusion.md"),
    device: BenchDevice = None,
    quick: bool = typer.Option(False, help="Tiny model and few repeats (a smoke run)."),
    threads: Threads = None,
) -> None:
    """Training images/s and DDIM-50 sampling time (64 samples): our U-Net vs diffusers.UNet2DModel."""
    from stylenorm.atomic import check_writable

    check_writable(output)  # before minutes of measuring, not after
    from stylenorm.bench.diffusion import run_diffusion_benchmark

    run_diffusion_benchmark(output=output, device=device, quick=quick, threads=threads)


@bench_app.command("sampling")
def bench_sampling(
    output: BenchOutput = Path("results/bench_sampling.md"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write a PNG of Fréchet distance against steps."),
    weights: Optional[str] = typer.Option(None, help="Diffusion model (default: the shipped MNIST model)."),
    num_samples: int = typer.Option(256, "--num-samples", "-n", help="Samples per sampler and step count."),
    steps: str = typer.Option("5,10,20,50", help="Step counts, comma-separated."),
    samplers: str = typer.Option("ddpm,ddim,dpm++,dpm++sde", help="Samplers, comma-separated."),
    guidance: float = typer.Option(2.0, help="Classifier-free guidance scale of every row."),
    device: Device = "cpu",
    threads: Threads = None,
) -> None:
    """Fréchet distance and recognised share of samples per sampler and step count (shipped classifier)."""
    from stylenorm.atomic import check_writable

    check_writable(output)  # before minutes of measuring, not after
    from stylenorm.bench.sampling import run_sampling_benchmark

    try:
        step_counts = tuple(int(v) for v in steps.split(","))
    except ValueError:
        raise StylenormError(f"--steps {steps!r} must be comma-separated integers, e.g. 5,10,20") from None
    run_sampling_benchmark(output, plot, weights, num_samples, step_counts, tuple(s.strip() for s in samplers.split(",")),
                           guidance=guidance, device=device, threads=threads)


@bench_app.command("fused")
def bench_fused(
    output: BenchOutput = Path("results/bench_fused.md"),
    device: BenchDevice = None,
    repeats: Repeats = 20,
    compile: bool = typer.Option(True, "--compile/--no-compile", help="Also time torch.compile of the composition."),
    quick: bool = typer.Option(False, help="Small shapes and few repeats (a smoke run)."),
) -> None:
    """Time the fused GroupNorm+FiLM+SiLU against its eager composition and torch.compile."""
    from stylenorm.atomic import check_writable

    check_writable(output)  # before minutes of measuring, not after
    from stylenorm.bench.fused import run_fused_benchmark

    run_fused_benchmark(output=output, device=device, repeats=repeats, quick=quick, compile=compile)


@bench_app.command("stylize")
def bench_stylize(
    output: BenchOutput = Path("results/bench_stylize.md"),
    device: BenchDevice = None,
    repeats: Repeats = 5,
    quick: bool = typer.Option(False, help="Small images and one repeat (a smoke run)."),
    threads: Threads = None,
) -> None:
    """ms per image and peak memory of the plain float32 forward and of the `stylize` path, with PSNR."""
    from stylenorm.atomic import check_writable

    check_writable(output)  # before minutes of measuring, not after
    from stylenorm.bench.stylize import run_stylize_benchmark

    run_stylize_benchmark(output=output, device=device, repeats=repeats, quick=quick, threads=threads)


@bench_app.command("video")
def bench_video(
    output: BenchOutput = Path("results/bench_video.md"),
    device: BenchDevice = None,
    style: Optional[str] = typer.Option(None, "--style", "-s", help="Shipped style NAME (default: the default style)."),
    frames: int = typer.Option(24, help="Frames per flicker clip."),
    speed_frames: int = typer.Option(6, "--speed-frames", help="Frames per speed clip (plus one)."),
    quick: bool = typer.Option(False, help="Tiny clips (a smoke run)."),
    threads: Threads = None,
) -> None:
    """Warping error (Lai et al. 2018) and strength of --stabilize none/norm/flow on made clips, and frames/s."""
    from stylenorm.atomic import check_writable

    check_writable(output)  # before minutes of measuring, not after
    from stylenorm.bench.video import run_video_benchmark
    from stylenorm.video import require_av

    require_av()
    run_video_benchmark(output=output, device=device, quick=quick, threads=threads, style=style, frames=frames,
                        speed_frames=speed_frames)


# ---- ablation
@app.command("ablate")
def ablate_cmd(
    task: str = typer.Argument(..., help="classification (the GroupNorm paper's experiment), diffusion or style."),
    norms: Optional[str] = typer.Option(None, help="Comma-separated norm specs (default: the task's grid)."),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", help="Comma-separated batch sizes (default: the task's grid)."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds (default: the task's grid)."),
    preset: str = typer.Option("small", help="small (a 2-core CPU, minutes), full (one GPU), diffusion: converged (samples are digits; a 2-core CPU, hours), style: long (32x small; a 2-core CPU, an hour, not converged)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for runs/, results.csv, report.md and plots."),
    style_image: Optional[Path] = typer.Option(None, "--style-image", help="style task: the painting."),
    data: Optional[Path] = typer.Option(None, help="style task: folder of content photos."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="style task: local VGG16 file (default: torchvision's)."),
    cpu: bool = typer.Option(False, "--cpu", help="Train on CPU even when a GPU is present."),
    threads: Threads = None,
    keep_weights: bool = typer.Option(False, "--keep-weights", help="Keep every run's weights and checkpoints."),
    workers: int = typer.Option(1, "--workers", min=1, help="Runs in parallel, one thread each (e.g. the CPU's cores)."),
    lrs: Optional[str] = typer.Option(
        None, "--lrs", help="classification: comma-separated learning rates at batch 32 (scaled linearly to the other "
        "batch sizes), each run for every norm, batch size and seed; the report adds error against learning rate and "
        "each norm's highest stable one (default: the preset's rate only)."),
) -> None:
    """Train every (norm, batch size, seed) under one budget and report which normalization wins where."""
    import shlex

    from stylenorm.ablation.grid import Grid, run_grid
    from stylenorm.ablation.presets import GRID_DEFAULTS

    def split(text: str, kind: type, name: str) -> tuple:
        try:
            values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise StylenormError(f"{name} must be a comma-separated list of {kind.__name__}s, got {text!r}") from None
        if kind is float:  # a list in one option: the finite-float check of the other options cannot see it
            values = tuple(check_finite(name, v) for v in values)
        if len(set(values)) != len(values):
            raise StylenormError(f"{name} lists a value twice: {text!r}")
        return values

    if task not in GRID_DEFAULTS:
        raise StylenormError(f"unknown ablation task {task!r}; use {', '.join(GRID_DEFAULTS)}")
    defaults = GRID_DEFAULTS[task]
    grid = Grid(
        task=task, preset=preset,
        norms=split(norms, str, "--norms") if norms is not None else defaults.norms,
        batch_sizes=split(batch_sizes, int, "--batch-sizes") if batch_sizes is not None else defaults.batch_sizes,
        seeds=split(seeds, int, "--seeds") if seeds is not None else defaults.seeds, style_image=str(style_image) if style_image else None,
        data=str(data) if data else None, vgg_weights=str(vgg_weights) if vgg_weights else None, cpu=cpu, threads=threads,
        keep_weights=keep_weights, workers=workers, command="stylenorm " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        lrs=split(lrs, float, "--lrs") if lrs is not None else (),
    )
    report = run_grid(grid, output)
    typer.echo(f"wrote {report}")


# ---- web app and ONNX export
export_app = App(help="Export models for other runtimes.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("onnx")
def export_onnx_cmd(
    style: StyleChoice = None,
    weights: StyleWeights = None,
    output: Path = typer.Option(..., "-o", "--output", help="The .onnx file to write."),
    fp16: bool = typer.Option(False, "--fp16", help="float16 weights and compute (encoder kept float32); input and output stay float32."),
) -> None:
    """The stylization network with the style (or blend) baked in: image (N,3,H,W) in [0,1] -> same shape, H and W dynamic."""
    from stylenorm.export import check_output, export_onnx, require_onnx
    from stylenorm.style.stylize import resolve_style

    require_onnx()  # these two before the weights load
    check_output(output)
    choice = resolve_style(style, weights)
    if choice.note:
        typer.echo(f"note: {choice.note}", err=True)
    typer.echo(f"exporting {choice.label} (torch.export, then onnx; about 10-30 s on a CPU) ...")
    typer.echo(f"wrote {export_onnx(choice, output, half=fp16)} (style {choice.label})")


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to bind (127.0.0.1: this computer only; 0.0.0.0: the network)."),
    port: int = typer.Option(7860, help="Port of the page."),
    device: Device = "cpu",
    max_pixels: int = typer.Option(40_000_000, "--max-pixels", help="Refuse uploads with more pixels (decompression-bomb guard)."),
) -> None:
    """A local web page: stylize photos, blend styles, sample the diffusion model, read the model cards."""
    from stylenorm.serve import serve

    serve(host=host, port=port, device=device, max_pixels=max_pixels, echo=typer.echo)


def main() -> None:
    try:
        app()
    except StylenormError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C: what was interrupted said its last line (e.g. how to resume)
        sys.exit(130)


if __name__ == "__main__":
    main()
