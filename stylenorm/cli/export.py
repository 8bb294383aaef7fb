"""`stylenorm export onnx`: models for other runtimes."""

from __future__ import annotations

from pathlib import Path

import typer

from stylenorm.cli.options import App, StyleChoice, StyleWeights

app = App(help="Export models for other runtimes.", no_args_is_help=True)


@app.command("onnx")
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
