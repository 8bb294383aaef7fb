"""stylenorm: fast neural style transfer and small diffusion models on one norm backend."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stylenorm")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
