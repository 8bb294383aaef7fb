"""The README and docs/ link only to files that exist (pages, figures, tables, scripts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted(p for p in (REPO / "docs").rglob("*.md") if "runs" not in p.parts)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_resolves(page):
    links = [link for link in re.findall(r"\]\(([^)#\s]+)", page.read_text()) if not link.startswith(("http:", "https:"))]
    missing = [link for link in links if not (page.parent / link).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def test_the_readme_fits_a_users_first_reading():
    """The README is the entry point (install, first stylize, gallery near the top); details live in docs/."""
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 300
    top = "\n".join(lines[:40])
    assert "![" in top and "pip install . && stylenorm stylize" in "\n".join(lines[:60])
