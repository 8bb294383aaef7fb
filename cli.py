"""The stylenorm command line: parses options, loads a config, calls the package."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from stylenorm import __version__
from stylenorm.errors import StylenormError

app = typer.Typer(
    help="Fast neural style transfer and small diffusion models on one normalization backend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: results are printed and written to a file.", no_args_is_help=True)
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
    output: Path = typer.Option(Path("results/bench_norms.md"), "-o", "--output", help="Markdown table to write."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda; default: cpu, and cuda too when present."),
    repeats: int = typer.Option(20, help="Timed repetitions per measurement (median is reported)."),
    quick: bool = typer.Option(False, help="Small shapes and few repeats (a smoke run)."),
) -> None:
    """Time forward and forward+backward of every norm spec against torch.nn."""
    from stylenorm.bench.norms import run_norm_benchmark

    run_norm_benchmark(output=output, device=device, repeats=repeats, quick=quick)


def main() -> None:
    try:
        app()
    except StylenormError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
