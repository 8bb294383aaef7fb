"""Gradio, the optional `web` extra that `stylenorm serve` builds its page with, imported on demand.

Its own module so that the page (app.py) and the command (this package's serve) both
reach it without the page importing the package that launches it.
"""

from __future__ import annotations

from stylenorm.errors import StylenormError

EXTRA_HINT = "pip install 'stylenorm[web]'"


def require_gradio():
    """The gradio module, or an error that names the extra to install."""
    try:
        import gradio
    except ImportError:
        raise StylenormError(f"stylenorm serve needs gradio, which is not installed; run {EXTRA_HINT}") from None
    return gradio
