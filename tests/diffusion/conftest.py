"""Fixtures for the diffusion tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def run_cli(run):
    """The shared CLI runner (tests/conftest.py `run`) as the (exit code, stdout, stderr) these tests unpack."""

    def invoke(*args) -> tuple[int, str, str]:
        result = run(*[str(a) for a in args])
        return result.returncode, result.stdout, result.stderr

    return invoke
