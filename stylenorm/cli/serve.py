"""`stylenorm serve`: the local web page."""

from __future__ import annotations

from typing import Optional

import typer

from stylenorm.cli.options import App, Device

app = App()  # its command joins the top level


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to bind (127.0.0.1: this computer only; 0.0.0.0: the network)."),
    port: int = typer.Option(7860, help="Port of the page."),
    device: Device = "cpu",
    max_pixels: int = typer.Option(40_000_000, "--max-pixels", help="Refuse uploads with more pixels (decompression-bomb guard)."),
    vgg_weights: Optional[str] = typer.Option(None, "--vgg-weights", help="The any-painting tab's VGG16 file "
                                                                          "(default: torchvision's, downloaded once)."),
) -> None:
    """A local web page: stylize photos and clips, paint after any painting, sample the diffusion model, read the model cards."""
    from stylenorm.serve import serve

    serve(host=host, port=port, device=device, max_pixels=max_pixels, vgg_weights=vgg_weights, echo=typer.echo)
