"""`stylenorm bench norms | diffusion | sampling | fused | stylize | video`: results printed and written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stylenorm.cli.options import App, BenchDevice, BenchOutput, Device, Repeats, Threads
from stylenorm.errors import StylenormError

app = App(help="Benchmarks: results are printed and written to a file.", no_args_is_help=True)


@app.command("norms")
def bench_norms(
    output: BenchOutput = Path("results/bench_norms.md"),
    device: BenchDevice = None,
    repeats: Repeats = 20,
    quick: bool = typer.Option(False, help="Small shapes and few repeats (a smoke run)."),
) -> None:
    """Time forward and forward+backward of every norm spec against torch.nn."""
    from stylenorm.bench.norms import run_norm_benchmark

    run_norm_benchmark(output=output, device=device, repeats=repeats, quick=quick)


@app.command("diffusion")
def bench_diffusion(
    output: BenchOutput = Path("results/bench_diffusion.md"),
    device: BenchDevice = None,
    quick: bool = typer.Option(False, help="Tiny model and few repeats (a smoke run)."),
    threads: Threads = None,
) -> None:
    """Training images/s and DDIM-50 sampling time (64 samples): our U-Net vs diffusers.UNet2DModel."""
    from stylenorm.bench.diffusion import run_diffusion_benchmark

    run_diffusion_benchmark(output=output, device=device, quick=quick, threads=threads)


@app.command("sampling")
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
    from stylenorm.bench.sampling import run_sampling_benchmark

    try:
        step_counts = tuple(int(v) for v in steps.split(","))
    except ValueError:
        raise StylenormError(f"--steps {steps!r} must be comma-separated integers, e.g. 5,10,20") from None
    run_sampling_benchmark(output, plot, weights, num_samples, step_counts, tuple(s.strip() for s in samplers.split(",")),
                           guidance=guidance, device=device, threads=threads)


@app.command("fused")
def bench_fused(
    output: BenchOutput = Path("results/bench_fused.md"),
    device: BenchDevice = None,
    repeats: Repeats = 20,
    compile: bool = typer.Option(True, "--compile/--no-compile", help="Also time torch.compile of the composition."),
    quick: bool = typer.Option(False, help="Small shapes and few repeats (a smoke run)."),
) -> None:
    """Time the fused GroupNorm+FiLM+SiLU against its eager composition and torch.compile."""
    from stylenorm.bench.fused import run_fused_benchmark

    run_fused_benchmark(output=output, device=device, repeats=repeats, quick=quick, compile=compile)


@app.command("stylize")
def bench_stylize(
    output: BenchOutput = Path("results/bench_stylize.md"),
    device: BenchDevice = None,
    repeats: Repeats = 5,
    quick: bool = typer.Option(False, help="Small images and one repeat (a smoke run)."),
    threads: Threads = None,
) -> None:
    """ms per image and peak memory of the plain float32 forward and of the `stylize` path, with PSNR."""
    from stylenorm.bench.stylize import run_stylize_benchmark

    run_stylize_benchmark(output=output, device=device, repeats=repeats, quick=quick, threads=threads)


@app.command("video")
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
    from stylenorm.bench.video import run_video_benchmark
    from stylenorm.video import require_av

    require_av()
    run_video_benchmark(output=output, device=device, quick=quick, threads=threads, style=style, frames=frames,
                        speed_frames=speed_frames)
