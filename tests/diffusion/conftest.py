"""Fixtures for the diffusion tests: an in-process CLI runner."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def run_cli(capsys):
    """Run `stylenorm ARGS` in-process through cli.main; returns (exit code, stdout, stderr)."""
    import cli

    def run(*args: str) -> tuple[int, str, str]:
        old = sys.argv
        sys.argv = ["stylenorm", *[str(a) for a in args]]
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = old
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
