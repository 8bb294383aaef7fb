"""`stylenorm serve`: a local web page for stylizing photos, sampling the diffusion model and reading model cards.

Built with Gradio (the `web` extra): it gives the upload/drop widgets, sliders, a
before/after slider, progress bars and a request queue that the page needs, and
it is what users of ML demos know; the alternative, a FastAPI app with one
hand-written page, would re-implement those in JavaScript. The page is served on
127.0.0.1 unless --host says otherwise, the URL is printed, and no browser is
ever opened (a server may have no display).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from stylenorm.errors import StylenormError
from stylenorm.serve.app import ServeConfig, launch


def serve(host: str = "127.0.0.1", port: int = 7860, device: str = "cpu", max_pixels: int = 40_000_000,
          vgg_weights: str | None = None, echo: Callable[[str], None] = print) -> None:
    """Start the page and block until interrupted; the temporary folder is removed on the way out."""
    if not 1 <= port <= 65535:
        raise StylenormError(f"--port {port} is outside 1..65535; the default is 7860")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise StylenormError(f"--device {device} asked for a GPU but torch sees none; use --device cpu")
    def stop(signum, frame):  # `kill` and service managers send SIGTERM: leave as Ctrl+C does, cleaning up
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if vgg_weights is not None and not Path(vgg_weights).is_file():
        raise StylenormError(f"VGG weights file not found: {vgg_weights}; pass an existing file to --vgg-weights")
    config = ServeConfig(device=device, max_pixels=max_pixels, vgg_weights=vgg_weights)
    server = launch(config, host=host, port=port, block=False)
    echo(f"stylenorm serve: open {server.url} in a browser (Ctrl+C stops it)")
    try:
        server.block()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
