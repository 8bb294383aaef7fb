"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class StylenormError(Exception):
    """Bad input or a failed run, with a message that names the problem and the fix."""


class Cancelled(StylenormError):
    """A long job (a painting's optimisation, a clip) stopped because its caller asked (the web page's Cancel)."""
