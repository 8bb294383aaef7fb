"""The stylenorm command line: parses options, loads a config, calls the package.

One module per command group (style, diffusion, ablate, bench, export, serve), each a Typer app joined
here; the trainers' options are generated from their config dataclasses (options.config_options).
Only main() formats a StylenormError: one `error:` line and exit status 2.
Torch-free at import, so every --help is fast: the commands import what they run.
"""

from __future__ import annotations

import sys

import typer

from stylenorm import __version__
from stylenorm.cli import ablate, bench, diffusion, export, serve, style
from stylenorm.cli.options import App
from stylenorm.errors import StylenormError

app = App(
    help="Fast neural style transfer and small diffusion models on one normalization backend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(style.app)  # no name: stylize, styles, train-style, add-style, eval-style at the top level
app.add_typer(diffusion.app, name="diffusion")
app.add_typer(ablate.app, name="ablate")
app.add_typer(serve.app)
app.add_typer(export.app, name="export")
app.add_typer(bench.app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stylenorm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Fast neural style transfer and small diffusion models on one normalization backend."""


def main() -> None:
    try:
        app()
    except StylenormError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C: what was interrupted said its last line (e.g. how to resume)
        sys.exit(130)
