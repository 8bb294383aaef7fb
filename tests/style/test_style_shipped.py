"""The shipped styles: every style loads, stylizes visibly, and leaves no grid artefacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stylenorm.images import load_image, to_tensor, to_uint8
from stylenorm.style.stylize import resolve_style, stylize_tensor

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "weights" / "styles.safetensors"
STYLES = ["starry_night", "wave", "composition_vii", "the_scream", "udnie"]


def grid_peak(rgb: np.ndarray) -> float:
    """Spectrum magnitude of the luminance at the network's grid frequencies (1/2, 1/4 cycle/px
    along x and y), relative to the median magnitude: high where an upsampling grid shows."""
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    spectrum = np.abs(np.fft.fft2(y - y.mean()))
    h, w = y.shape
    median = np.median(spectrum)
    peaks = [spectrum[round(f * h) % h, 0] for f in (0.25, 0.5)] + [spectrum[0, round(f * w) % w] for f in (0.25, 0.5)]
    return max(peaks) / median


def test_card_describes_the_training():
    card = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert card["styles"] == STYLES and card["num_styles"] == 5 and card["norm"] == "in"
    assert card["steps"] > 0 and card["image_size"] and card["final_losses"]["style"] is not None
    assert "caffe" in card["loss_network"] and "CPU" in card["notes"]
    assert SHIPPED.stat().st_size < 10_000_000


def test_card_carries_the_eval_style_scores():
    """The shipped card holds `stylenorm eval-style --update-card` scores for every style (README table)."""
    card = json.loads(SHIPPED.with_suffix(".json").read_text())
    scores = card["eval"]["styles"]
    assert set(scores) == set(STYLES) and card["eval"]["photos"] >= 17
    for s in scores.values():
        # the colours moved well toward the painting's (under 3/4 of the photo's own distance) and the
        # features well away from the photo's (strength), so it is no copy; the layout term keeps where the
        # photo is light and dark (32 px luminance), and fine edges (faces, windows) are kept
        assert s["palette"] < 0.75 * s["photo_palette"] and s["strength"] > 0.7
        assert 0.5 < s["structure_luma"] < 0.995 and s["structure_fine"] > 0.6


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    img = load_image(REPO / "stylenorm" / "data" / "demo" / "chelsea.png")
    return to_tensor(img.rgb)


@pytest.mark.parametrize("style", STYLES)
def test_each_style_is_visible_and_clean(photo, style):
    out = stylize_tensor(resolve_style(style), photo)
    assert (out - photo).abs().mean() > 0.05  # clearly changed
    natural = grid_peak(to_uint8(photo))
    assert grid_peak(to_uint8(out)) < max(GRID_LIMIT, 3 * natural)


def test_styles_differ(photo):
    outs = [stylize_tensor(resolve_style(s), photo) for s in ("starry_night", "the_scream")]
    assert (outs[0] - outs[1]).abs().mean() > 0.02


# A natural photo scores ~10 and a plainly visible 4-px grid ~1000 (the first shipped weights while
# they trained). The shipped styles score up to ~280 on the demo photos (starry_night highest). The
# limit catches a return of the visible grid, not that remainder.
GRID_LIMIT = 400.0
